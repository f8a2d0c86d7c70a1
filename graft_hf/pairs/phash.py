"""Perceptual image hashes (pHash) and near-duplicate search over millions of them.

**The hash** (the ``image_hash`` column of a filtered photo table, 16 hex digits) is the DCT hash of
``imagehash.phash`` (Zauner 2010, as popularised by pHash.org): the photo converted to 8-bit grayscale (Pillow
``"L"``), resized to 32 x 32 with Lanczos resampling, transformed with a 2-D DCT-II, and the top-left 8 x 8 block of
coefficients (lowest frequencies, DC included) compared with its median: bit = coefficient > median, row-major,
most significant bit first. Re-encoding, resizing and mild colour changes move a few bits; different photos
differ in about half of them.

**Near duplicates** are photos whose hashes differ in at most ``max_distance`` bits (Hamming distance). They are
found without comparing all pairs, by multi-index hashing (Norouzi et al. 2012): split the 64 bits into
``max_distance + 1`` blocks; by the pigeonhole principle two hashes within that distance agree exactly on at least
one block, so only photos sharing a block value are compared.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from PIL import Image

__all__ = ["hash_to_int", "near_duplicates", "phash"]

_SIZE, _LOW = 32, 8


def _dct_matrix(n: int) -> np.ndarray:
    """DCT-II basis, ``(n, n)``: ``C[k, m] = cos(pi * (2m + 1) * k / (2n))`` (scipy's unnormalised DCT / 2)."""
    k = np.arange(n)[:, None]
    m = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * m + 1) * k / (2 * n))


_DCT = _dct_matrix(_SIZE)


def phash(image: Image.Image) -> str:
    """The 64-bit perceptual hash of a photo as 16 hex digits (see the module docstring).

    Args:
        image: Any Pillow image.

    Returns:
        E.g. ``"c3b0e1f0f8e0c1c3"``.
    """
    pixels = np.asarray(image.convert("L").resize((_SIZE, _SIZE), Image.Resampling.LANCZOS), dtype=np.float64)
    coefficients = _DCT @ pixels @ _DCT.T  # (32, 32): DCT along columns, then rows
    low = coefficients[:_LOW, :_LOW]
    bits = (low > np.median(low)).ravel()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hash_to_int(hashes: list[str | None]) -> np.ndarray:
    """Hex hashes -> uint64 array (``None`` -> 0; callers mask those rows)."""
    return np.asarray([int(h, 16) if h else 0 for h in hashes], dtype=np.uint64)


def _blocks(max_distance: int) -> list[tuple[int, int]]:
    """``(shift, mask)`` of ``max_distance + 1`` bit blocks covering the 64 bits."""
    count = max_distance + 1
    edges = np.linspace(0, 64, count + 1).round().astype(int)
    return [(int(lo), (1 << int(hi - lo)) - 1) for lo, hi in zip(edges[:-1], edges[1:])]


def _candidate_pairs(values: np.ndarray, max_distance: int) -> set[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, of distinct values within ``max_distance`` bits of each other."""
    pairs: set[tuple[int, int]] = set()
    for shift, mask in _blocks(max_distance):
        buckets: dict[int, list[int]] = defaultdict(list)
        for index, block in enumerate(((values >> np.uint64(shift)) & np.uint64(mask)).tolist()):
            buckets[block].append(index)
        for members in buckets.values():
            if len(members) < 2:
                continue
            idx = np.asarray(members)
            for start in range(0, len(idx), 1024):  # bounded memory for large buckets
                rows = idx[start : start + 1024]
                distance = np.bitwise_count(values[rows][:, None] ^ values[idx][None, :])  # (rows, members)
                for a, b in zip(*np.nonzero(distance <= max_distance)):
                    i, j = int(rows[a]), int(idx[b])
                    if i < j:
                        pairs.add((i, j))
    return pairs


def near_duplicates(hashes: list[str | None], max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy near-duplicate removal in table order: a photo is dropped when an earlier kept photo is within
    ``max_distance`` bits of it.

    Args:
        hashes: Hex pHashes, one per photo (``None``: no hash, never a duplicate).
        max_distance: Largest Hamming distance that counts as a duplicate (0: identical hashes only).

    Returns:
        ``(duplicate, first)``: a bool mask of dropped photos, shape ``(num_photos,)``, and for each dropped photo
        the index of the kept photo it duplicates (``-1`` for kept photos).
    """
    n = len(hashes)
    duplicate, first = np.zeros(n, dtype=bool), np.full(n, -1, dtype=np.int64)
    present = [i for i, h in enumerate(hashes) if h]
    values = hash_to_int([hashes[i] for i in present])
    unique, first_index, inverse = np.unique(values, return_index=True, return_inverse=True)
    owner = np.asarray(present, dtype=np.int64)[first_index]  # earliest photo of each distinct hash
    for position, photo in enumerate(present):
        if owner[inverse[position]] != photo:  # an identical hash came earlier
            duplicate[photo], first[photo] = True, owner[inverse[position]]
    if max_distance <= 0 or len(unique) < 2:
        return duplicate, first
    neighbours: dict[int, list[int]] = defaultdict(list)
    for a, b in _candidate_pairs(unique, max_distance):
        early, late = sorted((int(owner[a]), int(owner[b])))
        neighbours[late].append(early)
    for photo in sorted(int(o) for o in owner):  # table order: decide each against earlier kept photos
        kept_before = [e for e in neighbours.get(photo, []) if not duplicate[e]]
        if kept_before:
            duplicate[photo], first[photo] = True, min(kept_before)
    return duplicate, first
