"""Reading the ground-photo table (CSV or Parquet) into validated, de-duplicated columns."""

from __future__ import annotations

import dataclasses
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

from graft_hf.config import ConfigError

from .config import PhotoColumns
from .schema import COORDINATE_COLUMNS

__all__ = ["PhotoTable", "load_photos", "parse_time"]

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
    """``(lat, lon)`` of a row with an id and valid WGS84 coordinates, else ``None``."""
    try:
        lat, lon = float(row["lat"]), float(row["lon"])  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or row["photo_id"] is None:
        return None
    return lat, lon


def _image_source(row: dict[str, object], base: Path) -> tuple[str | None, bytes | None, str | None] | None:
    """``(image_path, image_bytes, url)`` of a row; ``None`` when it names a local image file that does not exist."""
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
            local = Path(image) if Path(image).is_absolute() else base / image
            if not local.is_file():
                return None
            image_path = str(local)
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

    Rows are dropped (and counted by reason) for: invalid coordinates, a duplicate ``photo_id`` (the first row
    wins), coordinates identical to an earlier photo's, or a local image path that does not exist.

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
    seen_coords: set[tuple[float, float]] = set()
    for i in range(n):
        row = {role: column[i] for role, column in values.items()}
        coords = _coordinates(row)
        if coords is None:
            out.dropped["invalid_coordinates"] += 1
            continue
        photo_id = str(row["photo_id"])
        if photo_id in seen_ids:
            out.dropped["duplicate_photo_id"] += 1
            continue
        seen_ids.add(photo_id)
        if coords in seen_coords:
            out.dropped["duplicate_coordinates"] += 1
            continue
        seen_coords.add(coords)
        source = _image_source(row, path.parent)
        if source is None:
            out.dropped["missing_image_file"] += 1
            continue
        kept.append((*coords, _append(out, row, photo_id, source)))
    columns_out = np.asarray(kept, dtype=np.float64).reshape(-1, 3)
    out.lat, out.lon, out.time_epoch = columns_out[:, 0].copy(), columns_out[:, 1].copy(), columns_out[:, 2].copy()
    logger.info("read %d photos from %s, kept %d, dropped %s", n, path, len(out), dict(out.dropped))
    return out
