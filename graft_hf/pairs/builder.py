"""``graft pairs build``: sample tiles, cut crops, write resumable, deterministic parquet shards and the card.

Inputs are read in :func:`prepare_build` (photo table, catalogue, sampling: no pixels); each tile is then built by
:func:`graft_hf.pairs.tiles.build_tile` (crop warped to the output GSD, photos, row) in worker processes.

Layout of the output folder::

    data/train-00000-of-00012.parquet   shards (one row per tile; see schema.py)
    README.md                           dataset card with the `configs:` block (written when every shard exists)
    LICENSE.md                          the imagery's and the kept photos' licences (idem)
    build_report.json                   read / kept / dropped-by-reason counts (idem)
    _build/plan.json                    fingerprint of the settings the shards were built with
    _build/manifest/<shard>.json        one entry per finished shard (sha256, rows, tiles dropped, failed reads)

Bad records are skipped and counted by reason, never fatal: photos (``load_photos``), scenes that cannot be opened
(``read_catalog``), scenes whose pixels cannot be read (the tile tries its next scene; the report counts failed
reads per file), photos whose image does not decode (stored without bytes). ``strict_rasters`` makes unusable
rasters fatal instead.

Tile ``i`` (the plan's tile order) goes to output shard ``i // tiles_per_shard``; shard ``k`` is written by
job ``k % num_shards``. Each shard depends only on its own tiles, so the bytes are identical for any ``workers``
and any split over machines. Shards are written under a temporary name and renamed atomically, then entered in the
manifest; a rerun skips shards in the manifest, so a killed build resumes where it stopped.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from graft_hf.config import ConfigError
from graft_hf.io import atomic_write
from graft_hf.resume import check_resume
from graft_hf.workers import exit_with_parent

from .card import write_card
from .catalog import Catalogue, Scene, read_catalog
from .config import PairsBuildConfig
from .photos import PhotoTable, load_photos
from .raster import RasterReader
from .sampling import Plan, plan_tiles
from .schema import pairs_table
from .tiles import TileJob, build_tile, tile_jobs

__all__ = ["ShardResult", "benchmark_tile_reads", "build_pairs", "plan_digest", "prepare_build", "shard_name"]

logger = logging.getLogger(__name__)


@dataclass
class ShardResult:
    """What one finished shard contributes to the build report.

    Attributes:
        name: Shard file name.
        rows: Tiles written.
        photo_rows: Photo entries written.
        dropped_tiles: Tile ids without a row, by reason (``mostly_nodata``, ``read_failed``).
        photo_images: Photos stored without image bytes, by reason.
        read_failures: Failed raster reads per href.
        sha256: Digest of the shard as written.
        size: Bytes of the shard as written.
        data_bytes: Uncompressed bytes of its column data (the card's ``num_bytes``).
    """

    name: str
    rows: int
    photo_rows: int
    dropped_tiles: dict[str, list[str]]
    photo_images: dict[str, int]
    read_failures: dict[str, int]
    sha256: str
    size: int
    data_bytes: int


@dataclass
class BuildInputs:
    """The read inputs of a build and their sampled plan (cheap: no pixels are read).

    Attributes:
        photos: The validated photos.
        catalogue: The usable scenes and the skipped ones.
        plan: The sampled tiles.
    """

    photos: PhotoTable
    catalogue: Catalogue
    plan: Plan

    @property
    def scenes(self) -> list[Scene]:
        """The usable scenes."""
        return self.catalogue.scenes


def shard_name(index: int, total: int) -> str:
    """File name of output shard ``index`` of ``total``."""
    return f"train-{index:05d}-of-{total:05d}.parquet"


def prepare_build(config: PairsBuildConfig) -> BuildInputs:
    """Read the inputs and sample every tile (cheap: no pixels are read).

    Args:
        config: Build configuration.

    Returns:
        The photos, the catalogue and the plan.
    """
    photos = load_photos(config.photos, config.columns)
    catalogue = read_catalog(config.catalog, config.rasters, config.sensor, strict=config.strict_rasters)
    plan = plan_tiles(photos, catalogue.scenes, config)
    logger.info("sampled %d tiles over %d frame(s) from %d photos", len(plan.tiles), plan.num_frames, len(photos))
    if not plan.tiles:
        _explain_empty_plan(photos, plan)
    return BuildInputs(photos, catalogue, plan)


def _explain_empty_plan(photos: PhotoTable, plan: Plan) -> None:
    """Say why no tile was sampled, with the fix for the usual causes."""
    dropped = {k: v for k, v in (Counter(photos.dropped) + Counter(plan.photo_dropped)).items() if v}
    hints = []
    if dropped.get("only_scenes_without_cloud_cover"):
        hints.append(
            "scenes without a cloud cover value are not taken as clear for this sensor: give cloud cover in the "
            "catalogue (`cloud_cover` column or STAC eo:cloud_cover) or set unknown_cloud_cover='clear'"
        )
    if dropped.get("only_cloudy_scenes"):
        hints.append("every covering scene is at or above max_cloud_cover")
    if dropped.get("outside_rasters"):
        hints.append("photos outside every raster: check that the catalogue covers the photos' area")
    logger.warning(
        "no tile sampled from %d photos read (dropped by reason: %s)%s",
        photos.num_read,
        dropped,
        "; " + "; ".join(hints) if hints else "",
    )


_READERS: dict[str, RasterReader] = {}


def _process_reader(read_mode: str) -> RasterReader:
    """One reader per process, kept across shards (open datasets in window mode, whole rasters in full mode)."""
    if read_mode not in _READERS:
        _READERS[read_mode] = RasterReader(read_mode)
    return _READERS[read_mode]


def _close_readers() -> None:
    for reader in _READERS.values():
        reader.close()
    _READERS.clear()


def _data_bytes(shard: bytes) -> int:
    metadata = pq.ParquetFile(pa.BufferReader(shard)).metadata
    return sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))


def _write_shard(name: str, jobs: list[TileJob], config: PairsBuildConfig) -> ShardResult:
    """Worker entry point: build the rows of one shard and write it atomically."""
    reader = _process_reader(config.read_mode)
    rows: list[dict] = []
    dropped: dict[str, list[str]] = {}
    photo_images: Counter = Counter()
    read_failures: Counter = Counter()
    for job in jobs:
        outcome = build_tile(job, config, reader)
        photo_images.update(outcome.photo_images)
        read_failures.update(outcome.read_failures)
        if outcome.row is None:
            assert outcome.dropped is not None, "a tile without a row says why"
            dropped.setdefault(outcome.dropped, []).append(job.tile_id)
        else:
            rows.append(outcome.row)
    sink = pa.BufferOutputStream()
    pq.write_table(pairs_table(rows), sink, row_group_size=config.row_group_size, compression="zstd")
    data = sink.getvalue().to_pybytes()
    out = Path(config.output_dir)
    atomic_write(out / "data" / name, data)
    result = ShardResult(
        name=name,
        rows=len(rows),
        photo_rows=sum(len(r["photos"]) for r in rows),
        dropped_tiles=dropped,
        photo_images=dict(sorted(photo_images.items())),
        read_failures=dict(sorted(read_failures.items())),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        data_bytes=_data_bytes(data),
    )
    atomic_write(out / "_build" / "manifest" / f"{name}.json", json.dumps(dataclasses.asdict(result)))
    return result


def _finished(out: Path, name: str) -> ShardResult | None:
    entry = out / "_build" / "manifest" / f"{name}.json"
    shard = out / "data" / name
    if not entry.is_file() or not shard.is_file():
        return None
    # Shards appear only by atomic rename, so existence means complete. Size and hash are a record, not checked:
    # `graft pairs embed` rewrites shards in place and a rerun of the build must not undo that.
    return ShardResult(**json.loads(entry.read_text()))


def plan_digest(photos: PhotoTable, scenes: list[Scene], plan: Plan) -> str:
    """SHA-256 of everything that decides the shards' content: tiles, their photos' fields and their scenes.

    Args:
        photos: The photos.
        scenes: The scenes.
        plan: The sampled plan.

    Returns:
        Hex digest; equal on every machine for equal inputs and settings.
    """
    digest = hashlib.sha256()
    for tile in plan.tiles:
        digest.update(repr((tile.tile_id, tile.crs, tile.x, tile.y)).encode())
        for m in tile.members:
            fields = (photos.photo_id[m], photos.lat[m], photos.lon[m], photos.time[m], photos.license[m])
            digest.update(
                repr((*fields, photos.owner[m], photos.text[m], photos.image_path[m], photos.url[m])).encode()
            )
        for s in tile.candidates:
            digest.update(repr((scenes[s].href, scenes[s].datetime, tuple(scenes[s].transform)[:6])).encode())
    return digest.hexdigest()


def _check_plan(out: Path, config: PairsBuildConfig, digest: str) -> None:
    """Record the build's settings and inputs, or refuse to resume a build made with other ones."""
    fingerprint = {"config": config.plan_fingerprint_fields(), "plan_sha256": digest}
    path = out / "_build" / "plan.json"
    if not path.exists():
        atomic_write(path, json.dumps(fingerprint, sort_keys=True, default=str))
        return
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError("output_dir", f"{path} is unreadable ({error}); use a new output folder") from error
    check_resume(
        saved if isinstance(saved, dict) else {"plan.json": saved},
        fingerprint,
        what=f"the build in {out}",
        fix="use a new output folder (or delete this one) to start over, or rerun with the original settings "
        "and inputs to resume",
        key="output_dir",
        labels={"plan_sha256": "the inputs (photos, scenes or the sampled tiles)"},
        log=out / "_build" / "resume_log.jsonl",
    )


def _summed(counts: list[dict[str, int]]) -> dict[str, int]:
    total: Counter = Counter()
    for c in counts:
        total.update(c)
    return dict(sorted(total.items()))


def _scene_report(inputs: BuildInputs, results: list[ShardResult]) -> dict:
    catalogue = inputs.catalogue
    return {
        "listed": catalogue.listed,
        "usable": len(catalogue.scenes),
        "skipped": dict(sorted(catalogue.skipped.items())),
        "skip_errors": catalogue.errors,
        **inputs.plan.scenes,
        "read_failed": _summed([r.read_failures for r in results]),
    }


def _report(config: PairsBuildConfig, inputs: BuildInputs, results: list[ShardResult]) -> dict:
    photos, scenes, plan = inputs.photos, inputs.scenes, inputs.plan
    dropped: dict[str, set[str]] = {}
    for r in results:
        for reason, ids in r.dropped_tiles.items():
            dropped.setdefault(reason, set()).update(ids)
    dropped_ids = set().union(*dropped.values())
    kept_tiles = [t for t in plan.tiles if t.tile_id not in dropped_ids]
    kept = np.zeros(len(photos), dtype=bool)
    for tile in kept_tiles:
        kept[list(tile.members)] = True
    in_any_tile = np.zeros(len(photos), dtype=bool)
    for tile in plan.tiles:
        in_any_tile[list(tile.members)] = True
    photo_dropped = Counter(photos.dropped) + Counter(plan.photo_dropped)
    photo_dropped["tile_dropped"] = int((in_any_tile & ~kept).sum())
    licences = Counter(photos.license[i] or "unknown" for i in np.flatnonzero(kept))
    source_gsd = sorted({s.gsd for s in scenes})
    photo_images = _summed([r.photo_images for r in results])
    return {
        "sensor": config.sensor,
        "seed": config.seed,
        "crop_size": config.crop_size,
        "footprint_size": config.footprint_size,
        "gsd": [config.output_gsd] if config.output_gsd is not None else source_gsd,
        "source_gsd": source_gsd,
        "resampling": config.resampling,
        "tile_placement": plan.placement,
        "photos": {
            "read": photos.num_read,
            "kept": int(kept.sum()),
            "dropped": {k: int(v) for k, v in sorted(photo_dropped.items()) if v},
        },
        "tiles": {
            "sampled": len(plan.tiles),
            "kept": len(kept_tiles),
            "dropped": {reason: len(ids) for reason, ids in sorted(dropped.items())},
        },
        "photo_rows": sum(r.photo_rows for r in results),
        "photo_images_not_stored": photo_images,
        "photo_download_failed": photo_images.get("download_failed", 0),
        "shards": len(results),
        "shard_bytes": sum(r.size for r in results),
        "data_bytes": sum(r.data_bytes for r in results),
        "scenes": _scene_report(inputs, results),
        "acquisition_years": sorted({s.date[:4] for s in scenes}),
        "licenses": dict(sorted(licences.items())),
        "config": config.plan_fingerprint_fields(),
    }


def _write_shards(
    todo: list[int], total: int, config: PairsBuildConfig, jobs_for: Callable[[int], list[TileJob]], bar: tqdm
) -> None:
    """Write shards ``todo`` (of ``total``) in this process, or in ``config.workers`` processes."""
    if config.workers == 1:
        for k in todo:
            jobs = jobs_for(k)
            _write_shard(shard_name(k, total), jobs, config)
            bar.update(len(jobs))
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(
        config.workers, mp_context=context, initializer=exit_with_parent
    ) as pool:
        # At most two shards per worker in flight: tile jobs carry photo bytes, so never queue them all.
        pending: dict[concurrent.futures.Future, int] = {}
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < 2 * config.workers:
                k = queue.pop(0)
                jobs = jobs_for(k)
                pending[pool.submit(_write_shard, shard_name(k, total), jobs, config)] = len(jobs)
            done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                future.result()
                bar.update(pending.pop(future))


def build_pairs(config: PairsBuildConfig) -> dict:
    """Run (or resume) this job's part of a pair build.

    Args:
        config: Build configuration.

    Returns:
        The build report when every shard of the build exists (this job finished last), else this job's partial
        summary (``{"complete": False, ...}``).

    Raises:
        ConfigError: (key ``output_dir``) the folder holds a build made with other settings or inputs.
        SceneError, RasterReadError: A scene cannot be opened or read and ``config.strict_rasters`` is set.
    """
    out = Path(config.output_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "_build" / "manifest").mkdir(parents=True, exist_ok=True)
    inputs = prepare_build(config)
    plan = inputs.plan
    _check_plan(out, config, plan_digest(inputs.photos, inputs.scenes, plan))
    total = math.ceil(len(plan.tiles) / config.tiles_per_shard)
    mine = [k for k in range(total) if k % config.num_shards == config.shard_index]
    todo = [k for k in mine if _finished(out, shard_name(k, total)) is None]
    logger.info("job %d/%d: %d of %d shards to write", config.shard_index, config.num_shards, len(todo), len(mine))
    size = config.tiles_per_shard

    def jobs_for(k: int) -> list[TileJob]:
        return tile_jobs(inputs.photos, inputs.scenes, plan, k * size, (k + 1) * size)

    tiles_todo = sum(len(plan.tiles[k * size : (k + 1) * size]) for k in todo)
    bar = tqdm(total=tiles_todo, unit="tile", desc="pairs", disable=not config.progress)
    try:
        _close_readers()
        _write_shards(todo, total, config, jobs_for, bar)
    finally:
        bar.close()
        _close_readers()  # workers=1 wrote in this process; never fork with open GDAL datasets either
    return _finish(out, config, inputs, total)


def _finish(out: Path, config: PairsBuildConfig, inputs: BuildInputs, total: int) -> dict:
    """Write the report and the card if every shard exists; the build's outcome."""
    results = [_finished(out, shard_name(k, total)) for k in range(total)]
    finished = [r for r in results if r is not None]
    if len(finished) < total:
        logger.info(
            "%d of %d shards exist; the report and card are written by the job finishing last", len(finished), total
        )
        return {"complete": False, "shards_done": len(finished), "shards_total": total}
    report = _report(config, inputs, finished)
    atomic_write(out / "build_report.json", json.dumps(report, indent=2) + "\n")
    write_card(out, report)
    logger.info(
        "build complete: %d tiles, %d photos kept of %d read",
        report["tiles"]["kept"],
        report["photos"]["kept"],
        report["photos"]["read"],
    )
    return {"complete": True, **report}


def benchmark_tile_reads(
    config: PairsBuildConfig,
    max_tiles: int | None = None,
    repeats: int = 1,
    plan_config: PairsBuildConfig | None = None,
) -> dict:
    """Time building tiles (read or warp the crop, RGB, PNG, photo locations) in one process, nothing written.

    Compare ``read_mode="window"`` with ``"full"``, or the warp to the output GSD with ``native_gsd=True`` (a plain
    windowed read of each scene's own pixels), through :func:`dataclasses.replace`; pass the same ``plan_config`` to
    time the variants on identical tiles and photos.

    Args:
        config: Build configuration the tiles are built with (``output_dir`` is not touched).
        max_tiles: Build at most this many tiles (the first in plan order).
        repeats: Passes over the tiles (later passes see warm caches).
        plan_config: Configuration the tiles are sampled with (default: ``config``); its frames must share the CRS
            of ``config``'s (any two configs differing in GSD, read mode or resampling do).

    Returns:
        ``{"read_mode", "gsd", "tiles", "seconds", "tiles_per_second", "plan_seconds"}``.
    """
    start = time.perf_counter()
    inputs = prepare_build(plan_config or config)
    plan_seconds = time.perf_counter() - start
    stop = len(inputs.plan.tiles) if max_tiles is None else min(max_tiles, len(inputs.plan.tiles))
    jobs = tile_jobs(inputs.photos, inputs.scenes, inputs.plan, 0, stop)
    reader = RasterReader(config.read_mode)
    start = time.perf_counter()
    try:
        for _ in range(repeats):
            for job in jobs:
                build_tile(job, config, reader)
    finally:
        reader.close()
    seconds = time.perf_counter() - start
    built = len(jobs) * repeats
    return {
        "read_mode": config.read_mode,
        "gsd": config.output_gsd,
        "tiles": built,
        "seconds": seconds,
        "tiles_per_second": built / seconds if seconds > 0 else math.inf,
        "plan_seconds": plan_seconds,
    }
