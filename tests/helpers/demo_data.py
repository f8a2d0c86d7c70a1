"""Paths and synthetic coordinates of the demo tests' real data, and a backend with other limits."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from tests.helpers.data import SHARED_DATA

if TYPE_CHECKING:
    from graft_hf.demo import DemoBackend

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


def with_limits(backend: DemoBackend, **changes) -> DemoBackend:
    """A new `DemoBackend` on `backend`'s model and gallery with some limits changed (and its own workdir)."""
    from graft_hf.demo import DemoBackend

    limits = dataclasses.replace(backend.limits, **changes)
    return DemoBackend(
        backend.model, backend.image_processor, backend.tokenizer, backend.index, backend.gallery_info,
        backend.model_ref, limits, backend.templates, backend.workdir / "other",
    )  # fmt: skip
