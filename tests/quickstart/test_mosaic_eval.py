"""Scoring of the mosaics benchmark: the oracle broadcast paints each mosaic's dominant class."""

from __future__ import annotations

import numpy as np

from graft_hf.quickstart.mosaic import build_mosaics
from graft_hf.quickstart.observations import EUROSAT_LABELS


def test_oracle_broadcast_paints_the_dominant_class(test_split) -> None:
    from graft_hf.quickstart.mosaic_eval import evaluate_mosaics, oracle_broadcast_maps

    mosaics = build_mosaics(test_split, num_mosaics=4, grid=4, tile_size=8, seed=2, name="test")
    maps = oracle_broadcast_maps(mosaics, 10)
    assert maps.shape == (4, 32, 32) and maps.dtype == np.int64
    for k in range(4):
        cells = mosaics.cell_labels(k).reshape(-1).tolist()
        counts = {c: cells.count(c) for c in cells}
        best = max(counts.values())
        assert (maps[k] == min(c for c, n in counts.items() if n == best)).all()  # most common, lowest on a tie
    # Its pixel accuracy is the dominant share of each mosaic, and no broadcast map does better.
    truth = np.stack([mosaics.label_map(k) for k in range(4)])
    results = evaluate_mosaics(truth, maps, mosaics, EUROSAT_LABELS)
    assert results["pixel_level"]["pixel_accuracy"] == 1.0  # the true maps score perfectly
    assert results["baseline"] == results["oracle_broadcast"]
    expected = np.mean([(maps[k] == truth[k]).mean() for k in range(4)])
    assert np.isclose(results["oracle_broadcast"]["pixel_accuracy"], expected)
    for constant in range(10):
        other = evaluate_mosaics(truth, np.full_like(maps, constant), mosaics, EUROSAT_LABELS)["baseline"]
        assert other["pixel_accuracy"] <= results["oracle_broadcast"]["pixel_accuracy"]
