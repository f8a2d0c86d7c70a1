"""Slow, obvious float64 references of the ranking metrics, written with Python loops (retrieval and multi-label)."""

from __future__ import annotations

import math

import numpy as np


def ref_order(scores: list[float]) -> list[int]:
    """Score descending, then index ascending."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def ref_ap(scores: list[float], rel: list[int], k: int | None = None) -> float:
    order = ref_order(scores)
    num_rel = sum(rel)
    if num_rel == 0:
        return math.nan
    depth = len(order) if k is None else min(k, len(order))
    hits, total = 0, 0.0
    for i in range(depth):
        if rel[order[i]]:
            hits += 1
            total += hits / (i + 1)
    return total / (num_rel if k is None else min(num_rel, k))


def ref_recall(scores: list[float], rel: list[int], k: int) -> float:
    order = ref_order(scores)
    num_rel = sum(rel)
    if num_rel == 0:
        return math.nan
    return sum(rel[j] for j in order[:k]) / num_rel


def assert_close_nan(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=1e-12, atol=1e-12)
