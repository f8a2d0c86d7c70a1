"""Small synthetic GeoTIFFs for the region-map tests (library and `graft map`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin


def write_raster(path: Path, data: np.ndarray, crs: str | None = "EPSG:32614", nodata: float | None = None) -> None:
    """Write `data` (bands, rows, cols) as a GeoTIFF with 5 m pixels at (500000, 5200000) in `crs` (None: no CRS)."""
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0]}
    with rasterio.open(
        path, "w", dtype=data.dtype, crs=crs, transform=from_origin(500000, 5200000, 5.0, 5.0), nodata=nodata,
        **profile,
    ) as dst:  # fmt: skip
        dst.write(data)
