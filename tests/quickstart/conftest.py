"""The real EuroSAT data the benchmark tests run on, and a 60-tile test split of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.data import shared_data


@pytest.fixture(scope="module")
def eurosat() -> Path:
    return shared_data("eurosat-rgb")


@pytest.fixture(scope="module")
def test_split(eurosat: Path):
    from graft_hf.quickstart.eurosat import load_eurosat_split

    return load_eurosat_split(eurosat, "test", limit=60, seed=0)
