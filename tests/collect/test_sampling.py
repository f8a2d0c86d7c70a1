"""Uniform sampling over a km grid: a cap per cell, seeded, independent of row order, with per-cell counts."""

from __future__ import annotations

import numpy as np

from graft_hf.collect.sampling import KM_PER_DEGREE, grid_cells, sample_uniform


def test_cells_are_about_the_requested_size_at_any_latitude():
    for lat in (0.5, 47.0, 70.0):
        ten_km = 10.0 / (KM_PER_DEGREE * np.cos(np.radians(lat)))
        rows, cols = grid_cells(np.full(1001, lat), np.linspace(0.0, ten_km, 1001), 1.0)
        assert len(np.unique(rows)) == 1 and len(np.unique(cols)) in (10, 11)  # 10 km east: 10 cells
        rows, _ = grid_cells(np.linspace(lat, lat + 10.0 / KM_PER_DEGREE, 1001), np.zeros(1001), 1.0)
        assert len(np.unique(rows)) in (10, 11)  # 10 km north: 10 cells


def test_cap_seed_and_order_independence():
    rng = np.random.default_rng(0)
    city = rng.normal([47.02, -99.15], 0.001, (500, 2))
    country = np.column_stack([rng.uniform(47.0, 47.05, 100), rng.uniform(-99.2, -99.1, 100)])
    points = np.vstack([city, country])
    ids = [f"p{i}" for i in range(len(points))]
    sample = sample_uniform(ids, points[:, 0], points[:, 1], 1.0, 10, seed=3)
    counts = sample.counts.to_pydict()
    assert max(counts["kept"]) == 10 and sum(counts["photos"]) == 600 and sum(counts["kept"]) == sample.keep.sum()
    assert sample.keep[:500].sum() <= 10 * 4  # the city spans a few cells at most: it no longer dominates
    order = rng.permutation(len(ids))
    shuffled = sample_uniform([ids[i] for i in order], points[order, 0], points[order, 1], 1.0, 10, seed=3)
    assert {ids[i] for i in order[shuffled.keep]} == {ids[i] for i in np.flatnonzero(sample.keep)}
    other = sample_uniform(ids, points[:, 0], points[:, 1], 1.0, 10, seed=4)
    assert not np.array_equal(other.keep, sample.keep)
    assert sample_uniform(ids, points[:, 0], points[:, 1], 1.0, 0, seed=3).keep.all()  # 0: no cap
