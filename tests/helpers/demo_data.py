"""Paths and synthetic coordinates of the demo tests' real data (shared by the demo fixtures and the tests)."""

from __future__ import annotations

from tests.helpers.data import SHARED_DATA

EUROSAT_TEST = SHARED_DATA / "eurosat-rgb" / "data" / "test-00000-of-00001.parquet"
NAIP = SHARED_DATA / "naip-nd" / "m_4709963_se_14_1_20100629.tif"
EUROSAT_CLASSES = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
    "Residential", "River", "SeaLake",
)  # fmt: skip
GALLERY_SIZE = 30


def gallery_coordinates(i: int) -> tuple[float, float]:
    """Synthetic (lat, lon) of gallery tile `i`: a 6 x 5 grid over North Dakota."""
    return 47.0 + 0.02 * (i // 6), -99.2 + 0.03 * (i % 6)
