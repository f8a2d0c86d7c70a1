"""Streaming reader of YFCC100M metadata dumps: the public metadata of 100M Flickr photos and videos.

One tab-separated line per photo or video, 23 fields in this order: photo id, user NSID, user nickname, date taken
(``2010-07-27 17:52:25.0``), date uploaded (epoch seconds), capture device, title, description, user tags
(comma-separated), machine tags, longitude, latitude, accuracy (1 world .. 16 street; empty without a geotag),
page URL, download URL, licence name, licence URL, server id, farm id, secret, original secret, original
extension, marker (0 photo, 1 video). Some distributions (the ``yfcc100m_dataset`` of Multimedia Commons) prepend
a line number and put the photo hash after the id: 25 fields, both accepted line by line. Text fields are
URL-encoded with ``+`` for spaces.

Files are read as a stream (plain, ``.bz2`` or ``.gz``), never loaded whole; videos, lines without a geotag and
malformed lines are counted, never fatal.
"""

from __future__ import annotations

import bz2
import gzip
import io
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO
from urllib.parse import unquote_plus

from .licenses import license_from_url
from .region import parse_time_seconds

__all__ = ["YFCC_FIELDS", "open_dump", "parse_line", "read_dump"]

#: The 23 fields of a line, in order.
YFCC_FIELDS: tuple[str, ...] = (
    "photo_id",
    "user_nsid",
    "user_nickname",
    "date_taken",
    "date_uploaded",
    "capture_device",
    "title",
    "description",
    "user_tags",
    "machine_tags",
    "longitude",
    "latitude",
    "accuracy",
    "page_url",
    "download_url",
    "license_name",
    "license_url",
    "server_id",
    "farm_id",
    "secret",
    "secret_original",
    "extension_original",
    "marker",
)


def open_dump(path: str | Path) -> TextIO:
    """Open a dump for streaming text reading (``.bz2`` and ``.gz`` decompressed on the fly; bad UTF-8 replaced).

    Raises:
        FileNotFoundError: The file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"YFCC100M dump {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".bz2":
        raw = bz2.open(path, "rb")
    elif suffix == ".gz":
        raw = gzip.open(path, "rb")
    else:
        raw = open(path, "rb")  # noqa: SIM115 - wrapped and returned
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="\n")


def _decode(text: str) -> str:
    return unquote_plus(text).strip()


def parse_line(line: str, licenses: frozenset[int]) -> tuple[dict | None, str | None]:
    """One dump line -> a photo-table row.

    Args:
        line: A line of the dump (23 or 25 tab-separated fields).
        licenses: Flickr licence ids kept.

    Returns:
        ``(row, None)`` or ``(None, reason)``: ``malformed_line`` (wrong field count, bad id, coordinates,
        accuracy or marker), ``video``, ``no_geotag``, ``license_not_allowed`` (or not a Flickr licence),
        ``date_taken_unknown``.
    """
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) == 25:
        fields = [fields[1], *fields[3:]]  # drop the line number and the hash
    elif len(fields) != 23:
        return None, "malformed_line"
    marker = fields[22].strip()
    if marker == "1":
        return None, "video"
    photo_id = fields[0].strip()
    if marker != "0" or not photo_id.isdigit():
        return None, "malformed_line"
    if not fields[10].strip() or not fields[11].strip():
        return None, "no_geotag"
    try:
        lon, lat = float(fields[10]), float(fields[11])
        accuracy = int(fields[12]) if fields[12].strip() else 0
    except ValueError:
        return None, "malformed_line"
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None, "malformed_line"
    licence = license_from_url(fields[16])
    if licence is None or licence.flickr_id not in licenses:
        return None, "license_not_allowed"
    taken = fields[3].strip()
    try:
        parse_time_seconds(taken)
    except ValueError:
        return None, "date_taken_unknown"
    tags = [_decode(t) for t in fields[8].split(",") if t.strip()]
    nsid = fields[1].strip()
    return {
        "photo_id": photo_id,
        "lat": lat,
        "lon": lon,
        "time": taken.replace(" ", "T", 1)[:19],
        "accuracy": accuracy,
        "url": fields[14].strip() or None,
        "page_url": fields[13].strip() or None,
        "license": licence.name,
        "license_url": licence.url,
        "owner": _decode(fields[2]) or nsid or None,
        "owner_id": nsid or None,
        "title": _decode(fields[6]),
        "tags": ", ".join(tags),
        "description": _decode(fields[7]),
        "source": "yfcc100m",
    }, None


def read_dump(path: str | Path, licenses: frozenset[int], counts: Counter) -> Iterator[dict]:
    """Stream the usable rows of a dump; every other line is counted in ``counts`` by reason.

    Args:
        path: The dump (plain, ``.bz2`` or ``.gz``).
        licenses: Flickr licence ids kept.
        counts: Counter updated in place: ``lines`` (every non-empty line read) and one key per skip reason.

    Yields:
        Photo-table rows (without the region/date/accuracy filters, which the caller applies).
    """
    with open_dump(path) as handle:
        for line in handle:
            if not line.strip():
                continue
            counts["lines"] += 1
            row, reason = parse_line(line, licenses)
            if reason is not None:
                counts[reason] += 1
                continue
            yield row  # type: ignore[misc]
