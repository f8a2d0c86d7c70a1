"""``graft pairs build``: sample tiles, cut crops, write resumable, deterministic parquet shards and the card.

Layout of the output folder::

    data/train-00000-of-00012.parquet   shards (one row per tile; see schema.py)
    README.md                           dataset card with the `configs:` block (written when every shard exists)
    build_report.json                   read / kept / dropped-by-reason counts (idem)
    _build/plan.json                    fingerprint of the settings the shards were built with
    _build/manifest/<shard>.json        one entry per finished shard (sha256, rows, tiles dropped)

Tile ``i`` (global seeded visiting order) goes to output shard ``i // tiles_per_shard``; shard ``k`` is written by
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
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window
from tqdm.auto import tqdm

from graft_hf.config import ConfigError
from graft_hf.io import atomic_write
from graft_hf.resume import check_resume
from graft_hf.workers import exit_with_parent

from .card import write_card
from .catalog import Scene, load_catalog
from .config import PairsBuildConfig
from .photos import PhotoTable, load_photos
from .raster import RasterReader, crop_transform, crop_window, encode_png, rgb_bands, to_rgb
from .sampling import Plan, plan_tiles, project_lonlat
from .schema import encode_bands, pairs_arrow_schema

__all__ = ["ShardResult", "benchmark_tile_reads", "build_pairs", "plan_digest", "prepare_build", "shard_name"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _TileJob:
    tile_id: str
    centre_lon: float
    centre_lat: float
    candidates: tuple[Scene, ...]
    photos: tuple[dict, ...]  # photo_id, lat, lon, time, license, owner, text, image_path, image, url, embedding


@dataclass
class ShardResult:
    """What one finished shard contributes to the build report."""

    name: str
    rows: int
    photo_rows: int
    dropped_tiles: dict[str, list[str]]
    photo_download_failed: int
    sha256: str
    size: int


def shard_name(index: int, total: int) -> str:
    """File name of output shard ``index`` of ``total``."""
    return f"train-{index:05d}-of-{total:05d}.parquet"


def prepare_build(config: PairsBuildConfig) -> tuple[PhotoTable, list[Scene], Plan]:
    """Read the inputs and sample every tile (cheap: no pixels are read).

    Args:
        config: Build configuration.

    Returns:
        ``(photos, scenes, plan)``.
    """
    photos = load_photos(config.photos, config.columns)
    scenes = load_catalog(config.catalog, config.rasters, config.sensor)
    plan = plan_tiles(photos, scenes, config)
    logger.info("sampled %d tiles over %d frame(s) from %d photos", len(plan.tiles), plan.num_frames, len(photos))
    return photos, scenes, plan


def _jobs(photos: PhotoTable, scenes: list[Scene], plan: Plan, start: int, stop: int) -> list[_TileJob]:
    jobs = []
    for tile in plan.tiles[start:stop]:
        records = tuple(
            {
                "photo_id": photos.photo_id[m],
                "lat": float(photos.lat[m]),
                "lon": float(photos.lon[m]),
                "time": photos.time[m],
                "license": photos.license[m],
                "owner": photos.owner[m],
                "text": photos.text[m],
                "image_path": photos.image_path[m],
                "image": photos.image_bytes[m],
                "url": photos.url[m],
                "embedding": photos.embedding[m],
            }
            for m in tile.members
        )
        jobs.append(
            _TileJob(
                tile_id=tile.tile_id,
                centre_lon=float(photos.lon[tile.centre]),
                centre_lat=float(photos.lat[tile.centre]),
                candidates=tuple(scenes[s] for s in tile.candidates),
                photos=records,
            )
        )
    return jobs


def _photo_bytes(record: dict, config: PairsBuildConfig) -> tuple[bytes | None, bool]:
    if not config.include_photo_bytes:
        return None, False
    if record["image"] is not None:
        return record["image"], False
    if record["image_path"] is not None:
        return Path(record["image_path"]).read_bytes(), False
    if record["url"] is not None and config.download_photo_urls:
        try:
            with urllib.request.urlopen(record["url"], timeout=30) as response:  # noqa: S310 - user-given URLs
                return response.read(), False
        except OSError as err:
            logger.warning("could not download photo %s from %s: %s", record["photo_id"], record["url"], err)
            return None, True
    return None, False


@dataclass(frozen=True)
class _Crop:
    """A tile's crop cut from its chosen scene.

    Attributes:
        scene: The first candidate scene with few enough nodata pixels.
        window: The crop's window in the scene's pixel grid.
        bands: 1-based band indexes read (every band with ``include_bands``, else red, green, blue).
        rgb_index: 1-based indexes of red, green and blue.
        data: The bands read, shape ``(len(bands), crop_size, crop_size)``.
    """

    scene: Scene
    window: Window
    bands: list[int]
    rgb_index: list[int]
    data: np.ndarray


def _cut_crop(job: _TileJob, config: PairsBuildConfig, reader: RasterReader) -> _Crop | None:
    """The crop from the best candidate scene with enough valid pixels, or ``None`` if every one is mostly nodata."""
    for scene in job.candidates:
        x, y = project_lonlat(np.array([job.centre_lon]), np.array([job.centre_lat]), scene.crs)
        window = crop_window(scene, float(x[0]), float(y[0]), config.crop_size)
        rgb_index = rgb_bands(scene, config.sensor)
        bands = list(range(1, len(scene.band_names) + 1)) if config.include_bands else rgb_index
        data, valid = reader.read(scene, bands, window)
        if 1.0 - valid.mean() <= config.max_nodata_fraction:
            return _Crop(scene, window, bands, rgb_index, data)
    return None


def _photo_rows(job: _TileJob, crop: _Crop, transform: Affine, config: PairsBuildConfig) -> tuple[list[dict], int]:
    """The tile's ``photos`` entries with their crop pixel positions; also the number of failed downloads."""
    lon = np.array([p["lon"] for p in job.photos])
    lat = np.array([p["lat"] for p in job.photos])
    cols, rows = ~transform @ project_lonlat(lon, lat, crop.scene.crs)  # continuous crop pixel coordinates
    failed, photos = 0, []
    for p, row, col in zip(job.photos, rows, cols, strict=True):
        image, fail = _photo_bytes(p, config)
        failed += fail
        embedding = p["embedding"]
        photos.append(
            {
                "photo_id": p["photo_id"],
                "lat": p["lat"],
                "lon": p["lon"],
                "row": float(row),
                "col": float(col),
                "time": p["time"],
                "license": p["license"],
                "owner": p["owner"],
                "text": p["text"],
                "image": image,
                "url": p["url"],
                "embedding": None if embedding is None else np.asarray(embedding, dtype=np.float16),
                "text_embedding": None,
            }
        )
    return photos, failed


def _centre_lonlat(crop: _Crop, size: int) -> tuple[float, float]:
    """WGS84 ``(lon, lat)`` of the crop's centre."""
    x, y = crop.scene.transform @ (crop.window.col_off + size / 2, crop.window.row_off + size / 2)
    lon, lat = warp_transform(CRS.from_user_input(crop.scene.crs), CRS.from_epsg(4326), [x], [y])
    return float(lon[0]), float(lat[0])


def _tile_row(job: _TileJob, config: PairsBuildConfig, reader: RasterReader) -> tuple[dict | None, int]:
    """Cut the crop of one tile from its best usable scene; ``None`` if every candidate is mostly nodata."""
    crop = _cut_crop(job, config, reader)
    if crop is None:
        return None, 0
    scene, transform = crop.scene, crop_transform(crop.scene, crop.window)
    rgb = to_rgb(
        crop.data[[crop.bands.index(b) for b in crop.rgb_index]], config.sensor, config.s2_rgb_max, config.s2_offset
    )
    photos, failed = _photo_rows(job, crop, transform, config)
    lon, lat = _centre_lonlat(crop, config.crop_size)
    row = {
        "tile_id": job.tile_id,
        "image": {"bytes": encode_png(rgb), "path": None},
        "bands": encode_bands(crop.data) if config.include_bands else None,
        "band_names": [scene.band_names[i - 1] for i in crop.bands],
        "crs": scene.crs,
        "transform": list(transform)[:6],
        "gsd": scene.gsd,
        "sensor": config.sensor,
        "acquisition_date": scene.date,
        "center_lat": lat,
        "center_lon": lon,
        "raster": scene.href,
        "photos": photos,
    }
    return row, failed


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


def _write_shard(name: str, jobs: list[_TileJob], config: PairsBuildConfig) -> ShardResult:
    """Worker entry point: build the rows of one shard and write it atomically."""
    reader = _process_reader(config.read_mode)
    rows, dropped, failed = [], [], 0
    for job in jobs:
        row, fail = _tile_row(job, config, reader)
        failed += fail
        if row is None:
            dropped.append(job.tile_id)
        else:
            rows.append(row)
    table = pa.Table.from_pylist(rows, schema=pairs_arrow_schema())
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=config.row_group_size, compression="zstd")
    data = sink.getvalue().to_pybytes()
    out = Path(config.output_dir)
    atomic_write(out / "data" / name, data)
    result = ShardResult(
        name=name,
        rows=len(rows),
        photo_rows=sum(len(r["photos"]) for r in rows),
        dropped_tiles={"mostly_nodata": dropped},
        photo_download_failed=failed,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
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
        digest.update(tile.tile_id.encode())
        for m in tile.members:
            fields = (photos.photo_id[m], photos.lat[m], photos.lon[m], photos.time[m], photos.license[m])
            digest.update(
                repr((*fields, photos.owner[m], photos.text[m], photos.image_path[m], photos.url[m])).encode()
            )
        for s in tile.candidates:
            # The transform as its 6 numbers: the same digest as builds made when scenes held plain tuples.
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


def _report(
    config: PairsBuildConfig, photos: PhotoTable, scenes: list[Scene], plan: Plan, results: list[ShardResult]
) -> dict:
    dropped_ids = {t for r in results for ids in r.dropped_tiles.values() for t in ids}
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
    used = {s.href: s for s in scenes}
    return {
        "sensor": config.sensor,
        "seed": config.seed,
        "crop_size": config.crop_size,
        "footprint_size": config.footprint_size,
        "photos": {
            "read": photos.num_read,
            "kept": int(kept.sum()),
            "dropped": {k: int(v) for k, v in sorted(photo_dropped.items()) if v},
        },
        "tiles": {
            "sampled": len(plan.tiles),
            "kept": len(kept_tiles),
            "dropped": {"mostly_nodata": len(dropped_ids)} if dropped_ids else {},
        },
        "photo_rows": sum(r.photo_rows for r in results),
        "photo_download_failed": sum(r.photo_download_failed for r in results),
        "shards": len(results),
        "scenes": len(scenes),
        "gsd": sorted({s.gsd for s in used.values()}),
        "acquisition_years": sorted({s.date[:4] for s in scenes}),
        "licenses": dict(sorted(licences.items())),
        "config": config.plan_fingerprint_fields(),
    }


def _write_shards(
    todo: list[int], total: int, config: PairsBuildConfig, jobs_for: Callable[[int], list[_TileJob]], bar: tqdm
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
    """
    out = Path(config.output_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "_build" / "manifest").mkdir(parents=True, exist_ok=True)
    photos, scenes, plan = prepare_build(config)
    _check_plan(out, config, plan_digest(photos, scenes, plan))
    total = math.ceil(len(plan.tiles) / config.tiles_per_shard)
    mine = [k for k in range(total) if k % config.num_shards == config.shard_index]
    todo = [k for k in mine if _finished(out, shard_name(k, total)) is None]
    logger.info("job %d/%d: %d of %d shards to write", config.shard_index, config.num_shards, len(todo), len(mine))
    size = config.tiles_per_shard

    def jobs_for(k: int) -> list[_TileJob]:
        return _jobs(photos, scenes, plan, k * size, (k + 1) * size)

    tiles_todo = sum(len(plan.tiles[k * size : (k + 1) * size]) for k in todo)
    bar = tqdm(total=tiles_todo, unit="tile", desc="pairs", disable=not config.progress)
    try:
        _close_readers()
        _write_shards(todo, total, config, jobs_for, bar)
    finally:
        bar.close()
        _close_readers()  # workers=1 wrote in this process; never fork with open GDAL datasets either
    return _finish(out, config, photos, scenes, plan, total)


def _finish(
    out: Path, config: PairsBuildConfig, photos: PhotoTable, scenes: list[Scene], plan: Plan, total: int
) -> dict:
    """Write the report and the card if every shard exists; the build's outcome."""
    results = [_finished(out, shard_name(k, total)) for k in range(total)]
    finished = [r for r in results if r is not None]
    if len(finished) < total:
        logger.info(
            "%d of %d shards exist; the report and card are written by the job finishing last", len(finished), total
        )
        return {"complete": False, "shards_done": len(finished), "shards_total": total}
    report = _report(config, photos, scenes, plan, finished)
    atomic_write(out / "build_report.json", json.dumps(report, indent=2) + "\n")
    write_card(out, report)
    logger.info(
        "build complete: %d tiles, %d photos kept of %d read",
        report["tiles"]["kept"],
        report["photos"]["kept"],
        report["photos"]["read"],
    )
    return {"complete": True, **report}


def benchmark_tile_reads(config: PairsBuildConfig, max_tiles: int | None = None, repeats: int = 1) -> dict:
    """Time building tiles (read crop, RGB, PNG, photo locations) in one process, nothing written.

    Compare ``dataclasses.replace(config, read_mode="window")`` with ``read_mode="full"``.

    Args:
        config: Build configuration (``output_dir`` is not touched).
        max_tiles: Build at most this many tiles (the first in plan order).
        repeats: Passes over the tiles (later passes see warm caches).

    Returns:
        ``{"read_mode", "tiles", "seconds", "tiles_per_second", "plan_seconds"}``.
    """
    start = time.perf_counter()
    photos, scenes, plan = prepare_build(config)
    plan_seconds = time.perf_counter() - start
    stop = len(plan.tiles) if max_tiles is None else min(max_tiles, len(plan.tiles))
    jobs = _jobs(photos, scenes, plan, 0, stop)
    reader = RasterReader(config.read_mode)
    start = time.perf_counter()
    try:
        for _ in range(repeats):
            for job in jobs:
                _tile_row(job, config, reader)
    finally:
        reader.close()
    seconds = time.perf_counter() - start
    built = len(jobs) * repeats
    return {
        "read_mode": config.read_mode,
        "tiles": built,
        "seconds": seconds,
        "tiles_per_second": built / seconds if seconds > 0 else math.inf,
        "plan_seconds": plan_seconds,
    }
