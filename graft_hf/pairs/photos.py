"""Reading the ground-photo table (CSV or Parquet) into validated, de-duplicated columns.

A row is one photo. Duplicates are decided by ``photo_id`` and, where the table has an ``image_hash`` column (the
perceptual hash written by the collection's filtering stage), by an equal hash: distinct photos taken at one spot
share a geotag and are all kept. The ``image`` column is either encoded bytes or a path to a local file (relative
paths resolve against the table's folder); only data that opens as an image is accepted, so no other file is ever
copied into the shards.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from graft_hf.config import ConfigError

from .config import PhotoColumns
from .schema import COORDINATE_COLUMNS

__all__ = ["PhotoTable", "load_photos", "opens_as_image", "parse_time"]

logger = logging.getLogger(__name__)

#: Column names looked up (case-insensitively, in order) for each role of :class:`PhotoColumns` not set explicitly.
_ALIASES: dict[str, tuple[str, ...]] = {
    "photo_id": ("photo_id", "id", "photoid", "key"),
    "lat": COORDINATE_COLUMNS["lat"],
    "lon": COORDINATE_COLUMNS["lon"],
    "time": ("time", "datetime", "date_taken", "datetaken", "timestamp", "capture_time"),
    "image": ("image", "image_path", "path", "file", "filename", "image_bytes", "bytes"),
    "url": ("url", "image_url", "photo_url"),
    "text": ("text", "alt_text", "caption"),
    "license": ("license", "licence"),
    "owner": ("owner", "author", "user", "owner_name"),
    "embedding": ("embedding", "image_embedding", "clip_embedding"),
    "image_hash": ("image_hash", "phash", "perceptual_hash"),
}
_REQUIRED_ROLES = ("photo_id", "lat", "lon")
_URL_PREFIXES = ("http://", "https://", "file://", "s3://", "gs://")


@dataclass
class PhotoTable:
    """Validated photos, one entry per kept row (parallel arrays/lists).

    Attributes:
        photo_id: Unique photo ids.
        lat: Latitudes, shape ``(num_photos,)``, float64 degrees (WGS84).
        lon: Longitudes, shape ``(num_photos,)``.
        time: Capture times as ISO 8601 strings where parseable (else the raw string), or ``None``.
        time_epoch: Capture times in seconds since 1970 (UTC), NaN where unknown, shape ``(num_photos,)``.
        image_path: Local image file per photo, or ``None``.
        image_bytes: Encoded image bytes from the table, or ``None``.
        url: Image URL, or ``None``.
        text: Alt-text (text column, else title and tags joined), or ``None``.
        license: Licence string carried to the output, or ``None``.
        owner: Owner string carried to the output, or ``None``.
        embedding: Precomputed image embedding per photo, or ``None``.
        num_read: Rows in the table before validation.
        dropped: Rows skipped, by reason.
    """

    photo_id: list[str]
    lat: np.ndarray
    lon: np.ndarray
    time: list[str | None]
    time_epoch: np.ndarray
    image_path: list[str | None]
    image_bytes: list[bytes | None]
    url: list[str | None]
    text: list[str | None]
    license: list[str | None]
    owner: list[str | None]
    embedding: list[list[float] | None]
    num_read: int
    dropped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.photo_id)


def parse_time(value: object) -> tuple[str | None, float]:
    """Parse a capture time into (ISO 8601 string, epoch seconds); naive times are taken as UTC.

    Args:
        value: A string, ``datetime``, number (epoch seconds) or ``None``.

    Returns:
        ``(iso, epoch)``; unparseable strings come back unchanged with a NaN epoch.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        stamp = datetime.fromtimestamp(float(value), tz=UTC)
        return stamp.isoformat(), float(value)
    if isinstance(value, datetime):
        stamp = value
    else:
        text = str(value).strip()
        if not text:
            return None, math.nan
        try:
            stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text, math.nan
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.isoformat(), stamp.timestamp()


def _read_table(path: Path) -> pa.Table:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pq.read_table(path)
    if suffix in (".csv", ".tsv", ".txt"):
        delimiter = "\t" if suffix == ".tsv" else ","
        # Ids stay strings ("007" must not become 7).
        return pcsv.read_csv(
            path,
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
            convert_options=pcsv.ConvertOptions(column_types={"photo_id": pa.string(), "id": pa.string()}),
        )
    raise ValueError(f"photo table {path} must be .csv, .tsv or .parquet (got suffix {suffix!r})")


def _column(table: pa.Table, role: str, explicit: str | None, required: bool) -> list | None:
    names = {name.lower(): name for name in table.column_names}
    if explicit is not None:
        if explicit not in table.column_names:
            raise ConfigError(
                "columns", f"photo table has no column {explicit!r} (set for {role}); columns: {table.column_names}"
            )
        return table.column(explicit).to_pylist()
    for alias in _ALIASES[role]:
        if alias in names:
            return table.column(names[alias]).to_pylist()
    if required:
        raise ConfigError(
            "columns",
            f"photo table has no {role} column; name it one of {list(_ALIASES[role])} or map it with {role}=NAME "
            f"(columns found: {table.column_names})",
        )
    return None


def _text_column(table: pa.Table, explicit: str | None) -> list | None:
    text = _column(table, "text", explicit, required=False)
    if text is not None:
        return text
    names = {name.lower(): name for name in table.column_names}
    parts = [table.column(names[n]).to_pylist() for n in ("title", "tags") if n in names]
    if not parts:
        return None
    joined = []
    for values in zip(*parts, strict=True):
        pieces = [str(v).strip() for v in values if v is not None and str(v).strip()]
        joined.append(", ".join(pieces) if pieces else None)
    return joined


def _embedding(value: object) -> list[float] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        value = json.loads(value) if value.startswith("[") else [float(v) for v in value.split()]
    return [float(v) for v in value]  # type: ignore[union-attr]


def _optional_str(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text else None


def _role_columns(table: pa.Table, columns: PhotoColumns) -> dict[str, list]:
    """The values of every role's column (``None`` per row where the table has no such column)."""
    values: dict[str, list] = {}
    for role in (f.name for f in dataclasses.fields(PhotoColumns)):
        explicit = getattr(columns, role)
        if role == "text":
            found = _text_column(table, explicit)
        else:
            found = _column(table, role, explicit, required=role in _REQUIRED_ROLES)
        values[role] = found or [None] * table.num_rows
    return values


def _coordinates(row: dict[str, object]) -> tuple[float, float] | None:
    """``(lat, lon)`` of a row with valid WGS84 coordinates, else ``None``."""
    try:
        lat, lon = float(row["lat"]), float(row["lon"])  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    return lat, lon


def _photo_id(value: object) -> str | None:
    """The row's id as a string; ``None`` when missing or empty (blank ids cannot name a photo or a tile)."""
    text = _optional_str(value)
    return text if text is not None and text.strip() else None


def _image_hash(value: object) -> str | None:
    text = _optional_str(value)
    return text.strip().lower() if text is not None and text.strip() else None


def opens_as_image(source: str | os.PathLike | bytes) -> bool:
    """Whether a file (or encoded bytes) is an image PIL recognises; only its header is read.

    Args:
        source: A file path or encoded bytes.

    Returns:
        ``True`` when PIL identifies an image format and size.
    """
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return image.width > 0 and image.height > 0
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return False


class _Refused(Exception):
    """A row's image source is unusable; ``reason`` is its drop-count key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _local_image(image: str, base: Path) -> str:
    """The path of a local image file; relative paths resolve against the table's folder."""
    local = Path(image) if Path(image).is_absolute() else base / image
    if not local.is_file():
        raise _Refused("missing_image_file")
    if not opens_as_image(local):
        raise _Refused("not_an_image")
    return str(local)


def _image_source(row: dict[str, object], base: Path) -> tuple[str | None, bytes | None, str | None]:
    """``(image_path, image_bytes, url)`` of a row.

    Raises:
        _Refused: The row names a local file that does not exist or is not an image, or holds bytes that are not
            an image.
    """
    image_path, image_bytes, url = None, None, _optional_str(row["url"])
    image = row["image"]
    if isinstance(image, dict):  # a datasets Image struct
        image_bytes, image = image.get("bytes"), image.get("path")
    if isinstance(image, (bytes, bytearray)):
        image_bytes = bytes(image)
    elif isinstance(image, str) and image:
        if image.startswith(_URL_PREFIXES):
            url = url or image
        else:
            image_path = _local_image(image, base)
    if image_bytes is not None and not opens_as_image(image_bytes):
        raise _Refused("not_an_image")
    return image_path, image_bytes, url


def _append(out: PhotoTable, row: dict[str, object], photo_id: str, source: tuple) -> float:
    """Append a kept row's non-coordinate fields; returns its capture time in epoch seconds."""
    image_path, image_bytes, url = source
    iso, epoch = parse_time(row["time"])
    out.photo_id.append(photo_id)
    out.time.append(iso)
    out.image_path.append(image_path)
    out.image_bytes.append(image_bytes)
    out.url.append(url)
    out.text.append(_optional_str(row["text"]))
    out.license.append(_optional_str(row["license"]))
    out.owner.append(_optional_str(row["owner"]))
    out.embedding.append(_embedding(row["embedding"]))
    return epoch


def load_photos(path: str | os.PathLike, columns: PhotoColumns | None = None) -> PhotoTable:
    """Read and validate the photo table.

    Rows are dropped (and counted by reason) for: an empty ``photo_id`` (``invalid_photo_id``), invalid coordinates,
    a duplicate ``photo_id`` or ``image_hash`` (the first row wins), a local image path that does not exist
    (``missing_image_file``), or an image (path or bytes) that does not open as one (``not_an_image``). Photos
    sharing coordinates are distinct photos and all kept.

    Args:
        path: CSV/TSV/Parquet file.
        columns: Column names; by default the usual aliases are looked up.

    Returns:
        The kept photos in table order.

    Raises:
        ConfigError: (key ``columns``) a required column is missing or a named column does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"photo table {path} not found")
    table = _read_table(path)
    values = _role_columns(table, columns or PhotoColumns())
    n = table.num_rows
    out = PhotoTable([], np.empty(0), np.empty(0), [], np.empty(0), [], [], [], [], [], [], [], num_read=n)
    kept: list[tuple[float, float, float]] = []  # lat, lon, epoch
    seen_ids: set[str] = set()
    seen_hashes: set[str] = set()
    for i in range(n):
        row = {role: column[i] for role, column in values.items()}
        photo_id = _photo_id(row["photo_id"])
        if photo_id is None:
            out.dropped["invalid_photo_id"] += 1
            continue
        coords = _coordinates(row)
        if coords is None:
            out.dropped["invalid_coordinates"] += 1
            continue
        if photo_id in seen_ids:
            out.dropped["duplicate_photo_id"] += 1
            continue
        seen_ids.add(photo_id)
        image_hash = _image_hash(row["image_hash"])
        if image_hash is not None and image_hash in seen_hashes:
            out.dropped["duplicate_image_hash"] += 1
            continue
        try:
            source = _image_source(row, path.absolute().parent)
        except _Refused as refused:
            out.dropped[refused.reason] += 1
            continue
        if image_hash is not None:
            seen_hashes.add(image_hash)
        kept.append((*coords, _append(out, row, photo_id, source)))
    columns_out = np.asarray(kept, dtype=np.float64).reshape(-1, 3)
    out.lat, out.lon, out.time_epoch = columns_out[:, 0].copy(), columns_out[:, 1].copy(), columns_out[:, 2].copy()
    logger.info("read %d photos from %s, kept %d, dropped %s", n, path, len(out), dict(out.dropped))
    return out
