"""Generated YFCC100M metadata dumps in the dump's exact layout (23 tab-separated fields, or 25 with a line number
and a hash), URL-encoded text, and lines of every kind a reader must skip."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path
from urllib.parse import quote_plus

import numpy as np

LICENCES = [  # (name, URL) as YFCC100M writes them
    ("Attribution License", "http://creativecommons.org/licenses/by/2.0/"),
    ("Attribution-ShareAlike License", "http://creativecommons.org/licenses/by-sa/2.0/"),
    ("Attribution-NoDerivs License", "http://creativecommons.org/licenses/by-nd/2.0/"),
    ("Attribution-NonCommercial License", "http://creativecommons.org/licenses/by-nc/2.0/"),
]


def yfcc_line(i: int, lon: float | None, lat: float | None, *, accuracy: int = 16, licence: int = 0, video: bool = False,
              taken: str = "2016-07-27 17:52:25.0", wide: bool = False) -> str:  # fmt: skip
    """One dump line for photo ``1000 + i``."""
    name, url = LICENCES[licence]
    fields = [
        str(1000 + i), f"{i}@N00", quote_plus(f"user {i}"), taken, "1280000000", quote_plus("Canon EOS 5D"),
        quote_plus(f"grain elevator {i}"), quote_plus("an old elevator & the prairie"), "prairie,north+dakota,farm",
        "", "" if lon is None else f"{lon:.6f}", "" if lat is None else f"{lat:.6f}", "" if lon is None else str(accuracy),
        f"http://www.flickr.com/photos/{i}@N00/{1000 + i}/", f"http://farm4.staticflickr.com/3202/{1000 + i}_ab.jpg",
        name, url, "3202", "4", "ab12cd", "ef34ab", "jpg", "1" if video else "0",
    ]  # fmt: skip
    if wide:
        fields = [str(i), fields[0], f"{i:032x}", *fields[1:]]
    return "\t".join(fields)


def write_dump(path: str | Path, bbox: tuple[float, float, float, float], n: int = 60, seed: int = 0) -> dict:
    """Write a dump (``.bz2``/``.gz`` compressed by suffix); returns ``{"kept": ids, "skipped": counts}`` for the
    default filters (street accuracy, redistributable licences, dates 2015-2020, inside ``bbox``)."""
    rng = np.random.default_rng(seed)
    west, south, east, north = bbox
    lines, kept = [], set()
    for i in range(n):
        lon, lat = rng.uniform(west, east), rng.uniform(south, north)
        lines.append(yfcc_line(i, lon, lat, licence=i % 3, wide=i % 2 == 1))
        kept.add(str(1000 + i))
    extra = [
        ("video", yfcc_line(n, west + 0.01, south + 0.01, video=True)),
        ("no_geotag", yfcc_line(n + 1, None, None)),
        ("license_not_allowed", yfcc_line(n + 2, west + 0.01, south + 0.01, licence=3)),
        ("low_accuracy", yfcc_line(n + 3, west + 0.01, south + 0.01, accuracy=11)),
        ("outside_region", yfcc_line(n + 4, east + 1, south + 0.01)),
        ("outside_dates", yfcc_line(n + 5, west + 0.01, south + 0.01, taken="2009-01-01 10:00:00.0")),
        ("malformed_line", "this line\thas three\tfields"),
        ("malformed_line", yfcc_line(n + 6, west + 0.01, south + 0.01).replace("\t0", "\tx", 1)[:-1] + "7"),
    ]
    lines += [line for _, line in extra]
    skipped: dict[str, int] = {}
    for reason, _ in extra:
        skipped[reason] = skipped.get(reason, 0) + 1
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path = Path(path)
    opener = {".bz2": bz2.open, ".gz": gzip.open}.get(path.suffix, open)
    with opener(path, "wb") as handle:
        handle.write(data)
    return {"kept": kept, "skipped": skipped, "lines": len(lines)}
