"""``graft collect photos``: geotagged ground photos of a region and date range -> the photo table.

Two sources write the same table (:mod:`graft_hf.collect.table`):

* the Flickr API (``flickr.photos.search`` through ``flickrapi``; key and secret from ``FLICKR_API_KEY`` /
  ``FLICKR_API_SECRET``): query cells split until each is under Flickr's result cap (:mod:`.cells`), resumable
  after a kill from the state folder;
* a YFCC100M metadata dump (:mod:`.yfcc`), streamed.

Both apply the same filters (region, capture dates, geotag accuracy, licence), remove duplicate photo ids, then
sample uniformly over the region (:mod:`.sampling`). Next to ``output`` go ``<stem>.report.json`` (counts by
reason) and ``<stem>.cells.csv`` (photos per sampling cell, had and kept).
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from graft_hf.io import atomic_path, write_json

from .cells import CellState, harvest
from .config import CollectPhotosConfig
from .flickr import FlickrClient, credentials_from_env
from .licenses import NON_COMMERCIAL_LICENSE_IDS
from .region import DateRange, Region, parse_time_seconds
from .sampling import sample_uniform
from .table import PartWriter, merge_parts

__all__ = ["collect_photos", "report_paths"]

logger = logging.getLogger(__name__)


def report_paths(output: str | Path) -> tuple[Path, Path]:
    """``(report.json, cells.csv)`` written beside the photo table ``output``."""
    output = Path(output)
    stem = output.with_suffix("") if output.suffix else output
    return stem.with_name(stem.name + ".report.json"), stem.with_name(stem.name + ".cells.csv")


class _RowFilter:
    """The filters both sources share: region, capture dates, geotag accuracy (counted by reason)."""

    def __init__(self, region: Region, dates: DateRange, min_accuracy: int) -> None:
        self.region, self.dates, self.min_accuracy = region, dates, min_accuracy

    def __call__(self, row: dict) -> str | None:
        if row["accuracy"] < self.min_accuracy:
            return "low_accuracy"
        if not self.region.contains(np.array([row["lon"]]), np.array([row["lat"]]))[0]:
            return "outside_region"
        if not self.dates.start <= parse_time_seconds(row["time"]) <= self.dates.end:
            return "outside_dates"
        return None


def _licence_ids(config: CollectPhotosConfig) -> frozenset[int]:
    return frozenset(config.licenses) | (
        frozenset(NON_COMMERCIAL_LICENSE_IDS) if config.non_commercial else frozenset()
    )


def _from_yfcc(config: CollectPhotosConfig, keep: _RowFilter, licences: frozenset[int], folder: Path) -> dict:
    """Stream the dump into fresh parts in ``folder``; returns the source's counts."""
    from .yfcc import read_dump

    if folder.exists():  # a dump is re-read from the start: parts of an interrupted read are stale
        shutil.rmtree(folder)
    writer, rows, counts, shown = PartWriter(folder), [], Counter(), 0
    with tqdm(desc="YFCC100M lines", unit=" lines", disable=not config.progress) as bar:
        for row in read_dump(config.yfcc, licences, counts):  # type: ignore[arg-type]
            reason = keep(row)
            if reason is not None:
                counts[reason] += 1
                continue
            rows.append(row)
            if len(rows) >= config.flush_rows:
                writer.write(rows)
                rows = []
            if counts["lines"] - shown >= 50_000:
                bar.update(counts["lines"] - shown)
                shown = counts["lines"]
        bar.update(counts["lines"] - shown)
    if rows:
        writer.write(rows)
    lines = counts.pop("lines", 0)
    return {"source": "yfcc100m", "lines_read": lines, "skipped": dict(sorted(counts.items()))}


def _from_flickr(
    config: CollectPhotosConfig,
    keep: _RowFilter,
    licences: frozenset[int],
    folder: Path,
    credentials: tuple[str, str] | None,
) -> tuple[dict, list[str]]:
    """Harvest the API into the state folder; returns the source's counts and the part names to merge."""
    key, secret = credentials or credentials_from_env()
    state = CellState(folder, config.query_fingerprint())
    params = {
        "has_geo": 1,
        "accuracy": config.min_accuracy,
        "license": ",".join(str(i) for i in sorted(licences)),
        "media": "photos",
        "sort": "date-posted-asc",  # new uploads go to the end, so paging does not shift under us
    }
    with (
        FlickrClient(
            key,
            secret,
            config.endpoint,
            timeout=config.timeout,
            requests_per_second=config.requests_per_second,
            max_retries=config.max_retries,
            backoff_seconds=config.backoff_seconds,
        ) as client,
        tqdm(desc="Flickr photos", unit=" photos", disable=not config.progress) as bar,
    ):
        stats = harvest(
            client,
            keep.region,
            keep.dates,
            params,
            state,
            licenses=licences,
            keep_row=keep,
            per_page=config.per_page,
            result_cap=config.result_cap,
            min_degrees=config.min_cell_degrees,
            flush_rows=config.flush_rows,
            progress=bar.update,
        )
    skipped = Counter()
    for cell in state.done.values():
        skipped.update(cell.get("skipped", {}))
    totals = {k: sum(c[k] for c in state.done.values()) for k in ("total", "returned")}
    summary = {
        "source": "flickr-api",
        "api_calls_this_run": stats.calls,
        "retries_this_run": dict(client.retries),
        "query_cells_finished": len(state.done),
        "query_cells_split": len(state.split),
        "query_cells_capped": sum(c["total"] > config.result_cap for c in state.done.values()),
        "photos_reported": totals["total"],
        "photos_returned": totals["returned"],
        "photos_missed": sum(max(c["total"] - c["returned"], 0) for c in state.done.values()),
        "skipped": dict(sorted(skipped.items())),
    }
    if summary["photos_missed"]:
        logger.warning(
            "%d photos were reported by Flickr but not returned (query cells at the cap or results that vanished "
            "while paging); see the report",
            summary["photos_missed"],
        )
    return summary, state.part_names


def _sampled(table: pa.Table, config: CollectPhotosConfig) -> tuple[pa.Table, pa.Table]:
    """The uniformly sampled rows (with their ``cell``) and the per-cell counts."""
    ids = table.column("photo_id").to_pylist()
    lat = table.column("lat").to_numpy()
    lon = table.column("lon").to_numpy()
    sample = sample_uniform(ids, lat, lon, config.cell_size_km, config.max_photos_per_cell, config.seed)
    table = table.append_column("cell", pa.array(sample.cell, pa.string()))
    return table.filter(pa.array(sample.keep)), sample.counts


def collect_photos(config: CollectPhotosConfig, *, credentials: tuple[str, str] | None = None) -> dict:
    """Collect the photo table of a region and date range (see the module docstring).

    Args:
        config: What to collect.
        credentials: Flickr ``(key, secret)``; default ``FLICKR_API_KEY``/``FLICKR_API_SECRET``. Never written.

    Returns:
        The report (also written to ``<stem>.report.json``).

    Raises:
        ConfigError: Invalid region or dates.
        FlickrAuthError: Missing or refused Flickr credentials.
        FlickrUnavailableError: Flickr kept failing; finished cells are kept, rerun to resume.
        ValueError: No photo matched (the report is written first).
    """
    region = Region.from_config(config.bbox, config.region)
    dates = DateRange.from_config(config.start, config.end)
    keep = _RowFilter(region, dates, config.min_accuracy)
    licences = _licence_ids(config)
    state = Path(config.state_path)
    if config.yfcc is not None:
        source, parts = _from_yfcc(config, keep, licences, state / "yfcc"), None
        merged, duplicates = merge_parts(state / "yfcc")
    else:
        source, parts = _from_flickr(config, keep, licences, state, credentials)
        merged, duplicates = merge_parts(state, parts)
    table, counts = _sampled(merged, config)
    report_path, cells_path = report_paths(config.output)
    licence_counts = Counter(table.column("license").to_pylist())
    report = {
        "config": {k: v for k, v in config.query_fingerprint().items()},
        "sampling": {
            "cell_size_km": config.cell_size_km,
            "max_photos_per_cell": config.max_photos_per_cell,
            "seed": config.seed,
            "cells_occupied": counts.num_rows,
            "cells_over_cap": int(np.sum(counts.column("photos").to_numpy() > counts.column("kept").to_numpy())),
        },
        **source,
        "duplicate_photo_ids_removed": duplicates,
        "photos_found": merged.num_rows,
        "photos_kept": table.num_rows,
        "licenses": dict(sorted(licence_counts.items())),
        "output": str(config.output),
        "cells_csv": str(cells_path),
    }
    with atomic_path(cells_path) as tmp:
        pcsv.write_csv(counts, tmp)
    write_json(report_path, report)
    if table.num_rows == 0:
        raise ValueError(
            f"no photo matched in {region.bounds} between {config.start} and {config.end} (skipped: "
            f"{report.get('skipped')}); widen the region or the dates, lower min_accuracy or allow more licenses. "
            f"Report: {report_path}"
        )
    with atomic_path(config.output) as tmp:
        pq.write_table(table, tmp)
    logger.info(
        "wrote %s: %d photos kept of %d found (%d sampling cells); report %s",
        config.output,
        table.num_rows,
        merged.num_rows,
        counts.num_rows,
        report_path,
    )
    return report
