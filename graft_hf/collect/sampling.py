"""Sampling photo locations uniformly over a region, as the GRAFT paper does (section 3.2): a grid of cells of a
fixed ground size with a cap on the photos kept per cell, so a city's thousands of photos per square kilometre do
not drown the fields and forests around it.

The grid has rows of constant latitude height; each row is cut into columns of the same ground width at the row's
central latitude (so cells are about ``cell_size_km`` square everywhere, using 111.32 km per degree). Within a
cell the kept photos are those with the smallest seeded hash of their id: deterministic, independent of the
table's row order, and stable when photos are added (a photo kept before stays kept unless a new one outranks it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

__all__ = ["CellSample", "KM_PER_DEGREE", "grid_cells", "sample_uniform"]

#: Kilometres per degree of latitude (and of longitude at the equator), the grid's approximation.
KM_PER_DEGREE = 111.32


def grid_cells(lat: np.ndarray, lon: np.ndarray, cell_size_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid row and column of each point.

    Args:
        lat: Latitudes, shape ``(num_points,)``.
        lon: Longitudes, shape ``(num_points,)``.
        cell_size_km: Cell side in km.

    Returns:
        ``(rows, cols)``, int64 arrays of shape ``(num_points,)``.
    """
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    dlat = cell_size_km / KM_PER_DEGREE
    rows = np.floor(lat / dlat).astype(np.int64)
    centre = np.radians((rows + 0.5) * dlat)
    dlon = cell_size_km / (KM_PER_DEGREE * np.maximum(np.cos(centre), 1e-6))
    cols = np.floor(lon / dlon).astype(np.int64)
    return rows, cols


def _rank_keys(photo_ids: list[str], seed: int) -> np.ndarray:
    """A seeded pseudo-random 64-bit key per photo id (blake2b), shape ``(num_photos,)``."""
    salt = seed.to_bytes(8, "little")
    keys = [
        int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8, salt=salt).digest(), "little") for i in photo_ids
    ]
    return np.asarray(keys, dtype=np.uint64)


@dataclass
class CellSample:
    """The result of :func:`sample_uniform`.

    Attributes:
        keep: Which photos are kept, shape ``(num_photos,)``.
        cell: Cell id ``"<row>_<col>"`` of every photo.
        counts: One row per occupied cell: ``cell``, ``row``, ``col``, centre ``lat``/``lon``, ``photos`` (had) and
            ``kept``.
    """

    keep: np.ndarray
    cell: list[str]
    counts: pa.Table


def sample_uniform(
    photo_ids: list[str], lat: np.ndarray, lon: np.ndarray, cell_size_km: float, max_per_cell: int, seed: int
) -> CellSample:
    """Keep at most ``max_per_cell`` photos in every grid cell (0: keep all), chosen by a seeded hash of the id.

    Args:
        photo_ids: Photo ids, length ``num_photos``.
        lat: Latitudes, shape ``(num_photos,)``.
        lon: Longitudes, shape ``(num_photos,)``.
        cell_size_km: Cell side in km.
        max_per_cell: Cap per cell; 0 means no cap.
        seed: Seed of the hash.

    Returns:
        The kept mask, every photo's cell and the per-cell counts.
    """
    n = len(photo_ids)
    rows, cols = grid_cells(lat, lon, cell_size_km)
    keys = _rank_keys(photo_ids, seed)
    order = np.lexsort((keys, cols, rows))  # by cell, then by key
    sorted_rows, sorted_cols = rows[order], cols[order]
    new_cell = np.ones(n, dtype=bool)
    new_cell[1:] = (sorted_rows[1:] != sorted_rows[:-1]) | (sorted_cols[1:] != sorted_cols[:-1])
    starts = np.flatnonzero(new_cell)
    sizes = np.diff(np.append(starts, n))
    rank = np.arange(n) - np.repeat(starts, sizes)  # position of each photo within its cell
    keep = np.zeros(n, dtype=bool)
    keep[order] = rank < max_per_cell if max_per_cell > 0 else True
    kept_per_cell = np.add.reduceat(keep[order].astype(np.int64), starts) if n else np.zeros(0, dtype=np.int64)
    dlat = cell_size_km / KM_PER_DEGREE
    cell_rows, cell_cols = sorted_rows[starts], sorted_cols[starts]
    centre_lat = (cell_rows + 0.5) * dlat
    dlon = cell_size_km / (KM_PER_DEGREE * np.maximum(np.cos(np.radians(centre_lat)), 1e-6))
    counts = pa.table(
        {
            "cell": [f"{r}_{c}" for r, c in zip(cell_rows.tolist(), cell_cols.tolist())],
            "row": cell_rows,
            "col": cell_cols,
            "lat": centre_lat,
            "lon": (cell_cols + 0.5) * dlon,
            "photos": sizes.astype(np.int64),
            "kept": kept_per_cell,
        }
    )
    cell = [f"{r}_{c}" for r, c in zip(rows.tolist(), cols.tolist())]
    return CellSample(keep=keep, cell=cell, counts=counts)
