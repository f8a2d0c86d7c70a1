"""Hostile inputs of the hardening tests (small files that declare huge contents) and a meter of what reading costs.

``many_bands_tiff``: 300 bands of 2048 x 2048 uint16 zeros (2.5 GB decoded) in a few hundred KB; ``huge_tiff``:
100000 x 100000 x 3 uint8 (28 GiB decoded) in well under a megabyte; ``png_bomb``: a 1-bit PNG declaring 20000 x
20000 pixels (400 MP, over Pillow's decompression-bomb threshold) in tens of KB. The GeoTIFFs are sparse
(GDAL ``SPARSE_OK``: blocks never written are not stored and read as zeros), so writing them costs nothing.

:func:`measure` runs a snippet in a fresh Python process and reports its peak memory growth (``ru_maxrss`` after
the snippet minus before it) and wall time, so a test can hold "refused within a few hundred MB and a second".
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

from tests.helpers.cli import OFFLINE


def _sparse_tiff(path: Path, width: int, height: int, count: int, dtype: str) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": count, "dtype": dtype, "crs": "EPSG:32614",
        "transform": from_origin(500000, 5200000, 1.0, 1.0), "tiled": True, "blockxsize": 512, "blockysize": 512,
        "compress": "deflate", "sparse_ok": True, "BIGTIFF": "YES",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile):
        pass  # nothing written: every block is sparse
    return path


def many_bands_tiff(folder: Path) -> Path:
    """300 zero bands of 2048 x 2048 uint16 (4.2 MP: under the demo's pixel limit)."""
    return _sparse_tiff(folder / "bands300.tif", 2048, 2048, 300, "uint16")


def huge_tiff(folder: Path) -> Path:
    """100000 x 100000 pixels, 3 uint8 bands."""
    return _sparse_tiff(folder / "huge.tif", 100_000, 100_000, 3, "uint8")


def png_bomb(path: Path, side: int = 20_000) -> Path:
    """A valid 1-bit greyscale PNG of ``side`` x ``side`` zeros, compressed row by row (never held in memory)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


_METER = """
import json, resource, sys, time
{setup}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
{snippet}
    outcome = "returned"
except Exception as error:
    outcome = f"{{type(error).__name__}}: {{error}}"
seconds = time.perf_counter() - start
growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print("METER" + json.dumps({{"outcome": outcome, "seconds": seconds, "growth_mb": growth_mb}}))
"""


def measure(setup: str, snippet: str, timeout: float = 120) -> dict:
    """Run ``setup`` (imports, untimed), then ``snippet`` timed, in a new process.

    Returns:
        ``{"outcome": "returned" | "<Error>: <message>", "seconds": float, "growth_mb": float}``: the peak
        resident memory added by the snippet (Linux ``ru_maxrss``, KiB) and its wall time.
    """
    code = _METER.format(setup=textwrap.dedent(setup), snippet=textwrap.indent(textwrap.dedent(snippet), "    "))
    env = {**os.environ, **OFFLINE}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("METER")]
    assert result.returncode == 0 and lines, f"meter failed ({result.returncode}): {result.stderr[-3000:]}"
    return json.loads(lines[-1][len("METER") :])
