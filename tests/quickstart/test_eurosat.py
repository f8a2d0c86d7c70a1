"""EuroSAT splits for the benchmarks: a stratified subset covers every class, the same for a seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from graft_hf.quickstart.eurosat import load_eurosat_split


def test_stratified_subset_covers_every_class(eurosat: Path) -> None:
    split = load_eurosat_split(eurosat, "test", limit=30, seed=0)
    assert len(split) == 30 and np.bincount(split.labels, minlength=10).tolist() == [3] * 10
    assert load_eurosat_split(eurosat, "test", limit=30, seed=0).filenames == split.filenames
