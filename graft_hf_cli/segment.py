"""``graft segment``: zero-shot segmentation of one image into named classes (GRAFT Sec. 3.3), optionally with SAM.

Standard library only at import time; the handler imports :mod:`graft_hf` lazily.

Outputs in ``-o OUTDIR``: ``mask.png`` (label ids with a colour palette), ``mask.tif`` (the same labels with the
input's CRS and transform, for GeoTIFF inputs), ``overlay.png`` (colours over the image with a legend) and
``summary.json`` (labels, pixel fractions, areas in square metres when the ground sample distance is known).
"""

from __future__ import annotations

import argparse
import logging
import os

__all__ = ["add_parser"]

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``graft segment``."""
    parser = subparsers.add_parser(
        "segment",
        help="zero-shot segmentation of one image into text-named classes: mask PNG/GeoTIFF, overlay, summary",
        description=(
            "Compare every ViT patch of a pixel-level GRAFT model with the text embedding of each --query, upsample "
            "the scores to the image and take the best class per pixel. GeoTIFF inputs give a georeferenced mask."
        ),
    )
    parser.add_argument("--image", required=True, help="PNG/JPEG, or a GeoTIFF of the model's sensor (or RGB)")
    parser.add_argument("--query", action="append", default=[], help="class name (repeat for each class)")
    parser.add_argument(
        "--model", default=os.environ.get("GRAFT_MODEL"), help="GRAFT model directory or Hub id; default $GRAFT_MODEL"
    )
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument(
        "--background-threshold",
        type=float,
        help="pixels whose best class score is below this get the 'background' label (units of --score)",
    )
    parser.add_argument("--background-prompt", help="an extra query whose pixels get the 'background' label")
    parser.add_argument("--score", choices=("softmax", "cosine"), default="softmax", help="score of each class")
    parser.add_argument("--templates", default="satellite", help="prompt-template set, or 'none' to embed as written")
    parser.add_argument("--gsd", type=float, help="metres per pixel (default: the GeoTIFF's, else the model's)")
    parser.add_argument("--sam", help="SAM checkpoint directory or Hub id: refine the mask with SAM point prompts")
    parser.add_argument("--sam-points", type=int, default=3, help="SAM point prompts per class")
    parser.add_argument("--alpha", type=float, default=0.5, help="opacity of the overlay colours")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.set_defaults(handler=_run)


def _palette_png(mask, class_names, background_index):  # noqa: ANN001, ANN202
    """The mask as a palette PNG: pixel value = label id; background black."""
    import numpy as np
    from PIL import Image

    from graft_hf.tasks.segmentation import PALETTE

    if len(class_names) > 256:
        raise ValueError(f"{len(class_names)} labels do not fit an 8-bit mask; pass at most 255 queries")
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    colours = [PALETTE[i % len(PALETTE)] if i != background_index else (0, 0, 0) for i in range(len(class_names))]
    image.putpalette([c for colour in colours for c in colour])
    return image, colours


def _write_geotiff(path, mask, source, colours, class_names) -> None:  # noqa: ANN001
    """uint8 label GeoTIFF with the input's CRS/transform, a colour table and the label names as tags."""
    import rasterio

    profile = {
        "driver": "GTiff",
        "height": mask.shape[0],
        "width": mask.shape[1],
        "count": 1,
        "dtype": "uint8",
        "crs": source.crs,
        "transform": source.transform,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        # GDAL fixes the photometric interpretation at the first write, so the colour table goes first.
        dst.write_colormap(1, {i: (*colour, 255) for i, colour in enumerate(colours)})
        dst.write(mask.astype("uint8"), 1)
        dst.update_tags(1, **{f"label_{i}": name for i, name in enumerate(class_names)})
        dst.set_band_description(1, "graft segment label id")


def _run(args: argparse.Namespace) -> int:
    from graft_hf_cli._pixel_inputs import check_image_path

    check_image_path(args.image)
    if not args.query:
        raise ValueError('no classes given: pass --query once per class, e.g. --query "farmland" --query "road"')

    from graft_hf.tasks.segmentation import SegmentationConfig, ZeroShotSegmenter
    from graft_hf_cli._pixel_inputs import (
        load_model,
        load_sam_refiner,
        open_image_input,
        output_dir,
        templates_arg,
        write_json,
    )

    config = SegmentationConfig(
        templates=templates_arg(args.templates),
        score=args.score,
        background_prompt=args.background_prompt,
        score_threshold=args.background_threshold,
    )
    out = output_dir(args.output)
    model, image_processor, tokenizer = load_model(args.model, args.device)
    source = open_image_input(args.image, args.gsd, model.config)
    sam = load_sam_refiner(args.sam, model.device)

    result = ZeroShotSegmenter(model, tokenizer, image_processor).segment(args.image, args.query, config)
    if sam is not None:
        from graft_hf.tasks.sam import refine_segmentation

        result = refine_segmentation(result, sam, points_per_class=args.sam_points)

    mask = result.mask.cpu().numpy()
    png, colours = _palette_png(mask, result.class_names, result.background_index)
    outputs = {"mask_png": str(out / "mask.png"), "overlay_png": str(out / "overlay.png")}
    png.save(outputs["mask_png"])
    result.overlay(alpha=args.alpha).save(outputs["overlay_png"])
    if source.is_raster and source.transform is not None:
        outputs["mask_geotiff"] = str(out / "mask.tif")
        _write_geotiff(outputs["mask_geotiff"], mask, source, colours, result.class_names)
    elif source.is_raster:
        logger.warning("%s has no georeferencing: writing the PNG mask only", args.image)

    fractions = result.label_fractions()
    pixel_area = source.gsd**2 if source.gsd is not None else None
    labels = [
        {
            "id": i,
            "name": name,
            "color": list(colours[i]),
            "background": i == result.background_index,
            "fraction": fractions[name],
            "pixels": int((mask == i).sum()),
            "area_m2": int((mask == i).sum()) * pixel_area if pixel_area is not None else None,
        }
        for i, name in enumerate(result.class_names)
    ]
    summary = {
        **source.describe(),
        "model": args.model,
        "queries": list(args.query),
        "score": config.score,
        "templates": config.templates,
        "background_threshold": args.background_threshold,
        "background_prompt": args.background_prompt,
        "sam": args.sam,
        "labels": labels,
        "outputs": outputs,
    }
    outputs["summary_json"] = str(out / "summary.json")
    write_json(out / "summary.json", summary)
    shares = ", ".join(f"{name} {100 * share:.1f}%" for name, share in fractions.items())
    logger.info("segmented %s: %s; outputs in %s", args.image, shares, out)
    return 0
