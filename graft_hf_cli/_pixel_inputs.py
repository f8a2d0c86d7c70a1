"""Shared input handling of ``graft segment``, ``graft detect`` and ``graft ask`` (not a subcommand).

Imported only inside those commands' handlers, so ``graft --help`` never loads it. An input image is a PNG/JPEG or a
GeoTIFF; for a GeoTIFF the CRS, transform and ground sample distance travel with it so outputs can be
georeferenced and areas measured.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def check_image_path(path: str) -> None:
    """Fail fast (before torch is imported) on an input that does not exist."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"image not found: {path}; pass --image with a PNG/JPEG or GeoTIFF file")
    if os.path.isdir(path):
        raise ValueError(f"--image {path} is a folder; pass one PNG/JPEG or GeoTIFF file (use `graft map` for scenes)")


def open_image_input(path: str, gsd: float | None, model_config: Any) -> ImageInput:
    """Reads the size and georeferencing of an input image and settles the GSD used for areas.

    The GSD is, in order: `gsd` (the `--gsd` argument); the raster's own pixel size when it has a projected CRS;
    the model's training GSD (`model_config.gsd`, logged as an assumption); else unknown (areas are left out).

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file cannot be read as an image.
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
            with Image.open(path) as img:
                width, height = img.size
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"cannot read image {path}: {error}; pass a PNG/JPEG or GeoTIFF file") from error
    if gsd is not None:
        if gsd <= 0:
            raise ValueError(f"--gsd must be positive metres per pixel, got {gsd}")
        source: str | None = "argument"
    elif raster_gsd is not None:
        gsd, source = raster_gsd, "raster"
    elif getattr(model_config, "gsd", None) is not None:
        gsd, source = float(model_config.gsd), "model"
        logger.warning(
            "%s carries no ground sample distance: areas assume the model's training GSD %.3g m/px (pass --gsd to "
            "set it)",
            path,
            gsd,
        )
    else:
        source = None
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


def load_model(model: str | None, device: str) -> tuple[Any, Any, Any]:
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


def load_sam_refiner(sam: str | None, device: Any) -> Any:
    """A `SamRefiner` for `--sam`, or `None`."""
    if not sam:
        return None
    from graft_hf.tasks.sam import load_sam

    return load_sam(sam, device=device)


def templates_arg(value: str) -> str | None:
    """`--templates none` embeds queries as written."""
    return None if value.lower() in ("none", "") else value


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
    path.write_text(json.dumps(payload, indent=2) + "\n")
