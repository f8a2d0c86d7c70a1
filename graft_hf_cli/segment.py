"""``graft segment``: zero-shot segmentation of one image into named classes (GRAFT Sec. 3.3), optionally with SAM.

Standard library only at import time; the handler imports :mod:`graft_hf` lazily.

Outputs in ``-o OUTDIR``: ``mask.png`` (label ids with a colour palette), ``mask.tif`` (the same labels with the
input's CRS and transform, for GeoTIFF inputs), ``overlay.png`` (colours over the image with a legend) and
``summary.json`` (labels, pixel fractions, areas in square metres when the ground sample distance is known).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graft_hf_cli._errors import speaks_flags
from graft_hf_cli._fields import add_fields, fields_from_args
from graft_hf_cli._pixel_inputs import add_image_arguments

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from graft_hf.tasks.segmentation import SegmentationResult
    from graft_hf_cli._pixel_inputs import ImageInput

__all__ = ["add_parser"]

logger = logging.getLogger(__name__)
_CONFIG = ("graft_hf.tasks.segmentation", "SegmentationConfig")


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
    add_image_arguments(
        parser,
        query_help="class name (repeat for each class)",
        sam_help="SAM checkpoint directory or Hub id: refine the mask with SAM point prompts",
        sam_points_help="SAM point prompts per class",
        config=_CONFIG,
    )
    add_fields(
        parser,
        *_CONFIG,
        only=("score_threshold", "background_prompt", "score"),
        flags={"score_threshold": "--background-threshold"},
        helps={
            "score_threshold": "pixels whose best class score is below this get the 'background' label (units of "
            "--score)",
            "background_prompt": "an extra query whose pixels get the 'background' label",
        },
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="opacity of the overlay colours")
    parser.set_defaults(handler=_run)


def _palette_png(mask: np.ndarray, class_names: list[str], background_index: int | None) -> tuple[Image.Image, list]:
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


def _write_geotiff(path: str, mask: np.ndarray, source: ImageInput, colours: list, class_names: list[str]) -> None:
    """uint8 label GeoTIFF with the input's CRS/transform, a colour table and the label names as tags."""
    import rasterio

    from graft_hf.io import atomic_path

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
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        # GDAL fixes the photometric interpretation at the first write, so the colour table goes first.
        dst.write_colormap(1, {i: (*colour, 255) for i, colour in enumerate(colours)})
        dst.write(mask.astype("uint8"), 1)
        dst.update_tags(1, **{f"label_{i}": name for i, name in enumerate(class_names)})
        dst.set_band_description(1, "graft segment label id")


def _label_records(result: SegmentationResult, mask: np.ndarray, colours: list, gsd: float | None) -> list[dict]:
    """One record per label: colour, pixel count, fraction and area (square metres, when the GSD is known)."""
    fractions = result.label_fractions()
    pixel_area = gsd**2 if gsd is not None else None
    records = []
    for i, name in enumerate(result.class_names):
        pixels = int((mask == i).sum())
        records.append(
            {
                "id": i,
                "name": name,
                "color": list(colours[i]),
                "background": i == result.background_index,
                "fraction": fractions[name],
                "pixels": pixels,
                "area_m2": pixels * pixel_area if pixel_area is not None else None,
            }
        )
    return records


def _write_outputs(
    args: argparse.Namespace, out: Path, result: SegmentationResult, source: ImageInput
) -> dict[str, Any]:
    """mask.png, overlay.png and (for georeferenced inputs) mask.tif; returns the label records and output paths."""
    from graft_hf.io import atomic_path

    mask = result.mask.cpu().numpy()
    png, colours = _palette_png(mask, result.class_names, result.background_index)
    outputs = {"mask_png": str(out / "mask.png"), "overlay_png": str(out / "overlay.png")}
    with atomic_path(outputs["mask_png"]) as tmp:
        png.save(tmp, format="PNG")
    with atomic_path(outputs["overlay_png"]) as tmp:
        result.overlay(alpha=args.alpha).save(tmp, format="PNG")
    if source.is_raster and source.transform is not None:
        outputs["mask_geotiff"] = str(out / "mask.tif")
        _write_geotiff(outputs["mask_geotiff"], mask, source, colours, result.class_names)
    elif source.is_raster:
        logger.warning("%s has no georeferencing: writing the PNG mask only", args.image)
    outputs["summary_json"] = str(out / "summary.json")
    return {"labels": _label_records(result, mask, colours, source.gsd), "outputs": outputs}


@speaks_flags
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

    config = SegmentationConfig(**templates_arg(fields_from_args(args, *_CONFIG)))
    out = output_dir(args.output)
    model, image_processor, tokenizer = load_model(args.model, args.device)
    source = open_image_input(args.image, args.gsd, model.config, image_processor.max_image_pixels)
    sam = load_sam_refiner(args.sam, model.device)
    result = ZeroShotSegmenter(model, tokenizer, image_processor).segment(args.image, args.query, config)
    if sam is not None:
        from graft_hf.tasks.sam import refine_segmentation

        result = refine_segmentation(result, sam, points_per_class=args.sam_points)
    written = _write_outputs(args, out, result, source)
    summary = {
        **source.describe(),
        "model": args.model,
        "queries": list(args.query),
        "score": config.score,
        "templates": config.templates,
        "background_threshold": config.score_threshold,
        "background_prompt": config.background_prompt,
        "sam": args.sam,
        **written,
    }
    write_json(written["outputs"]["summary_json"], summary)
    shares = ", ".join(f"{r['name']} {100 * r['fraction']:.1f}%" for r in written["labels"])
    logger.info("segmented %s: %s; outputs in %s", args.image, shares, args.output)
    return 0
