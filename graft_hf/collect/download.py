"""``graft collect download``: photo URLs -> resized JPEG files in shard folders, and the photo table that points at
them (``image`` = path relative to the table), which ``graft pairs build`` reads in place: no second copy.

Layout of ``output_dir``::

    photos.parquet            the input rows that downloaded, plus image, image_width, image_height
    failures.parquet          photo_id, url, reason, attempts of every photo that did not
    download_report.json      counts by reason, bytes, throughput, the config
    images/00000/<id>.jpg     shard 0's photos (shard i = input rows [i * shard_size, (i + 1) * shard_size))
    _download/shard-00000.parquet   per-shard results, written when a shard finishes (resume unit)

Each worker process downloads its shards with a pool of threads sharing one HTTP client (connection reuse).
A download is retried after a timeout, a connection error, an incomplete body, a truncated image, HTTP 429 or a
5xx, with exponential backoff that honours ``Retry-After``; a 404 (any 4xx) or a body that is not an image is not.
Photos are decoded (which catches truncated JPEGs: Pillow refuses to load them), rotated by their EXIF orientation,
downscaled to the teacher's size and re-encoded; a JPEG already small enough and upright keeps its bytes.

Splitting across machines: every job runs the same command with ``num_shards=N`` and its ``shard_index``; the job
that finds every shard done writes the table and report (rerun any job to write them if it finished first).

Why not img2dataset: it was evaluated (1.47.0) against the same loopback server. It works offline, but pins
``pandas<3`` (this project runs pandas 3), pulls wandb and albumentations (which checks PyPI for updates on import),
reports truncated JPEGs and non-images alike as "Image decoding error", and retries without backoff or
``Retry-After``. Its layout (numbered shards, per-shard status parquet) is followed here.
"""

from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing
import random
import re
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from graft_hf.io import atomic_path, write_json

from .config import DownloadConfig
from .table import read_photo_table, resolve_column

__all__ = ["FetchResult", "download_photos", "fetch_photo"]

logger = logging.getLogger(__name__)

_RESULT_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("photo_id", pa.string()),
        ("reason", pa.string()),  # null when downloaded
        ("image", pa.string()),
        ("image_width", pa.int32()),
        ("image_height", pa.int32()),
        ("original_width", pa.int32()),
        ("original_height", pa.int32()),
        ("bytes", pa.int64()),
        ("attempts", pa.int32()),
    ]
)
_RETRYABLE = {"timeout", "connection_error", "incomplete_body", "truncated_image", "http_429", "http_5xx"}


@dataclass
class FetchResult:
    """One photo's download.

    Attributes:
        data: The JPEG bytes to store, or ``None`` on failure.
        reason: Why it failed (``http_404``, ``timeout``, ``truncated_image``, ``not_image``, ...), or ``None``.
        size: ``(width, height)`` stored.
        original_size: ``(width, height)`` downloaded.
        attempts: Requests made.
    """

    data: bytes | None
    reason: str | None
    size: tuple[int, int] = (0, 0)
    original_size: tuple[int, int] = (0, 0)
    attempts: int = 0


def _encode(image: Image.Image, raw: bytes, image_size: int, quality: int) -> tuple[bytes, tuple[int, int]]:
    """The bytes to store: the original JPEG when it is upright RGB and small enough, else a resized re-encode."""
    rotated = image.getexif().get(0x0112, 1) not in (None, 1)  # EXIF orientation
    upright = ImageOps.exif_transpose(image) if rotated else image
    small = image_size <= 0 or min(upright.size) <= image_size
    if small and not rotated and image.format == "JPEG" and image.mode == "RGB":
        return raw, image.size
    rgb = upright.convert("RGB")
    if not small:
        scale = image_size / min(rgb.size)
        target = (max(round(rgb.width * scale), 1), max(round(rgb.height * scale), 1))
        rgb = rgb.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue(), rgb.size


def _decode(raw: bytes) -> tuple[Image.Image | None, str | None]:
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except UnidentifiedImageError:
        return None, "not_image"
    except (OSError, SyntaxError, ValueError) as error:
        truncated = "truncated" in str(error).lower() or "premature" in str(error).lower()
        return None, "truncated_image" if truncated else "decode_error"
    except Image.DecompressionBombError:
        return None, "too_large"
    return image, None


def _get(client: httpx.Client, url: str, max_bytes: int) -> tuple[bytes | None, str | None, float | None]:
    """``(body, failure reason, Retry-After seconds)`` of one GET."""
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                status = response.status_code
                reason = "http_429" if status == 429 else ("http_5xx" if status >= 500 else f"http_{status}")
                retry_after = response.headers.get("Retry-After")
                return None, reason, float(retry_after) if retry_after and retry_after.isdigit() else None
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    return None, "too_large", None
                chunks.append(chunk)
            return b"".join(chunks), None, None
    except httpx.TimeoutException:
        return None, "timeout", None
    except httpx.RemoteProtocolError:  # the connection closed before Content-Length bytes arrived
        return None, "incomplete_body", None
    except httpx.TransportError:
        return None, "connection_error", None
    except httpx.InvalidURL:
        return None, "invalid_url", None


def fetch_photo(
    client: httpx.Client,
    url: str | None,
    *,
    image_size: int,
    quality: int,
    retries: int,
    max_bytes: int,
    backoff_seconds: float = 1.0,
    sleep=time.sleep,
) -> FetchResult:
    """Download, check, orient and resize one photo, retrying transient failures.

    Args:
        client: HTTP client (thread-safe; shared by a worker's threads).
        url: Image URL (``None`` or empty: ``no_url``).
        image_size: Shorter side after downscaling (0: keep).
        quality: JPEG quality of re-encoded photos.
        retries: Retries of transient failures.
        max_bytes: Largest body accepted.
        backoff_seconds: First retry delay (doubling, at most 300 s), unless the server sends ``Retry-After``.
        sleep: Sleep function.

    Returns:
        The result; failures are values, never exceptions.
    """
    if not url or not url.startswith(("http://", "https://")):
        return FetchResult(None, "no_url" if not url else "invalid_url")
    reason: str | None = None
    for attempt in range(retries + 1):
        raw, reason, retry_after = _get(client, url, max_bytes)
        if raw is not None:
            image, reason = _decode(raw)
            if image is not None:
                original = image.size
                try:
                    data, size = _encode(image, raw, image_size, quality)
                except (OSError, ValueError):
                    return FetchResult(None, "decode_error", attempts=attempt + 1)
                return FetchResult(data, None, size, original, attempt + 1)
        if reason not in _RETRYABLE or attempt == retries:
            return FetchResult(None, reason, attempts=attempt + 1)
        delay = min(retry_after if retry_after is not None else backoff_seconds * 2.0**attempt, 300.0)
        sleep(delay * (1.0 + 0.1 * random.random()))
    return FetchResult(None, reason, attempts=retries + 1)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _file_name(photo_id: str) -> str:
    """A file name for a photo id (ids that are not file-name safe get a hash suffix, so names never collide)."""
    safe = _UNSAFE.sub("_", photo_id)[:100]
    if safe != photo_id:
        safe += "-" + hashlib.sha1(photo_id.encode()).hexdigest()[:10]
    return f"{safe}.jpg"


def _download_shard(args: tuple[DownloadConfig, int, list[int], list[str], list[str | None]]) -> str:
    """Download one shard into ``images/<shard>/`` and write its result parquet; returns the result path."""
    config, shard, rows, ids, urls = args
    out = Path(config.output_dir)
    folder = out / "images" / f"{shard:05d}"
    folder.mkdir(parents=True, exist_ok=True)
    limits = httpx.Limits(max_connections=config.threads, max_keepalive_connections=config.threads)
    headers = {"User-Agent": config.user_agent}
    with (
        httpx.Client(timeout=config.timeout, follow_redirects=True, limits=limits, headers=headers) as client,
        ThreadPoolExecutor(config.threads) as pool,
    ):
        options = {
            "image_size": config.image_size,
            "quality": config.jpeg_quality,
            "retries": config.retries,
            "max_bytes": config.max_bytes,
            "backoff_seconds": config.backoff_seconds,
        }
        results = list(pool.map(lambda url: fetch_photo(client, url, **options), urls))
    records = []
    for row, photo_id, result in zip(rows, ids, results):
        relative = None
        if result.data is not None:
            relative = f"images/{shard:05d}/{_file_name(photo_id)}"
            (out / relative).write_bytes(result.data)
        records.append(
            {
                "row": row,
                "photo_id": photo_id,
                "reason": result.reason,
                "image": relative,
                "image_width": result.size[0] or None,
                "image_height": result.size[1] or None,
                "original_width": result.original_size[0] or None,
                "original_height": result.original_size[1] or None,
                "bytes": len(result.data) if result.data is not None else None,
                "attempts": result.attempts,
            }
        )
    path = out / "_download" / f"shard-{shard:05d}.parquet"
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(records, schema=_RESULT_SCHEMA), tmp)
    return str(path)


def _plan(config: DownloadConfig, table: pa.Table) -> list[tuple[int, list[int]]]:
    """``(shard, row indices)`` of every shard of the input."""
    n = table.num_rows
    return [
        (s, list(range(s * config.shard_size, min((s + 1) * config.shard_size, n))))
        for s in range(-(-n // config.shard_size))
    ]


def _results_path(config: DownloadConfig, shard: int) -> Path:
    return Path(config.output_dir) / "_download" / f"shard-{shard:05d}.parquet"


def _run_shards(config: DownloadConfig, jobs: list[tuple], total: int) -> None:
    with tqdm(total=total, desc="download", unit=" photos", disable=not config.progress) as bar:
        if config.workers == 1:
            for job in jobs:
                _download_shard(job)
                bar.update(len(job[2]))
            return
        # fork where there is one: a spawned worker would re-import graft_hf (torch, transformers: seconds each);
        # the parent holds no HTTP client or lock at this point, so a forked child starts clean.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ProcessPoolExecutor(config.workers, mp_context=context) as pool:
            for job, _ in zip(jobs, pool.map(_download_shard, jobs)):
                bar.update(len(job[2]))


def _merge(config: DownloadConfig, table: pa.Table, shards: int, id_column: str, url_column: str) -> dict:
    """Write ``photos.parquet``, ``failures.parquet`` and the report from every shard's results."""
    out = Path(config.output_dir)
    results = pa.concat_tables([pq.read_table(_results_path(config, s)) for s in range(shards)]).sort_by("row")
    ok = pc.is_null(results.column("reason"))
    kept = results.filter(ok)
    photos = table.take(kept.column("row"))
    for name in ("image", "image_width", "image_height"):
        if name in photos.column_names:
            photos = photos.drop_columns(name)
        photos = photos.append_column(name, kept.column(name))
    failed = results.filter(pc.invert(ok))
    failures = pa.table(
        {
            "photo_id": failed.column("photo_id"),
            "url": table.column(url_column).take(failed.column("row")).cast(pa.string()),
            "reason": failed.column("reason"),
            "attempts": failed.column("attempts"),
        }
    )
    with atomic_path(out / "photos.parquet") as tmp:
        pq.write_table(photos, tmp)
    with atomic_path(out / "failures.parquet") as tmp:
        pq.write_table(failures, tmp)
    stored = kept.column("bytes").to_numpy()
    report = {
        "photos_requested": table.num_rows,
        "photos_downloaded": kept.num_rows,
        "failures": dict(sorted(Counter(failed.column("reason").to_pylist()).items())),
        "bytes_stored": int(stored.sum()) if len(stored) else 0,
        "mean_bytes_per_photo": float(stored.mean()) if len(stored) else 0.0,
        "shards": shards,
        "id_column": id_column,
        "url_column": url_column,
        "config": {k: v for k, v in vars(config).items() if not k.startswith("_")},
    }
    if table.num_rows and kept.num_rows == 0:
        logger.warning("no photo downloaded; failures by reason: %s", report["failures"])
    return report


def download_photos(config: DownloadConfig) -> dict:
    """Download the photos of a photo table (see the module docstring); resumable and splittable.

    Args:
        config: What to download and how.

    Returns:
        The report with ``complete`` (every shard of every job done; then ``photos.parquet`` was written),
        ``shards_done``/``shards_total`` and, when complete, the counts by reason.

    Raises:
        FileNotFoundError: The photo table does not exist.
        ConfigError: (key ``url_column``) the table has no URL column.
    """
    started = time.perf_counter()
    table = read_photo_table(config.photos)
    id_column = resolve_column(table, "photo_id", None)
    url_column = resolve_column(table, "url", config.url_column, key="url_column")
    ids = [str(v) for v in table.column(id_column).to_pylist()]
    urls = table.column(url_column).cast(pa.string()).to_pylist()
    plan = _plan(config, table)
    mine = [(s, rows) for s, rows in plan if s % config.num_shards == config.shard_index]
    todo = [(s, rows) for s, rows in mine if not _results_path(config, s).exists()]
    jobs = [(config, s, rows, [ids[r] for r in rows], [urls[r] for r in rows]) for s, rows in todo]
    logger.info(
        "%d of this job's %d shards to download (%d photos)", len(jobs), len(mine), sum(len(r) for _, r in todo)
    )
    _run_shards(config, jobs, sum(len(r) for _, r in todo))
    elapsed = time.perf_counter() - started
    done = sum(_results_path(config, s).exists() for s, _ in plan)
    result: dict = {"complete": done == len(plan), "shards_done": done, "shards_total": len(plan)}
    if result["complete"]:
        result.update(_merge(config, table, len(plan), id_column, url_column))
        downloaded = sum(len(r) for _, r in todo)
        result["seconds_this_run"] = round(elapsed, 3)
        result["photos_per_second_this_run"] = round(downloaded / elapsed, 2) if elapsed > 0 else None
        write_json(Path(config.output_dir) / "download_report.json", result)
        logger.info(
            "downloaded %d of %d photos into %s; failures: %s",
            result["photos_downloaded"],
            result["photos_requested"],
            config.output_dir,
            result["failures"],
        )
    return result
