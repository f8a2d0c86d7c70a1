"""Damaged copies of real files, for the tests of bad inputs (a raster whose header opens but whose pixels do not)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def corrupt_copy(source: Path, target: Path, seed: int = 0, length: int = 200_000) -> Path:
    """Copy ``source`` to ``target`` with ``length`` random bytes written over its middle third.

    On the NAIP GeoTIFFs of ``../shared/data/naip-nd`` the header (and so ``rasterio.open``) survives, while reading
    pixels fails with GDAL's "Read failed" (the deflate-compressed blocks are damaged).
    """
    data = bytearray(Path(source).read_bytes())
    start = len(data) // 3
    data[start : start + length] = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    target.write_bytes(bytes(data))
    return target
