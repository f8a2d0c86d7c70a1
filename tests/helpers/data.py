"""Paths to the real test data in ../shared/data, and readers of it shared by several test files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()
EUROSAT = SHARED_DATA / "eurosat-rgb"
BIGEARTHNET = SHARED_DATA / "bigearthnet-s2-examples"
needs_eurosat = pytest.mark.skipif(not EUROSAT.is_dir(), reason=f"real EuroSAT data not found at {EUROSAT}")
needs_ben = pytest.mark.skipif(not BIGEARTHNET.is_dir(), reason=f"BigEarthNet examples not found at {BIGEARTHNET}")

S2_L2A_ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
S2_PATCH = "S2A_MSIL2A_20170613T101031_87_48"


def shared_data(*parts: str) -> Path:
    """Path inside ../shared/data; skips the calling test with a reason when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (expected ../shared/data beside the repository)")
    return path


def s2_stack() -> np.ndarray:
    """The 12 L2A bands of a real BigEarthNet patch on the 10 m grid (20/60 m bands repeated)."""
    import rasterio

    folder = shared_data("bigearthnet-s2-examples", S2_PATCH)
    bands = []
    for name in S2_L2A_ORDER:
        with rasterio.open(folder / f"{S2_PATCH}_{name}.tif") as src:
            band = src.read(1)
        bands.append(np.kron(band, np.ones((120 // band.shape[0],) * 2, dtype=band.dtype)))
    return np.stack(bands)  # (12, 120, 120) uint16
