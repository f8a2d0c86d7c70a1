"""The photo table ``graft collect photos`` writes: one parquet row per photo, in the columns ``graft pairs build``
reads (``graft_hf.pairs.photos``: ``photo_id``, ``lat``, ``lon``, ``time``, ``url``, ``license``, ``owner``; the
alt-text is ``title`` and ``tags`` joined) plus the provenance a dataset card and an attribution need.

==============  ==============================================================================================
photo_id        string: Flickr photo id
lat, lon        float64: WGS84 degrees
time            string: capture time ``YYYY-MM-DDTHH:MM:SS``, the camera's wall clock (Flickr stores no zone)
accuracy        int32: geotag accuracy, 1 (world) .. 16 (street)
url             string: image URL to download (a ~640 px rendition for the API, YFCC100M's download URL)
page_url        string: the photo's Flickr page (attribution link)
license         string: licence id, e.g. ``CC-BY-2.0`` (see ``graft_hf.collect.licenses``)
license_url     string: the licence's URL
owner           string: owner's display name (the NSID when there is none), for attribution
owner_id        string: owner's Flickr NSID
title           string
tags            string: tags joined with ``", "``
description     string
source          string: ``flickr-api`` or ``yfcc100m``
cell            string: the sampling-grid cell (``"<row>_<col>"``), added when the table is sampled
==============  ==============================================================================================

Rows are buffered and written as numbered parquet parts (:class:`PartWriter`); :func:`merge_parts` reads them back
with duplicate photo ids removed.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from graft_hf.config import ConfigError
from graft_hf.io import atomic_path

# The photo-table reader and column aliases of `graft pairs build` (one definition of what a photo table is).
from graft_hf.pairs.photos import _ALIASES as PHOTO_COLUMN_ALIASES
from graft_hf.pairs.photos import _read_table

__all__ = ["PHOTO_SCHEMA", "PartWriter", "merge_parts", "read_photo_table", "resolve_column", "rows_to_table"]

logger = logging.getLogger(__name__)

PHOTO_SCHEMA = pa.schema(
    [
        ("photo_id", pa.string()),
        ("lat", pa.float64()),
        ("lon", pa.float64()),
        ("time", pa.string()),
        ("accuracy", pa.int32()),
        ("url", pa.string()),
        ("page_url", pa.string()),
        ("license", pa.string()),
        ("license_url", pa.string()),
        ("owner", pa.string()),
        ("owner_id", pa.string()),
        ("title", pa.string()),
        ("tags", pa.string()),
        ("description", pa.string()),
        ("source", pa.string()),
    ]
)

_PART = re.compile(r"part-(\d{6})\.parquet$")


def rows_to_table(rows: list[dict]) -> pa.Table:
    """Photo rows (dicts with the :data:`PHOTO_SCHEMA` keys) -> an Arrow table in that schema."""
    return pa.Table.from_pylist(rows, schema=PHOTO_SCHEMA)


class PartWriter:
    """Numbered parquet parts in a folder, each written atomically (a kill never leaves half a part).

    Args:
        folder: Where the parts go (created).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        numbers = [int(m[1]) for p in self.folder.iterdir() if (m := _PART.search(p.name))]
        self._next = max(numbers, default=-1) + 1

    def write(self, rows: list[dict]) -> str:
        """Write one part; returns its file name."""
        name = f"part-{self._next:06d}.parquet"
        self._next += 1
        with atomic_path(self.folder / name) as tmp:
            pq.write_table(rows_to_table(rows), tmp)
        return name


def merge_parts(folder: str | Path, names: list[str] | None = None) -> tuple[pa.Table, int]:
    """Read parts (all, or the named ones in that order) into one table, keeping each photo id's first row.

    Returns:
        ``(table, duplicates_removed)``; the table is sorted by ``photo_id`` (a stable order for a resumed run).
    """
    folder = Path(folder)
    if names is None:
        names = sorted(p.name for p in folder.iterdir() if _PART.search(p.name))
    tables = [pq.read_table(folder / name, schema=PHOTO_SCHEMA) for name in names]
    table = pa.concat_tables(tables) if tables else PHOTO_SCHEMA.empty_table()
    ids = np.asarray(table.column("photo_id").to_pylist(), dtype=object)
    if len(ids) == 0:
        return table, 0
    _, first = np.unique(ids.astype(str), return_index=True)  # sorted unique ids, index of first occurrence
    duplicates = len(ids) - len(first)
    return table.take(pa.array(first)), duplicates


def read_photo_table(path: str | Path) -> pa.Table:
    """A photo table as Arrow (parquet, or CSV/TSV with string ids), the way ``graft pairs build`` reads it.

    Raises:
        FileNotFoundError: No such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"photo table {path} not found")
    return _read_table(path)


def resolve_column(table: pa.Table, role: str, explicit: str | None, *, key: str = "columns") -> str:
    """The name of ``table``'s column for a photo-table role (``photo_id``, ``url``, ``image``, ...).

    ``explicit`` wins; otherwise the aliases ``graft pairs build`` looks up (``graft_hf.pairs.photos``), in order,
    case-insensitively.

    Raises:
        ConfigError: (``key``) the named column does not exist, or no alias matches.
    """
    if explicit is not None:
        if explicit not in table.column_names:
            raise ConfigError(key, f"photo table has no column {explicit!r}; columns: {table.column_names}")
        return explicit
    names = {name.lower(): name for name in table.column_names}
    for alias in PHOTO_COLUMN_ALIASES[role]:
        if alias in names:
            return names[alias]
    raise ConfigError(
        key,
        f"photo table has no {role} column: name it one of {list(PHOTO_COLUMN_ALIASES[role])} (columns: {table.column_names})",
    )
