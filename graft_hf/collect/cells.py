"""Covering a region and a date range with Flickr queries that each stay under the result cap, resumably.

Flickr returns at most about 4,000 results per search however many match; paging further repeats earlier
results. A query cell (a lon/lat box and an inclusive range of capture seconds) whose reported ``total`` exceeds
the cap is split: into four quadrants while the box is wider than ``min_cell_degrees``, then into two halves of its
time range, until every cell is under the cap. A cell that cannot be split further (one second at the minimum
size) is paged to the cap and the photos it could not return are counted (``photos_missed``), never silently lost.

The walk is depth-first and deterministic, so a rerun visits the same cells. Its state is a folder:

* ``state.jsonl``: one JSON object per line, appended and fsynced: ``{"split": KEY}`` when a cell was split, or
  ``{"part": NAME, "cells": [{"key": KEY, "total": N, "rows": M}, ...]}`` when the rows of finished cells were
  written to ``NAME``; a torn last line (a kill while writing) is ignored;
* ``part-NNNNNN.parquet``: the rows of finished cells, written atomically before their state line.

A rerun skips finished and split cells and redoes only cells whose rows were not yet written (at most
``flush_rows`` photos of work). The first line records the query settings; resuming with other settings is refused.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from graft_hf.io import atomic_write, fsync_dir

from .flickr import FlickrClient, photo_row
from .region import DateRange, Region, seconds_to_iso
from .table import PartWriter

__all__ = ["Cell", "CellState", "HarvestStats", "harvest"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cell:
    """A query cell: a lon/lat box and an inclusive range of capture times (wall-clock seconds)."""

    west: float
    south: float
    east: float
    north: float
    start: int
    end: int

    @property
    def key(self) -> str:
        """A stable text key (exact float reprs)."""
        return ",".join(repr(v) for v in (self.west, self.south, self.east, self.north, self.start, self.end))

    def params(self) -> dict[str, object]:
        """The cell's ``flickr.photos.search`` parameters (the taken-date bounds are inclusive MySQL datetimes)."""
        return {
            "bbox": ",".join(f"{v:.6f}" for v in (self.west, self.south, self.east, self.north)),
            "min_taken_date": seconds_to_iso(self.start).replace("T", " "),
            "max_taken_date": seconds_to_iso(self.end).replace("T", " "),
        }

    def children(self, min_degrees: float) -> list[Cell] | None:
        """Four quadrants (box wider than ``min_degrees``) or two time halves; ``None`` when it cannot be split."""
        if max(self.east - self.west, self.north - self.south) > min_degrees:
            mid_lon, mid_lat = (self.west + self.east) / 2, (self.south + self.north) / 2
            return [
                Cell(w, s, e, n, self.start, self.end)
                for s, n in ((self.south, mid_lat), (mid_lat, self.north))
                for w, e in ((self.west, mid_lon), (mid_lon, self.east))
            ]
        if self.end > self.start:
            middle = (self.start + self.end) // 2
            return [
                Cell(self.west, self.south, self.east, self.north, self.start, middle),
                Cell(self.west, self.south, self.east, self.north, middle + 1, self.end),
            ]
        return None


@dataclass
class HarvestStats:
    """Counts of a harvest (this run's queries; totals over every run for cells and photos).

    Attributes:
        calls: API calls made by this run.
        cells_finished: Query cells paged to the end.
        cells_split: Query cells split because they reported more than the cap.
        cells_capped: Cells over the cap that could not be split further.
        photos_reported: Sum of ``total`` over finished cells.
        photos_returned: Records returned by the finished cells.
        photos_missed: Photos cells reported but paging did not return (capped cells, results that vanished); an
            upper bound, as a photo on the edge between two capped cells is counted by both.
        skipped: Records not kept, by reason.
    """

    calls: int = 0
    cells_finished: int = 0
    cells_split: int = 0
    cells_capped: int = 0
    photos_reported: int = 0
    photos_returned: int = 0
    photos_missed: int = 0
    skipped: Counter = field(default_factory=Counter)


class CellState:
    """The resumable state folder of a harvest (see the module docstring).

    Args:
        folder: The state folder.
        settings: The query settings; a folder made with other settings is refused.
    """

    def __init__(self, folder: str | os.PathLike, settings: dict[str, object]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "state.jsonl"
        self.parts = PartWriter(self.folder)
        self.split: set[str] = set()
        self.done: dict[str, dict] = {}
        self.part_names: list[str] = []
        self._pending_rows: list[dict] = []
        self._pending_cells: list[dict] = []
        self._load(settings)

    def _load(self, settings: dict[str, object]) -> None:
        if not self.path.exists():
            self._append({"settings": settings})
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                if number == len(lines) - 1:  # a kill while appending: drop the torn line for good
                    logger.warning("dropping the torn last line of %s (a kill while writing)", self.path)
                    atomic_write(self.path, "".join(f"{kept}\n" for kept in lines[:-1]), durable=True)
                    continue
                raise ValueError(
                    f"{self.path} line {number + 1} is not JSON; delete {self.folder} to start over"
                ) from error
            if "settings" in entry and entry["settings"] != settings:
                raise ValueError(
                    f"{self.folder} holds a collection made with other settings ({entry['settings']}); delete it "
                    f"or write elsewhere (state_dir) to collect with these ({settings})"
                )
            if "split" in entry:
                self.split.add(entry["split"])
            if "part" in entry and (self.folder / entry["part"]).exists():
                self.part_names.append(entry["part"])
                for cell in entry["cells"]:
                    self.done[cell["key"]] = cell

    def _append(self, entry: dict) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        fsync_dir(self.folder)

    def mark_split(self, cell: Cell) -> None:
        self.split.add(cell.key)
        self._append({"split": cell.key})

    def finish(self, cell: Cell, rows: list[dict], total: int, returned: int, skipped: Counter) -> None:
        """Buffer a finished cell's rows (written by :meth:`flush`)."""
        self._pending_rows.extend(rows)
        entry = {"key": cell.key, "total": total, "returned": returned, "rows": len(rows), "skipped": dict(skipped)}
        self._pending_cells.append(entry)
        self.done[cell.key] = entry

    @property
    def pending_rows(self) -> int:
        return len(self._pending_rows)

    def flush(self) -> None:
        """Write buffered rows as a part, then record their cells as finished."""
        if not self._pending_cells:
            return
        name = self.parts.write(self._pending_rows)
        self._append({"part": name, "cells": self._pending_cells})
        self.part_names.append(name)
        self._pending_rows, self._pending_cells = [], []


def _walk(root: Cell, state: CellState, region: Region, min_degrees: float) -> Iterator[Cell]:
    """Cells still to query, depth first; children of split cells are expanded from the state."""
    stack = [root]
    while stack:
        cell = stack.pop()
        if cell.key in state.done or not region.intersects_box(cell.west, cell.south, cell.east, cell.north):
            continue
        if cell.key in state.split:
            stack.extend(reversed(cell.children(min_degrees) or []))
            continue
        yield cell
        if cell.key in state.split:  # the caller split it
            stack.extend(reversed(cell.children(min_degrees) or []))


def harvest(
    client: FlickrClient,
    region: Region,
    dates: DateRange,
    base_params: dict[str, object],
    state: CellState,
    *,
    licenses: frozenset[int],
    keep_row: Callable[[dict], str | None],
    per_page: int,
    result_cap: int,
    min_degrees: float,
    flush_rows: int,
    progress: Callable[[int], None] | None = None,
) -> HarvestStats:
    """Page every query cell of the region and date range into the state folder.

    Args:
        client: The Flickr client.
        region: The region (cells outside a polygon are never queried).
        dates: The capture-date range.
        base_params: Parameters of every search (``has_geo``, ``license``, ``accuracy``, ``sort``, ...).
        state: The state folder.
        licenses: Licence ids kept.
        keep_row: Returns the reason a parsed row is dropped (outside the region, dates, accuracy), or ``None``.
        per_page: Results per page.
        result_cap: Results a query returns at most.
        min_degrees: Smallest box side split in space.
        flush_rows: Write finished cells once this many rows are buffered.
        progress: Called with the number of rows kept from each finished cell.

    Returns:
        The counts.
    """
    stats = HarvestStats()
    west, south, east, north = region.bounds
    root = Cell(west, south, east, north, dates.start, dates.end)
    for cell in _walk(root, state, region, min_degrees):
        first = client.search({**base_params, **cell.params()}, page=1, per_page=per_page)
        children = cell.children(min_degrees)
        if first.total > result_cap and children is not None:
            state.mark_split(cell)
            stats.cells_split += 1
            continue
        records = list(first.photos)
        pages = min(first.pages, math.ceil(min(first.total, result_cap) / per_page))
        for page in range(2, pages + 1):
            batch = client.search({**base_params, **cell.params()}, page=page, per_page=per_page).photos
            if not batch:
                break
            records.extend(batch)
        rows, seen, skipped = [], set(), Counter()
        for record in records:
            row, reason = photo_row(record, licenses)
            reason = reason or keep_row(row)  # type: ignore[arg-type]
            if reason is None and row["photo_id"] in seen:  # type: ignore[index]
                reason = "repeated_in_paging"
            if reason is not None:
                skipped[reason] += 1
                continue
            seen.add(row["photo_id"])  # type: ignore[index]
            rows.append(row)
        returned = len({str(r.get("id")) for r in records})
        stats.cells_capped += int(first.total > result_cap)
        stats.photos_missed += max(first.total - returned, 0)
        stats.cells_finished += 1
        stats.photos_reported += first.total
        stats.photos_returned += returned
        stats.skipped.update(skipped)
        state.finish(cell, rows, first.total, returned, skipped)
        if progress is not None:
            progress(len(rows))
        if state.pending_rows >= flush_rows:
            state.flush()
    state.flush()
    stats.calls = client.calls
    return stats
