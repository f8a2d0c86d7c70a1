"""Shared arguments and input handling of ``graft segment``, ``graft detect`` and ``graft ask`` (not a subcommand).

Standard library only at import time (``graft --help`` imports it through those commands); :mod:`graft_hf` is
imported inside the functions that need it. An input image is a PNG/JPEG or a GeoTIFF; for a GeoTIFF the CRS,
transform and ground sample distance travel with it so outputs can be georeferenced and areas measured.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graft_hf_cli._errors import name_flag
from graft_hf_cli._fields import read_fields

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from graft_hf.modeling import GraftConfig, GraftImageProcessor, GraftModel
    from graft_hf.tasks.sam import SamRefiner

logger = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")


@dataclass
class ImageInput:
    """An input image and what is known about its place on the ground.

    Attributes:
        path: The file.
        height: Rows in pixels.
        width: Columns in pixels.
        crs: The raster's CRS (a `rasterio.crs.CRS`), or `None` for a plain image or a raster without one.
        transform: The raster's affine pixel -> CRS transform, or `None`.
        gsd: Metres per pixel used for areas, or `None` when unknown.
        gsd_source: Where `gsd` came from: `"argument"`, `"raster"`, `"model"` or `None`.
    """

    path: str
    height: int
    width: int
    crs: Any = None
    transform: Any = None
    gsd: float | None = None
    gsd_source: str | None = None

    @property
    def is_raster(self) -> bool:
        return self.path.lower().endswith(RASTER_SUFFIXES)

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None and self.transform is not None

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts about the input."""
        return {
            "image": self.path,
            "height": self.height,
            "width": self.width,
            "crs": self.crs.to_string() if self.crs is not None else None,
            "transform": list(self.transform)[:6] if self.transform is not None else None,
            "gsd_m": self.gsd,
            "gsd_source": self.gsd_source,
        }


def add_image_arguments(
    parser: argparse.ArgumentParser,
    *,
    query_help: str | None = None,
    sam_help: str | None = None,
    sam_points_help: str | None = None,
    config: tuple[str, str] = ("graft_hf.tasks.detection", "DetectionConfig"),
) -> None:
    """The flags every pixel task shares: ``--image``, ``--model``, ``--templates``, ``--gsd``, ``--device``.

    Args:
        parser: The subcommand's parser.
        query_help: Add ``--query`` (repeatable) and ``-o/--output`` with this help for the query.
        sam_help: Add ``--sam`` with this help.
        sam_points_help: Add ``--sam-points`` (default 3) with this help (detect reads it from its config instead).
        config: The task's config class, whose `templates` field gives the ``--templates`` default.
    """
    parser.add_argument("--image", required=True, help="PNG/JPEG, or a GeoTIFF of the model's sensor (or RGB)")
    if query_help is not None:
        parser.add_argument("--query", action="append", default=[], help=query_help)
    parser.add_argument(
        "--model", default=os.environ.get("GRAFT_MODEL"), help="GRAFT model directory or Hub id; default $GRAFT_MODEL"
    )
    name_flag(parser, "model", "--model")
    if query_help is not None:
        parser.add_argument("-o", "--output", required=True, help="output folder")
        name_flag(parser, "output_dir", "--output")
    default = read_fields(*config)["templates"].default
    parser.add_argument(
        "--templates",
        default=default,
        help=f"prompt-template set, or 'none' to embed as written (default: {default})",
    )
    name_flag(parser, "templates", "--templates")
    parser.add_argument("--gsd", type=float, help="metres per pixel (default: the GeoTIFF's, else the model's)")
    if sam_help is not None:
        parser.add_argument("--sam", help=sam_help)
    if sam_points_help is not None:
        parser.add_argument("--sam-points", type=int, default=3, help=sam_points_help)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")


def check_image_path(path: str) -> None:
    """Fail fast (before torch is imported) on an input that does not exist."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"image not found: {path}; pass --image with a PNG/JPEG or GeoTIFF file")
    if os.path.isdir(path):
        raise ValueError(f"--image {path} is a folder; pass one PNG/JPEG or GeoTIFF file (use `graft map` for scenes)")


def open_image_input(
    path: str, gsd: float | None, model_config: GraftConfig, max_pixels: int | None = -1
) -> ImageInput:
    """Reads the size and georeferencing of an input image (its header only) and settles the GSD used for areas.

    The GSD is, in order: `gsd` (the `--gsd` argument); the raster's own pixel size when it has a projected CRS;
    the model's training GSD (`model_config.gsd`, logged as an assumption); else unknown (areas are left out).

    Args:
        path: The image.
        gsd: The `--gsd` argument.
        model_config: The model's config (input size, training GSD).
        max_pixels: Largest image accepted (width x height); -1: the image processor's default
            (`MAX_IMAGE_PIXELS`), `None`: no limit.

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file cannot be read as an image, or it is larger than `max_pixels` (use `graft map`).
    """
    check_image_path(path)
    crs = transform = raster_gsd = None
    if path.lower().endswith(RASTER_SUFFIXES):
        import rasterio

        from graft_hf.tasks.tiling import raster_gsd_metres

        try:
            with rasterio.open(path) as src:
                height, width = src.height, src.width
                crs = src.crs
                transform = None if src.transform.is_identity and crs is None else src.transform
                raster_gsd = raster_gsd_metres(src)
        except rasterio.errors.RasterioIOError as error:
            raise ValueError(f"cannot open raster {path}: {error}; is it a GeoTIFF readable by GDAL?") from error
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:  # the header only
                width, height = img.size
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as error:
            raise ValueError(f"cannot read image {path}: {error}; pass a PNG/JPEG or GeoTIFF file") from error
    _check_size(path, width, height, max_pixels)
    gsd, source = _settle_gsd(path, gsd, raster_gsd, model_config)
    image_size = model_config.vision_config.image_size
    if max(height, width) > 8 * image_size:
        logger.warning(
            "%s is %dx%d px and is resized to the model's %d px input as a whole; for large scenes use `graft map`, "
            "which tiles them",
            path,
            width,
            height,
            image_size,
        )
    return ImageInput(path, height, width, crs, transform, gsd, source)


def _check_size(path: str, width: int, height: int, max_pixels: int | None) -> None:
    """Refuse an image larger than `max_pixels` before any pixel is read (`graft map` tiles large scenes)."""
    if max_pixels == -1:
        from graft_hf.modeling.image_processing_graft import MAX_IMAGE_PIXELS

        max_pixels = MAX_IMAGE_PIXELS
    if max_pixels is not None and width * height > max_pixels:
        raise ValueError(
            f"--image {path} is {width} x {height} = {width * height:,} pixels, over the limit of {max_pixels:,} "
            "pixels for one image (the model's image processor, max_image_pixels): the whole image is resized into "
            "one model input. Use `graft map`, which tiles large scenes, or crop the image"
        )


def _settle_gsd(
    path: str, gsd: float | None, raster_gsd: float | None, model_config: GraftConfig
) -> tuple[float | None, str | None]:
    """The GSD used for areas and where it came from: the argument, the raster, the model, or unknown."""
    if gsd is not None:
        if gsd <= 0:
            raise ValueError(f"--gsd must be positive metres per pixel, got {gsd}")
        return gsd, "argument"
    if raster_gsd is not None:
        return raster_gsd, "raster"
    if getattr(model_config, "gsd", None) is not None:
        gsd = float(model_config.gsd)
        logger.warning(
            "%s carries no ground sample distance: areas assume the model's training GSD %.3g m/px (pass --gsd to "
            "set it)",
            path,
            gsd,
        )
        return gsd, "model"
    return None, None


def load_model(model: str | None, device: str) -> tuple[GraftModel, GraftImageProcessor, PreTrainedTokenizerBase]:
    """`(model, image_processor, tokenizer)` of a pixel-level GRAFT model (see `graft_hf.tasks.map_setup`)."""
    if not model:
        raise ValueError(
            "no model given: pass --model /path/to/graft-model (a saved GRAFT directory) or set $GRAFT_MODEL"
        )
    from graft_hf.tasks.map_setup import load_map_model

    loaded, image_processor, tokenizer = load_map_model(model, device)
    if not loaded.config.use_patch_head:
        raise ValueError(
            f"{model} is an image-level GRAFT model (use_patch_head=False); segmentation, detection and question "
            "answering need a pixel-level checkpoint"
        )
    return loaded, image_processor, tokenizer


def load_sam_refiner(sam: str | None, device: Any) -> SamRefiner | None:
    """A `SamRefiner` for `--sam`, or `None`."""
    if not sam:
        return None
    from graft_hf.tasks.sam import load_sam

    return load_sam(sam, device=device)


def templates_arg(values: dict[str, Any]) -> dict[str, Any]:
    """Config values with `--templates none` turned into `templates=None` (embed the queries as written)."""
    templates = values.get("templates")
    if isinstance(templates, str) and templates.lower() in ("none", ""):
        return {**values, "templates": None}
    return values


def output_dir(path: str) -> Path:
    """Creates the output folder, failing with the fix when it cannot be written."""
    from graft_hf.tasks.map_setup import check_writable

    out = Path(path)
    check_writable(out)
    return out


def pixel_box_polygon(box: tuple[int, int, int, int], transform: Any) -> list[tuple[float, float]]:
    """A closed ring of a pixel box `(x0, y0, x1, y1)` in the raster's CRS (corner-based pixel coordinates).

    Corners go top-left, bottom-left, bottom-right, top-right: counter-clockwise on a north-up map, as RFC 7946
    asks of exterior rings.
    """
    x0, y0, x1, y1 = box
    corners = [(x0, y0), (x0, y1), (x1, y1), (x1, y0), (x0, y0)]
    return [tuple(transform * (float(x), float(y))) for x, y in corners]  # type: ignore[misc]


def to_lonlat(ring: list[tuple[float, float]], crs: Any) -> list[list[float]]:
    """Reprojects a ring from `crs` to EPSG:4326 `[lon, lat]` pairs (GeoJSON's RFC 7946 order)."""
    from rasterio.warp import transform as warp

    xs, ys = warp(crs, "EPSG:4326", [p[0] for p in ring], [p[1] for p in ring])
    return [[round(float(x), 8), round(float(y), 8)] for x, y in zip(xs, ys)]


def write_json(path: Path, payload: Any) -> None:
    """Write `payload` as indented JSON, atomically (:func:`graft_hf.io.write_json`)."""
    from graft_hf.io import write_json as atomic_write_json

    atomic_write_json(path, payload)
