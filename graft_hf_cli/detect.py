"""``graft detect``: zero-shot object detection in one image (GRAFT Sec. 3.3), optionally refined with SAM.

Standard library only at import time; the handler imports :mod:`graft_hf` lazily.

Outputs in ``-o OUTDIR``: ``detections.json`` (every instance with its pixel box, score, pixel count and area in
square metres when the ground sample distance is known), ``detections.geojson`` for georeferenced inputs (the boxes
as polygons in EPSG:4326, same properties) and ``overlay.png`` (masks, boxes and captions over the image).
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from graft_hf_cli._errors import speaks_flags
from graft_hf_cli._fields import add_fields, fields_from_args
from graft_hf_cli._pixel_inputs import add_image_arguments

if TYPE_CHECKING:
    from graft_hf.tasks.detection import DetectedInstance, DetectionConfig
    from graft_hf_cli._pixel_inputs import ImageInput

__all__ = ["add_parser"]

logger = logging.getLogger(__name__)
_CONFIG = ("graft_hf.tasks.detection", "DetectionConfig")


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
    add_image_arguments(
        parser,
        query_help="object to find (repeatable)",
        sam_help="SAM checkpoint directory or Hub id: replace each instance mask by SAM's",
    )
    add_fields(
        parser,
        *_CONFIG,
        only=("threshold", "negatives", "min_area_m2", "min_pixels", "connectivity", "sam_points"),
        flags={"negatives": "--negative"},
        helps={
            "threshold": "foreground score (cosine similarity; a probability with --negative)",
            "negatives": "competing query; scores become softmax probabilities",
            "min_area_m2": "drop instances smaller than this (needs a GSD)",
            "min_pixels": "drop instances with fewer pixels",
            "sam_points": "SAM point prompts per instance",
        },
        metavars={"negatives": "NEGATIVE"},
    )
    parser.set_defaults(handler=_run)


def _config_from_args(args: argparse.Namespace) -> DetectionConfig:
    from graft_hf.tasks.detection import DetectionConfig
    from graft_hf_cli._pixel_inputs import templates_arg

    values = templates_arg(fields_from_args(args, *_CONFIG))
    return DetectionConfig(**values, refine_with_sam=args.sam is not None)


def _instance_record(index: int, instance: DetectedInstance) -> dict:
    return {
        "id": index,
        "label": instance.label,
        "score": round(instance.score, 6),
        "mean_score": round(instance.mean_score, 6),
        "box": list(instance.box),
        "num_pixels": instance.num_pixels,
        "area_m2": instance.area_m2,
    }


def _geojson(records: list[dict], source: ImageInput) -> dict:
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


@speaks_flags
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
    source = open_image_input(args.image, args.gsd, model.config, image_processor.max_image_pixels)
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
