"""Setting up a region map: its typed config, the model and the input checks that fail with the fix.

`graft_hf.tasks.region_map` runs the map; this module turns a `RegionMapConfig` into an opened raster, the model
with its processor and tokenizer, the band selection and the tile grid, raising user-facing errors for a missing
CRS, an empty raster or query, a band count the model's sensor cannot use and an unwritable output folder.
"""

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import rasterio
import torch
from rasterio.io import DatasetReader
from rasterio.warp import transform_bounds
from rasterio.windows import from_bounds
from transformers import AutoModel, AutoProcessor, PreTrainedTokenizerBase

from graft_hf.config import ConfigError, config_dataclass, require
from graft_hf.evaluation.errors import (
    MissingPathError,
    UnavailableSourceError,
    UnwritablePathError,
    check_local_or_hub,
)
from graft_hf.modeling import GraftConfig, GraftImageProcessor, GraftModel
from graft_hf.tasks.tiling import PixelWindow, TileGrid, raster_gsd_metres
from graft_hf.tokenizer import load_clip_tokenizer

logger = logging.getLogger(__name__)

#: A GRAFT model in eval mode with its image processor and tokenizer, as `load_map_model` returns them.
LoadedModel = tuple[GraftModel, GraftImageProcessor, PreTrainedTokenizerBase]

__all__ = [
    "LoadedModel",
    "RegionMapConfig",
    "RegionMapResult",
    "band_indexes",
    "check_writable",
    "load_map_model",
    "open_raster",
    "resolve_region",
    "tile_grid",
]


@config_dataclass
class RegionMapConfig:
    """What `graft map` does.

    Attributes:
        raster: Input GeoTIFF/COG path (or any GDAL-readable path with a CRS).
        queries: Text queries, one score map each.
        model: GRAFT model directory (or Hub id, where the Hub is reachable).
        output_dir: Folder for `<query>.tif`, `<query>.png`, `topk.geojson` and the progress file.
        tile_size: Model input side in pixels (default: the model's `vision_config.image_size`).
        stride: Distance between tiles in model-input pixels (default `tile_size`: no overlap). Image level only.
        gsd: `"model"` (tiles at the model's training GSD), `"native"` (raster pixels as they are) or metres/pixel.
        level: `"image"` (one score per tile) or `"patch"` (one per ViT patch; pixel-level models only).
        score: `"cosine"` or `"softmax"` (across queries).
        templates: Prompt-template set name or templates for the query text (`None`: the query as written).
        batch_size: Tiles per forward pass.
        top_k: Tiles per query in the GeoJSON.
        bands: 1-based raster bands holding the sensor's bands in order (default: all, or the first 3 for RGB).
        window: Pixel window `(col_off, row_off, width, height)` restricting the mapped region.
        bounds: `(west, south, east, north)` in degrees (EPSG:4326) restricting the mapped region.
        resume: Continue an interrupted run in `output_dir`.
        overwrite: Start again even if `output_dir` holds a previous run.
        png: Write PNG overlays.
        preview_max_side: Longest side of the PNG overlays in pixels.
        checkpoint_interval_s: Seconds between checkpoints (0: after every batch).
        device: `"auto"`, `"cpu"`, `"cuda"`, ...
        gdal_cache_mb: GDAL block cache (bounds memory on large rasters).
        progress: Show a progress bar.
    """

    raster: str
    queries: tuple[str, ...]
    model: str
    output_dir: str
    tile_size: int | None = None
    stride: int | None = None
    gsd: str | float = "model"
    level: Literal["image", "patch"] = "image"
    score: Literal["cosine", "softmax"] = "cosine"
    templates: str | tuple[str, ...] | None = None
    batch_size: int = 16
    top_k: int = 10
    bands: tuple[int, ...] | None = None
    window: tuple[int, int, int, int] | None = None
    bounds: tuple[float, float, float, float] | None = None
    resume: bool = False
    overwrite: bool = False
    png: bool = True
    preview_max_side: int = 1024
    checkpoint_interval_s: float = 30.0
    device: str = "auto"
    gdal_cache_mb: int = 64
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.gsd, str) and self.gsd not in ("model", "native"):
            try:
                self.gsd = float(self.gsd)
            except ValueError:
                raise ConfigError("gsd", f"must be 'model', 'native' or metres per pixel, got {self.gsd!r}") from None

    def validate_queries(self) -> None:
        require(bool(self.queries), "queries", 'no query given: pass at least one, e.g. "farmland"')
        empty = [i for i, q in enumerate(self.queries) if not q.strip()]
        require(
            not empty, "queries", f"query number {empty[0] + 1 if empty else 0} is empty; every query needs some text"
        )
        require(len(set(self.queries)) == len(self.queries), "queries", f"{list(self.queries)} repeat; pass each once")

    def validate_score(self) -> None:
        require(
            self.score != "softmax" or len(self.queries) >= 2,
            "score",
            "'softmax' normalises across queries: pass at least two queries, or use score='cosine'",
        )

    def validate_sizes(self) -> None:
        require(
            isinstance(self.gsd, str) or self.gsd > 0,
            "gsd",
            f"must be a positive number of metres per pixel, got {self.gsd}",
        )
        for name in ("batch_size", "top_k", "preview_max_side", "gdal_cache_mb"):
            require(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        for name in ("tile_size", "stride"):
            value = getattr(self, name)
            require(value is None or value > 0, name, f"must be a positive number of pixels, got {value}")

    def validate_region(self) -> None:
        require(
            self.window is None or self.bounds is None,
            "window",
            "pass either a pixel window or bounds in degrees, not both",
        )
        if self.bounds is not None:
            west, south, east, north = self.bounds
            require(
                west < east and south < north,
                "bounds",
                f"must be west, south, east, north with west < east and south < north, got {self.bounds}",
            )

    def validate_resume(self) -> None:
        require(
            not (self.resume and self.overwrite),
            "resume",
            "resuming continues a run and overwriting discards it: pass only one of resume=True and overwrite=True",
        )


@dataclass
class RegionMapResult:
    """What a region-map run produced.

    Attributes:
        score_paths: Score GeoTIFF per query.
        png_paths: PNG overlay per query (empty without `png`).
        topk_path: GeoJSON of the top-k tiles of every query.
        num_windows: Windows covering the region.
        windows_run: Windows embedded by this call (not counting resumed or nodata ones).
        windows_nodata: Windows skipped as all-nodata (whole run).
        area_km2: Area of the mapped region in square kilometres (`None` without a metric CRS).
        seconds: Wall time of the tiling loop in this call.
        tile_gsd: Metres per model-input pixel (`None` if unknown).
        window_pixels: Window side in native raster pixels.
    """

    score_paths: dict[str, str]
    png_paths: dict[str, str]
    topk_path: str
    num_windows: int
    windows_run: int
    windows_nodata: int
    area_km2: float | None
    seconds: float
    tile_gsd: float | None
    window_pixels: int
    extras: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------- loading
def _saved_processor(model: str) -> tuple[GraftImageProcessor | None, PreTrainedTokenizerBase | None]:
    """The image processor and tokenizer saved with the model, where there are any."""
    saved_files = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
    if Path(model).is_dir() and not any((Path(model) / name).exists() for name in saved_files):
        return None, None  # a bare model directory: skip AutoProcessor's lookups
    try:
        processor = AutoProcessor.from_pretrained(model)
    except (OSError, ValueError, TypeError) as error:
        logger.info("no processor saved with %s (%s); building one from the config", model, error)
        return None, None
    return getattr(processor, "image_processor", None), getattr(processor, "tokenizer", None)


def load_map_model(model: str, device: str = "auto") -> LoadedModel:
    """Load a GRAFT model with its image processor and tokenizer.

    Args:
        model: A directory saved with `save_pretrained` or a Hub id.
        device: `"auto"` (CUDA when available), `"cpu"`, ...

    Returns:
        `(model, image_processor, tokenizer)`; the model is in eval mode. A directory without processor files gets
        `GraftImageProcessor.from_graft_config(model.config)` and the offline CLIP tokenizer.

    Raises:
        RuntimeError: If the model cannot be loaded, naming how to pass a local directory.
    """
    check_local_or_hub("model", model, "model folder")
    try:
        loaded = AutoModel.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise UnavailableSourceError(
            "model",
            f"could not load GRAFT model {model!r} ({type(error).__name__}: {str(error).splitlines()[0]}). "
            "Without Hub access pass a local directory saved with GraftModel.save_pretrained, e.g. "
            "model=/path/to/graft-naip-vitb16",
        ) from error
    if not isinstance(loaded, GraftModel):
        raise ConfigError(
            "model", f"{model!r} holds a {type(loaded).__name__}, not a GraftModel; pass a GRAFT checkpoint"
        )
    image_processor, tokenizer = _saved_processor(model)
    if not isinstance(image_processor, GraftImageProcessor):
        image_processor = GraftImageProcessor.from_graft_config(loaded.config)
    if tokenizer is None:
        tokenizer = load_clip_tokenizer()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return loaded.to(device).eval(), image_processor, tokenizer


# ------------------------------------------------------------------------------------------------- checks
def open_raster(path: str) -> DatasetReader:
    """Open the input raster, refusing a missing file, an empty raster or one without a CRS."""
    if not os.path.exists(path) and "://" not in path and not path.startswith("/vsi"):
        raise MissingPathError("raster", f"raster not found: {path}")
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as error:
        raise ConfigError("raster", f"cannot open {path}: {error}; is it a GeoTIFF/COG readable by GDAL?") from error
    if src.width == 0 or src.height == 0 or src.count == 0:
        src.close()
        raise ConfigError("raster", f"{path} is empty ({src.width} x {src.height} px, {src.count} bands)")
    if src.crs is None:
        src.close()
        raise ConfigError(
            "raster",
            f"raster {path} has no CRS, so its scores cannot be georeferenced; assign one, e.g. "
            f"`gdal_edit.py -a_srs EPSG:32614 {path}` (or gdalwarp -t_srs), then rerun",
        )
    return src


def band_indexes(src: DatasetReader, config: RegionMapConfig, model_config: GraftConfig) -> list[int]:
    """1-based raster bands to read: `config.bands`, the full sensor stack, or the first 3 of an RGB(A) image."""
    names = list(model_config.band_names)
    if config.bands is not None:
        bad = [b for b in config.bands if not 1 <= b <= src.count]
        if bad:
            raise ConfigError("bands", f"{list(config.bands)}: raster {config.raster} has bands 1..{src.count} only")
        indexes = list(config.bands)
    elif src.count == len(names):
        indexes = list(range(1, src.count + 1))
    elif src.count == 3 or (src.count == 4 and len(names) == 3):
        indexes = [1, 2, 3]  # an RGB(A) image
    else:
        indexes = list(range(1, src.count + 1))
    if len(indexes) not in (len(names), 3):
        raise ConfigError(
            "bands",
            f"raster {config.raster} gives {len(indexes)} bands, but the model's sensor {model_config.sensor!r} "
            f"expects {len(names)} ({', '.join(names)}) or 3 RGB bands; pass a raster of that sensor or pick its "
            "bands with bands=B1,B2,... (1-based, in the sensor's order)",
        )
    return indexes


def check_writable(output_dir: Path) -> None:
    """Create `output_dir` if needed and prove a file can be written there.

    Raises:
        OSError: The folder cannot be written (an :class:`UnwritablePathError` naming `output_dir`).
    """
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".graft_write_test_{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UnwritablePathError(
            "output_dir", f"output folder {output_dir} is not writable ({error.strerror}); pass a writable folder"
        ) from error


def resolve_region(src: DatasetReader, config: RegionMapConfig) -> PixelWindow:
    """The pixel region to map: `config.window`, `config.bounds` (degrees) or the whole raster, clipped to it."""
    full = PixelWindow(0, 0, src.width, src.height)
    if config.window is not None:
        col, row, width, height = (int(v) for v in config.window)
        wanted = PixelWindow(col, row, width, height)
    elif config.bounds is not None:
        west, south, east, north = config.bounds
        box = transform_bounds("EPSG:4326", src.crs, west, south, east, north, densify_pts=21)
        win = from_bounds(*box, transform=src.transform)
        c0, r0 = math.floor(win.col_off), math.floor(win.row_off)
        wanted = PixelWindow(c0, r0, math.ceil(win.col_off + win.width) - c0, math.ceil(win.row_off + win.height) - r0)
    else:
        return full
    c0, r0 = max(wanted.col_off, 0), max(wanted.row_off, 0)
    c1, r1 = min(wanted.col_off + wanted.width, src.width), min(wanted.row_off + wanted.height, src.height)
    if c1 <= c0 or r1 <= r0:
        raise ConfigError(
            "window" if config.window is not None else "bounds",
            f"the requested region {wanted} does not overlap raster {config.raster} ({src.width} x {src.height} px)",
        )
    return PixelWindow(c0, r0, c1 - c0, r1 - r0)


def _window_scale(src: DatasetReader, config: RegionMapConfig, model_config: GraftConfig) -> tuple[float, float | None]:
    """Raster pixels per model-input pixel (1.0: native) and the raster's metres per pixel (None if unknown)."""
    raster_gsd = raster_gsd_metres(src)
    target = model_config.gsd if config.gsd == "model" else config.gsd
    if target == "native" or target is None:
        return 1.0, raster_gsd
    if raster_gsd is None:
        if config.gsd != "model":
            raise ConfigError(
                "gsd",
                f"raster {config.raster} has a geographic CRS ({src.crs}), so {config.gsd} metres per pixel cannot "
                "be converted to pixels; reproject it to a projected CRS (e.g. UTM) or use gsd='native'",
            )
        logger.warning("raster %s has a geographic CRS: tiling at its native resolution", config.raster)
        return 1.0, None
    scale = float(target) / raster_gsd
    return (1.0 if abs(scale - 1.0) < 0.01 else scale), raster_gsd


def tile_grid(
    src: DatasetReader, config: RegionMapConfig, model_config: GraftConfig, region: PixelWindow
) -> tuple[TileGrid, int, float]:
    """The tile grid, the model-input tile size and the tile's metres per pixel (NaN if unknown)."""
    vision = model_config.vision_config
    tile = config.tile_size or vision.image_size
    scale, raster_gsd = _window_scale(src, config, model_config)
    if config.level == "patch":
        if model_config.use_patch_head is False:
            raise ConfigError(
                "level", "'patch' needs a pixel-level GRAFT model (config.use_patch_head=True); use level='image'"
            )
        if tile % vision.patch_size:
            raise ConfigError("tile_size", f"{tile} must be a multiple of the model's patch size {vision.patch_size}")
        grid = tile // vision.patch_size
        window = grid * max(1, round(tile * scale / grid))
        stride = window
        if config.stride not in (None, tile):
            raise ConfigError(
                "stride", "patch-level maps use non-overlapping tiles: leave it unset or use level='image'"
            )
    else:
        grid = 1
        window = max(1, round(tile * scale))
        stride = max(1, round((config.stride or tile) * scale))
        if (config.stride or tile) > tile:
            raise ConfigError("stride", f"{config.stride} is larger than the tile ({tile} px) and would leave gaps")
    tile_gsd = raster_gsd * window / tile if raster_gsd is not None else float("nan")
    tiling = TileGrid(
        region=region,
        raster_width=src.width,
        raster_height=src.height,
        window=window,
        stride=stride,
        level=config.level,
        patches_per_side=grid,
    )
    return tiling, tile, tile_gsd
