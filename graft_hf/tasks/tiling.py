"""Tiling a raster into model windows and the georeferenced grid of the scores they produce.

Region maps (GRAFT section 4.5) score a large raster tile by tile. This module holds the geometry only (no model,
no I/O beyond reading one window), so that the mapping loop, its tests and a slow reference agree on exactly
which raster pixels every score pixel comes from.

Two layouts:

* **image level** (`level="image"`): one score per window. The score grid has one cell per `stride` raster pixels
  (`stride == window` by default: non-overlapping tiles). The window of cell `(i, j)` is centred on the cell;
  windows that would stick out of the region are shifted inwards so that every tile holds real imagery (only a
  region smaller than one window is padded). A score pixel's centre is therefore its tile's centre, except for
  the shifted edge tiles.
* **patch level** (`level="patch"`): pixel-level GRAFT models give one score per ViT patch. Windows do not overlap
  (`stride == window`), the score pixel is one patch footprint (`window / grid` raster pixels) and edge windows
  are padded rather than shifted so that patches stay on one regular grid; patches wholly outside the raster are
  nodata.

All windows are in native raster pixels with integer offsets and sizes. A window larger than the model input is
averaged down by GDAL while it is read (bounded memory and time on coarse tiles of huge rasters); a smaller one
(or one sticking out of the raster) is read natively and resized by the `GraftImageProcessor` (antialiased
bicubic, the path the model saw in training).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.transform import Affine
from rasterio.windows import Window

__all__ = ["PixelWindow", "TileGrid", "raster_gsd_metres", "read_window", "valid_mask"]

MapLevel = Literal["image", "patch"]


@dataclass(frozen=True)
class PixelWindow:
    """A window of raster pixels: column/row offset of its top-left pixel and its size (may extend outside)."""

    col_off: int
    row_off: int
    width: int
    height: int

    def to_rasterio(self) -> Window:
        return Window(self.col_off, self.row_off, self.width, self.height)


@dataclass(frozen=True)
class TileGrid:
    """Windows over a region of a raster and the score grid they fill.

    Attributes:
        region: The mapped part of the raster (inside the raster).
        raster_width: Raster width in pixels.
        raster_height: Raster height in pixels.
        window: Window side in native raster pixels.
        stride: Distance between window origins (image level) in raster pixels; equals `window` at patch level.
        level: `"image"` or `"patch"`.
        patches_per_side: ViT patch grid of one window (`tile_size // patch_size`); 1 at image level.
    """

    region: PixelWindow
    raster_width: int
    raster_height: int
    window: int
    stride: int
    level: MapLevel = "image"
    patches_per_side: int = 1

    def __post_init__(self) -> None:
        if self.window <= 0 or self.stride <= 0:
            raise ValueError(f"window ({self.window}) and stride ({self.stride}) must be positive pixel counts")
        if self.stride > self.window:
            raise ValueError(
                f"stride ({self.stride} px) larger than the window ({self.window} px) would leave gaps between "
                "tiles; use a stride <= the tile size"
            )
        if self.level == "patch":
            if self.stride != self.window:
                raise ValueError("patch-level maps use non-overlapping windows: leave the stride at the tile size")
            if self.window % self.patches_per_side:
                raise ValueError(
                    f"window ({self.window} px) must be a multiple of the patch grid ({self.patches_per_side})"
                )
        if self.region.width <= 0 or self.region.height <= 0:
            raise ValueError(f"the region to map is empty ({self.region}); check the window or bounds that select it")

    # -------------------------------------------------------------------------------------------- grid shape
    @property
    def cell(self) -> int:
        """Side of one cell of the window grid in raster pixels."""
        return self.stride

    @property
    def grid_shape(self) -> tuple[int, int]:
        """Number of windows `(rows, cols)` covering the region."""
        return math.ceil(self.region.height / self.cell), math.ceil(self.region.width / self.cell)

    @property
    def num_windows(self) -> int:
        rows, cols = self.grid_shape
        return rows * cols

    @property
    def score_pixel(self) -> float:
        """Side of one score pixel in raster pixels."""
        return self.cell / self.patches_per_side if self.level == "patch" else float(self.cell)

    @property
    def score_shape(self) -> tuple[int, int]:
        """Score raster `(height, width)`."""
        rows, cols = self.grid_shape
        k = self.patches_per_side if self.level == "patch" else 1
        return rows * k, cols * k

    def score_transform(self, raster_transform: Affine) -> Affine:
        """Affine transform of the score raster: the input transform, moved to the region and scaled to cells."""
        return (
            raster_transform
            @ Affine.translation(self.region.col_off, self.region.row_off)
            @ Affine.scale(self.score_pixel, self.score_pixel)
        )

    # -------------------------------------------------------------------------------------------- windows
    def index(self, row: int, col: int) -> int:
        return row * self.grid_shape[1] + col

    def position(self, index: int) -> tuple[int, int]:
        """Grid `(row, col)` of window `index` (row-major order)."""
        return divmod(index, self.grid_shape[1])

    def _origin(self, cell_index: int, region_off: int, region_size: int) -> int:
        start = region_off + cell_index * self.cell
        if self.level == "patch":
            return start
        start -= (self.window - self.cell) // 2  # centre the window on its cell
        if region_size >= self.window:  # shift edge tiles inside the region
            start = min(max(start, region_off), region_off + region_size - self.window)
        return start

    def window_at(self, index: int) -> PixelWindow:
        """Raster window of window `index`."""
        row, col = self.position(index)
        return PixelWindow(
            col_off=self._origin(col, self.region.col_off, self.region.width),
            row_off=self._origin(row, self.region.row_off, self.region.height),
            width=self.window,
            height=self.window,
        )

    def score_window(self, index: int) -> PixelWindow:
        """The block of the score raster that window `index` fills."""
        row, col = self.position(index)
        k = self.patches_per_side if self.level == "patch" else 1
        return PixelWindow(col_off=col * k, row_off=row * k, width=k, height=k)

    def windows(self, start: int = 0) -> Iterator[tuple[int, PixelWindow]]:
        for index in range(start, self.num_windows):
            yield index, self.window_at(index)


def raster_gsd_metres(dataset: DatasetReader) -> float | None:
    """Ground sample distance of a rasterio dataset in metres per pixel (`None` for a geographic CRS).

    The pixel side is `sqrt(|det(transform)|)` (the side of a square of the same area), times the CRS's linear
    unit in metres.
    """
    crs = dataset.crs
    if crs is None or not crs.is_projected:
        return None
    transform = dataset.transform
    side = math.sqrt(abs(transform.a * transform.e - transform.b * transform.d))
    _, factor = crs.linear_units_factor
    return side * float(factor)


def read_window(
    dataset: DatasetReader, window: PixelWindow, indexes: list[int], fill_value: float, out_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a window; the part outside the raster is `fill_value`.

    A window inside the raster that is larger than `out_size` is read *averaged down* to `out_size` by GDAL
    (area-weighted, nodata-aware, and served from overviews when the file has them), so a coarse tile of a huge
    raster never holds its native pixels; the image processor then has nothing left to resize. Other windows are
    read at native resolution and resized by the image processor.

    Args:
        dataset: An open rasterio dataset.
        window: The window (may extend beyond the raster).
        indexes: 1-based band indexes to read.
        fill_value: Value of pixels outside the raster.
        out_size: Model input side in pixels (`None`: always native).

    Returns:
        `(bands, height, width)` array of the raster's dtype and the `(height, width)` bool mask of pixels inside
        the raster.
    """
    c0, r0 = max(window.col_off, 0), max(window.row_off, 0)
    c1 = min(window.col_off + window.width, dataset.width)
    r1 = min(window.row_off + window.height, dataset.height)
    inside_raster = (
        c0 == window.col_off and r0 == window.row_off and c1 - c0 == window.width and r1 - r0 == window.height
    )
    if inside_raster:
        rio_window = Window(c0, r0, c1 - c0, r1 - r0)
        if out_size is not None and max(window.width, window.height) > out_size:
            array = dataset.read(
                indexes, window=rio_window, out_shape=(len(indexes), out_size, out_size), resampling=Resampling.average
            )
        else:
            array = dataset.read(indexes, window=rio_window)
        return array, np.ones(array.shape[1:], dtype=bool)
    out = np.full((len(indexes), window.height, window.width), fill_value, dtype=dataset.dtypes[0])
    inside = np.zeros((window.height, window.width), dtype=bool)
    if c1 > c0 and r1 > r0:
        rows = slice(r0 - window.row_off, r1 - window.row_off)
        cols = slice(c0 - window.col_off, c1 - window.col_off)
        out[:, rows, cols] = dataset.read(indexes, window=Window(c0, r0, c1 - c0, r1 - r0))
        inside[rows, cols] = True
    return out, inside


def valid_mask(array: np.ndarray, nodata_values: list[float]) -> np.ndarray:
    """`(height, width)` bool: pixels where not every band equals one of the nodata values (NaN counts as nodata).

    Args:
        array: `(bands, height, width)` raw window.
        nodata_values: Values marking missing pixels (the raster's and the sensor's).
    """
    invalid = np.zeros(array.shape[1:], dtype=bool)
    if array.dtype.kind == "f":
        invalid |= np.all(np.isnan(array), axis=0)
    for value in nodata_values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        invalid |= np.all(array == value, axis=0)
    return ~invalid
