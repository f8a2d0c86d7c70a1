"""``graft detect``: zero-shot object detection in one image (GRAFT Sec. 3.3), optionally refined with SAM.

Standard library only at import time; the handler imports :mod:`graft_hf` lazily.

Outputs in ``-o OUTDIR``: ``detections.json`` (every instance with its pixel box, score, pixel count and area in
square metres when the ground sample distance is known), ``detections.geojson`` for georeferenced inputs (the boxes
as polygons in EPSG:4326, same properties) and ``overlay.png`` (masks, boxes and captions over the image).
"""

from __future__ import annotations

import argparse
import logging
import os

__all__ = ["add_parser"]

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``graft detect``."""
    parser = subparsers.add_parser(
        "detect",
        help="zero-shot detection of text-named objects in one image: GeoJSON/JSON instances and an overlay",
        description=(
            "Threshold the per-pixel score of each --query (patch-text similarity of a pixel-level GRAFT model, "
            "upsampled to the image) and report every connected component as an instance with a box, a score and "
            "an area. GeoTIFF inputs give GeoJSON in EPSG:4326."
        ),
    )
    parser.add_argument("--image", required=True, help="PNG/JPEG, or a GeoTIFF of the model's sensor (or RGB)")
    parser.add_argument("--query", action="append", default=[], help="object to find (repeatable)")
    parser.add_argument(
        "--model", default=os.environ.get("GRAFT_MODEL"), help="GRAFT model directory or Hub id; default $GRAFT_MODEL"
    )
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument(
        "--threshold",
        type=float,
        help="foreground score (cosine similarity; a probability with --negative); default: the library's",
    )
    parser.add_argument(
        "--negative", action="append", default=[], help="competing query; scores become softmax probabilities"
    )
    parser.add_argument("--min-area-m2", type=float, help="drop instances smaller than this (needs a GSD)")
    parser.add_argument("--min-pixels", type=int, default=1, help="drop instances with fewer pixels")
    parser.add_argument("--connectivity", type=int, choices=(4, 8), default=8, help="pixel neighbourhood")
    parser.add_argument("--templates", default="satellite", help="prompt-template set, or 'none' to embed as written")
    parser.add_argument("--gsd", type=float, help="metres per pixel (default: the GeoTIFF's, else the model's)")
    parser.add_argument("--sam", help="SAM checkpoint directory or Hub id: replace each instance mask by SAM's")
    parser.add_argument("--sam-points", type=int, default=3, help="SAM point prompts per instance")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.set_defaults(handler=_run)


def _config_from_args(args: argparse.Namespace):  # noqa: ANN202 - DetectionConfig (lazy import)
    from graft_hf.tasks.detection import DetectionConfig
    from graft_hf_cli._pixel_inputs import templates_arg

    options = {"threshold": args.threshold} if args.threshold is not None else {}
    return DetectionConfig(
        templates=templates_arg(args.templates),
        negatives=tuple(args.negative),
        connectivity=args.connectivity,
        min_pixels=args.min_pixels,
        min_area_m2=args.min_area_m2,
        refine_with_sam=args.sam is not None,
        sam_points=args.sam_points,
        **options,
    )


def _instance_record(index: int, instance) -> dict:  # noqa: ANN001
    return {
        "id": index,
        "label": instance.label,
        "score": round(instance.score, 6),
        "mean_score": round(instance.mean_score, 6),
        "box": list(instance.box),
        "num_pixels": instance.num_pixels,
        "area_m2": instance.area_m2,
    }


def _geojson(records: list[dict], source) -> dict:  # noqa: ANN001
    """Instance boxes as EPSG:4326 polygons; the box in the raster's CRS is kept as a property."""
    from graft_hf_cli._pixel_inputs import pixel_box_polygon, to_lonlat

    features = []
    for record in records:
        ring = pixel_box_polygon(tuple(record["box"]), source.transform)
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        properties = {**record, "box_pixels": record["box"], "bbox_crs": [min(xs), min(ys), max(xs), max(ys)]}
        del properties["box"]
        features.append(
            {
                "type": "Feature",
                "id": record["id"],
                "geometry": {"type": "Polygon", "coordinates": [to_lonlat(ring, source.crs)]},
                "properties": properties,
            }
        )
    return {"type": "FeatureCollection", "crs_source": source.crs.to_string(), "features": features}


def _run(args: argparse.Namespace) -> int:
    from graft_hf_cli._pixel_inputs import check_image_path

    check_image_path(args.image)
    if not args.query:
        raise ValueError('nothing to find: pass --query, e.g. --query "solar farm" (repeatable)')

    from graft_hf.tasks.detection import ObjectDetector, render_detections
    from graft_hf_cli._pixel_inputs import load_model, load_sam_refiner, open_image_input, output_dir, write_json

    config = _config_from_args(args)
    out = output_dir(args.output)
    model, image_processor, tokenizer = load_model(args.model, args.device)
    source = open_image_input(args.image, args.gsd, model.config)
    if args.min_area_m2 is not None and source.gsd is None:
        raise ValueError("--min-area-m2 needs the ground sample distance: pass --gsd METRES_PER_PIXEL")
    detector = ObjectDetector(model, tokenizer, image_processor, sam=load_sam_refiner(args.sam, model.device))
    prepared = detector.prepare(args.image)

    instances, per_query = [], []
    for query in args.query:
        result = detector.detect(prepared, query, config, gsd=source.gsd)
        instances += result.instances
        per_query.append({"query": query, "count": result.count, "total_area_m2": result.total_area_m2})
    instances.sort(key=lambda inst: -inst.score)
    records = [_instance_record(i, inst) for i, inst in enumerate(instances)]

    outputs = {"detections_json": str(out / "detections.json"), "overlay_png": str(out / "overlay.png")}
    render_detections(prepared.rgb, instances).save(outputs["overlay_png"])
    if source.georeferenced:
        outputs["detections_geojson"] = str(out / "detections.geojson")
        write_json(out / "detections.geojson", _geojson(records, source))
    summary = {
        **source.describe(),
        "model": args.model,
        "queries": per_query,
        "threshold": config.threshold,
        "negatives": list(config.negatives),
        "sam": args.sam,
        "box_format": "pixel x0, y0, x1, y1 (x1, y1 exclusive)",
        "instances": records,
        "outputs": outputs,
    }
    write_json(out / "detections.json", summary)
    counts = ", ".join(f"{q['query']}: {q['count']}" for q in per_query)
    logger.info("detected in %s: %s; outputs in %s", args.image, counts, out)
    return 0
