"""Tiling geometry of region maps: the grid covers the region, edge tiles shift inside, overlapping windows centre on
their cells.
"""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.transform import from_origin

from graft_hf.tasks.tiling import PixelWindow, TileGrid


def test_tile_grid_covers_the_region_and_shifts_edge_tiles_inside():
    grid = TileGrid(region=PixelWindow(10, 5, 100, 70), raster_width=200, raster_height=100, window=32, stride=32)
    assert grid.grid_shape == (3, 4) and grid.score_shape == (3, 4)
    covered = np.zeros((100, 200), dtype=bool)
    for _, w in grid.windows():
        assert 10 <= w.col_off and w.col_off + w.width <= 110 and 5 <= w.row_off and w.row_off + w.height <= 75
        covered[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] = True
    assert covered[5:75, 10:110].all()
    assert grid.window_at(grid.index(2, 3)) == PixelWindow(110 - 32, 75 - 32, 32, 32)
    transform = grid.score_transform(from_origin(0, 0, 2.0, 2.0))
    assert (transform.a, transform.c, transform.f) == (64.0, 20.0, -10.0)


def test_tile_grid_overlap_centres_windows_on_their_cells():
    grid = TileGrid(region=PixelWindow(0, 0, 320, 320), raster_width=320, raster_height=320, window=64, stride=32)
    assert grid.grid_shape == (10, 10)
    window = grid.window_at(grid.index(4, 5))
    assert (window.col_off + 32, window.row_off + 32) == (5 * 32 + 16, 4 * 32 + 16)  # centre of cell (4, 5)
    with pytest.raises(ValueError, match="gaps"):
        TileGrid(region=PixelWindow(0, 0, 100, 100), raster_width=100, raster_height=100, window=16, stride=32)
