"""Cutting crops out of scenes: output grids, windowed (or whole-raster) reads, warps, nodata and RGB conversion.

A crop is read onto a :class:`Grid`: a north-up grid at the build's output pixel size (the sensor's training GSD)
in the tile's CRS, or, with ``native_gsd``, a window of the scene's own grid. When a grid is a whole-pixel window of
the scene's grid (same CRS, same pixel size and orientation, aligned origin: Sentinel-2 at 10 m, ``native_gsd``)
the pixels are copied; otherwise the needed part of the scene is read and warped with GDAL
(:func:`rasterio.warp.reproject`). Both paths see the same source pixels in ``window`` and ``full`` read modes, so
shards are byte-identical whichever is used.
"""

from __future__ import annotations

import io
import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from PIL import Image
from rasterio import windows
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.transform import rowcol
from rasterio.warp import reproject
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from graft_hf.modeling import get_sensor

from .catalog import Scene

__all__ = [
    "PNG_COMPRESS_LEVEL",
    "Grid",
    "RasterReadError",
    "RasterReader",
    "crop_transform",
    "crop_window",
    "encode_png",
    "native_grid",
    "output_grid",
    "resolve_resampling",
    "rgb_bands",
    "to_rgb",
]

logger = logging.getLogger(__name__)

#: zlib level of the crop PNGs. Measured on a 448 px NAIP crop: level 3 is ~3x faster than PIL's default 6 for
#: ~7% larger files (imagery is noisy, so higher levels gain little).
PNG_COMPRESS_LEVEL = 3


def crop_window(scene: Scene, x: float, y: float, size: int) -> Window:
    """The ``size`` x ``size`` pixel window whose centre pixel holds the point ``(x, y)``.

    Args:
        scene: The scene.
        x: Point x in the scene CRS.
        y: Point y in the scene CRS.
        size: Crop side in pixels.

    Returns:
        The window in the scene's pixel grid (it may start at negative offsets or run past the raster edge).
    """
    row, col = rowcol(scene.transform, x, y)
    return Window(int(col) - size // 2, int(row) - size // 2, size, size)


def crop_transform(scene: Scene, window: Window) -> Affine:
    """Affine transform of a crop: the scene's transform moved to the window's top-left pixel (rotation kept)."""
    return scene.transform @ Affine.translation(window.col_off, window.row_off)


@dataclass(frozen=True)
class Grid:
    """The pixel grid a crop is stored on.

    Attributes:
        crs: CRS of the grid (``"EPSG:xxxx"`` or WKT).
        transform: Affine transform of the crop's top-left pixel corner.
        size: Side in pixels.
    """

    crs: str
    transform: Affine
    size: int

    @property
    def gsd(self) -> float:
        """Metres (CRS units) per pixel along the rows."""
        return math.hypot(self.transform.a, self.transform.d)


def native_grid(scene: Scene, x: float, y: float, size: int) -> Grid:
    """The ``size`` px window of the scene's own grid whose centre pixel holds ``(x, y)`` (scene CRS; rotation kept)."""
    return Grid(scene.crs, crop_transform(scene, crop_window(scene, x, y, size)), size)


def _north_up(transform: Affine) -> bool:
    return transform.b == 0 and transform.d == 0 and transform.a > 0 and transform.e < 0


def output_grid(scene: Scene, crs: str, x: float, y: float, gsd: float, size: int) -> Grid:
    """A north-up ``size`` px grid of ``gsd`` m pixels in ``crs`` whose centre pixel ``(size // 2, size // 2)`` holds
    the point ``(x, y)``.

    Pixel edges are anchored at the scene's origin when the scene is north-up in ``crs`` (so a scene already at
    ``gsd`` is copied pixel for pixel, and a 5 m scene warped to 1 m has an output pixel centre on every source pixel
    centre), else at multiples of ``gsd``.

    Args:
        scene: The scene the crop will be cut from.
        crs: The tile's CRS.
        x: Point x in ``crs``.
        y: Point y in ``crs``.
        gsd: Output pixel size in CRS units.
        size: Crop side in pixels.
    """
    aligned = scene.crs == crs and _north_up(scene.transform)
    origin_x, origin_y = (scene.transform.c, scene.transform.f) if aligned else (0.0, 0.0)
    col = math.floor((x - origin_x) / gsd)
    row = math.floor((origin_y - y) / gsd)
    left = origin_x + (col - size // 2) * gsd
    top = origin_y - (row - size // 2) * gsd
    return Grid(crs, Affine(gsd, 0.0, left, 0.0, -gsd, top), size)


def resolve_resampling(name: str, source_gsd: float, output_gsd: float) -> Resampling:
    """The warp kernel: ``auto`` is ``average`` when downsampling (output pixels larger than the source's) and
    ``bilinear`` otherwise; any other name is taken as is."""
    if name == "auto":
        name = "average" if output_gsd > source_gsd * (1 + 1e-9) else "bilinear"
    return Resampling[name]


#: Source pixels read beyond a warp's footprint, per kernel: the kernel's reach (GDAL scales kernels by the
#: downsampling factor, added separately) plus one pixel of slack for the footprint's rounding.
_KERNEL_RADIUS = {"nearest": 1, "bilinear": 2, "average": 2, "cubic": 3, "lanczos": 4}


class RasterReadError(OSError):
    """A scene's pixels could not be read (missing, truncated or corrupt file); the message names the file."""

    def __init__(self, href: str, error: Exception) -> None:
        super().__init__(f"cannot read raster {href}: {error}")
        self.href = href


def rgb_bands(scene: Scene, sensor: str) -> list[int]:
    """1-based band indexes of red, green and blue, as the sensor registry finds them (NAIP: bands 1-3 by position;
    Sentinel-2: B04, B03, B02 by name).

    Raises:
        ValueError: The raster lacks a band, naming the raster and the fix.
    """
    try:
        indices = get_sensor(sensor).rgb_band_indices(scene.band_names)
    except ValueError as error:
        raise ValueError(
            f"raster {scene.href}: {error} (in the catalogue's `bands` column or the file's band descriptions)"
        ) from error
    return [i + 1 for i in indices]


def to_rgb(
    data: np.ndarray, sensor: str, s2_rgb_max: float | None = None, s2_offset: float | None = None
) -> np.ndarray:
    """Convert the red, green, blue bands of a crop to uint8.

    NAIP values are already uint8. Sentinel-2 L2A digital numbers (reflectance x 10000) become
    ``clip(round((dn - s2_offset) / s2_rgb_max * 255), 0, 255)``, i.e. reflectance 0.3 maps to white.

    Args:
        data: Red, green, blue crop, shape ``(3, height, width)``.
        sensor: ``"naip"`` or ``"sentinel2"``.
        s2_rgb_max: Sentinel-2 number mapped to 255 (default: the registry's ``value_scale``).
        s2_offset: Subtracted before scaling (default: the registry's ``value_offset``; 1000 for processing
            baseline >= 04.00).

    Returns:
        Array of shape ``(height, width, 3)``, uint8.
    """
    if sensor == "sentinel2":
        spec = get_sensor(sensor)
        scale = spec.value_scale if s2_rgb_max is None else s2_rgb_max
        offset = spec.value_offset if s2_offset is None else s2_offset
        scaled = (data.astype(np.float64) - offset) / scale * 255.0
        rgb = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    elif data.dtype == np.uint8:
        rgb = data
    else:
        rgb = np.clip(data, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(rgb, 0, -1))


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an ``(height, width, 3)`` uint8 array (deterministic for equal input)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def _inside(window: Window, scene: Scene) -> Window | None:
    """The part of ``window`` inside the raster, or ``None`` when they do not overlap."""
    raster = Window(0, 0, scene.width, scene.height)
    return window.intersection(raster) if windows.intersect(window, raster) else None


class RasterReader:
    """Reads crops from scenes, keeping a few datasets (or whole arrays) open per process.

    Args:
        read_mode: ``"window"`` reads just the crop's window from the file (remote COGs: a few HTTP range
            requests); ``"full"`` reads each raster's bands whole once and slices crops from memory.
        cache_size: Open datasets (window mode) or whole rasters (full mode) kept.
    """

    def __init__(self, read_mode: str = "window", cache_size: int = 8) -> None:
        self.read_mode = read_mode
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, DatasetReader | np.ndarray] = OrderedDict()

    def _cached(self, key: tuple, factory: Callable[[], DatasetReader | np.ndarray]) -> DatasetReader | np.ndarray:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = factory()
        self._cache[key] = value
        while len(self._cache) > self.cache_size:
            _, old = self._cache.popitem(last=False)
            if isinstance(old, DatasetReader):
                old.close()
        return value

    def close(self) -> None:
        """Close every open dataset."""
        for value in self._cache.values():
            if isinstance(value, DatasetReader):
                value.close()
        self._cache.clear()

    def _read_part(self, scene: Scene, bands: list[int], part: Window) -> np.ndarray:
        """The bands of ``part`` (a window inside the raster), shape ``(len(bands), height, width)``.

        Raises:
            RasterReadError: GDAL could not open or read the file (the message names it).
        """
        try:
            if self.read_mode == "full":
                whole = self._cached(("full", scene.href, tuple(bands)), lambda: _read_whole(scene, bands))
                return whole[(slice(None), *part.toslices())]
            src = self._cached(("open", scene.href), lambda: rasterio.open(scene.href))
            return src.read(bands, window=part)
        except RasterioError as error:
            raise RasterReadError(scene.href, error) from error

    def read_grid(
        self, scene: Scene, bands: list[int], grid: Grid, resampling: Resampling = Resampling.bilinear
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read a crop onto ``grid``: a pixel copy when the grid is a window of the scene's grid, else a warp.

        Args:
            scene: The scene.
            bands: 1-based band indexes to read.
            grid: The output grid.
            resampling: Warp kernel (unused for a pixel copy).

        Returns:
            ``(data, valid)`` as :meth:`read`, on the output grid: data of shape ``(len(bands), size, size)``.

        Raises:
            RasterReadError: The file could not be read.
        """
        window = _grid_window(scene, grid)
        if window is not None:
            return self.read(scene, bands, window)
        return self._warp(scene, bands, grid, resampling)

    def _warp(
        self, scene: Scene, bands: list[int], grid: Grid, resampling: Resampling
    ) -> tuple[np.ndarray, np.ndarray]:
        """Warp the part of the scene under ``grid`` onto it; pixels with no source data are invalid."""
        size = grid.size
        fill = scene.nodata if scene.nodata is not None else 0
        dtype = self._dtype(scene, bands)
        data = np.full((len(bands) + 1, size, size), fill, dtype=dtype)  # the extra band is GDAL's alpha
        data[-1] = 0
        part = _source_window(scene, grid, resampling)
        if part is not None:
            source = self._read_part(scene, bands, part)
            reproject(
                source,
                data,
                src_transform=crop_transform(scene, part),
                src_crs=CRS.from_user_input(scene.crs),
                src_nodata=scene.nodata,
                dst_transform=grid.transform,
                dst_crs=CRS.from_user_input(grid.crs),
                dst_nodata=scene.nodata,
                dst_alpha=len(bands) + 1,
                resampling=resampling,
            )
        valid = data[-1] > 0
        values = data[:-1]
        if scene.nodata is not None:
            valid &= (values != scene.nodata).any(axis=0)
        return np.ascontiguousarray(values), valid

    def read(self, scene: Scene, bands: list[int], window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Read a crop, filling pixels outside the raster with its nodata value (or 0).

        Args:
            scene: The scene.
            bands: 1-based band indexes to read.
            window: The crop's window in the scene's pixel grid (may extend past the raster).

        Returns:
            ``(data, valid)``: data of shape ``(len(bands), height, width)`` in the raster dtype; ``valid`` of shape
            ``(height, width)``, true where the pixel is inside the raster and not nodata in every band.
        """
        height, width = int(window.height), int(window.width)
        fill = scene.nodata if scene.nodata is not None else 0
        data = np.full((len(bands), height, width), fill, dtype=self._dtype(scene, bands))
        valid = np.zeros((height, width), dtype=bool)
        part = _inside(window, scene)
        if part is None:
            return data, valid
        values = self._read_part(scene, bands, part)
        rows, cols = part.toslices()
        target = (
            slice(rows.start - int(window.row_off), rows.stop - int(window.row_off)),
            slice(cols.start - int(window.col_off), cols.stop - int(window.col_off)),
        )
        data[(slice(None), *target)] = values
        valid[target] = True if scene.nodata is None else (values != scene.nodata).any(axis=0)
        return data, valid

    def _dtype(self, scene: Scene, bands: list[int]) -> np.dtype:
        try:
            if self.read_mode == "full":
                return self._cached(("full", scene.href, tuple(bands)), lambda: _read_whole(scene, bands)).dtype
            src = self._cached(("open", scene.href), lambda: rasterio.open(scene.href))
            return np.dtype(src.dtypes[bands[0] - 1])
        except RasterioError as error:
            raise RasterReadError(scene.href, error) from error


def _read_whole(scene: Scene, bands: list[int]) -> np.ndarray:
    with rasterio.open(scene.href) as src:
        return src.read(bands)


def _grid_window(scene: Scene, grid: Grid, tolerance: float = 1e-6) -> Window | None:
    """The window of the scene's grid that ``grid`` is, or ``None`` when it is not a whole-pixel window of it."""
    if grid.crs != scene.crs:
        return None
    relative = ~scene.transform @ grid.transform  # output pixel -> source pixel
    a, b, c, d, e, f = tuple(relative)[:6]
    whole = abs(c - round(c)) <= tolerance and abs(f - round(f)) <= tolerance
    if not whole or max(abs(a - 1), abs(b), abs(d), abs(e - 1)) > tolerance / max(grid.size, 1):
        return None
    return Window(round(c), round(f), grid.size, grid.size)


def _footprint_in_source(scene: Scene, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Source pixel coordinates of points along the output grid's edges (and centre)."""
    steps = np.linspace(0.0, grid.size, 9)
    cols = np.concatenate([steps, steps, np.zeros(9), np.full(9, grid.size), [grid.size / 2]])
    rows = np.concatenate([np.zeros(9), np.full(9, grid.size), steps, steps, [grid.size / 2]])
    xs, ys = (np.asarray(v, dtype=np.float64) for v in grid.transform @ (cols, rows))
    if grid.crs != scene.crs:
        xs, ys = (
            np.asarray(v, dtype=np.float64)
            for v in warp_transform(
                CRS.from_user_input(grid.crs), CRS.from_user_input(scene.crs), xs.tolist(), ys.tolist()
            )
        )
    return ~scene.transform @ (xs, ys)


def _source_window(scene: Scene, grid: Grid, resampling: Resampling) -> Window | None:
    """The part of the raster a warp onto ``grid`` reads (its footprint plus the kernel's reach), or ``None``."""
    cols, rows = _footprint_in_source(scene, grid)
    ratio = max(grid.gsd / scene.gsd, 1.0)  # GDAL widens kernels by the downsampling factor
    margin = math.ceil(_KERNEL_RADIUS.get(resampling.name, 4) * ratio)
    window = Window.from_slices(
        (math.floor(rows.min()) - margin, math.ceil(rows.max()) + margin),
        (math.floor(cols.min()) - margin, math.ceil(cols.max()) + margin),
        boundless=True,
    )
    return _inside(window, scene)
