"""Benchmark the collection front end: photos per second through each stage, their ratios in one run, and the
projected hours per million photos on this machine.

Stages (each on the output of the one before, in one process; the servers run in their own processes so they do
not share this process's GIL):

* ``collect``: ``collect_photos`` paging ``flickr.photos.search`` through the real ``flickrapi`` client against the
  test suite's loopback Flickr API (``tests/helpers/flickr_server.py``: OAuth-checked, Flickr's result cap of
  4,000, 250 per page), over a seeded population larger than the cap (so the region is split), no rate limit.
  Flickr itself allows an API key 3,600 calls an hour: the projection beside it is calls per photo (measured
  here) x 1 s per call, the client's default ``requests_per_second=1``.
* ``download``: ``download_photos`` from the loopback image host (``tests/helpers/photo_server.py``, 640 x 480
  JPEGs, the size of Flickr's ``url_z``), decoded, resized to 224 px and re-encoded; 1 and 2 worker processes
  with the same threads each. A real host adds network latency; more threads hide it.
* ``filter``: ``filter_photos`` over the downloaded photos: pHash + zero-shot outdoor score with a tiny random
  224 px CLIP teacher (what the tests use), and pHash alone. A real ViT-B/16 teacher costs what ``graft pairs
  embed`` costs per photo (``scripts/bench_encoder.py``): the image-decode part measured here stays the same.
  The teacher runs once with torch's default threads and once with one: on a machine whose cores are busy with
  other work, torch's thread pool oversubscribes them and small per-image ops slow down many times over.

Usage::

    python scripts/bench_collect.py --quick      # about a minute on 2 CPU cores
    python scripts/bench_collect.py --photos 8000 --download 2000 --rounds 3 --json bench_collect.json

Run from the repository root (the loopback servers are the test suite's, imported from ``tests/helpers``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

for _key, _value in {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TRANSFORMERS_OFFLINE": "1"}.items():
    os.environ.setdefault(_key, _value)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the loopback servers live in the test suite (tests/helpers)
    sys.path.insert(0, str(ROOT))

import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from graft_hf.collect.config import CollectPhotosConfig, DownloadConfig  # noqa: E402
from graft_hf.collect.download import download_photos  # noqa: E402
from graft_hf.collect.photos import collect_photos  # noqa: E402
from graft_hf.config import config_dataclass, require  # noqa: E402
from graft_hf.pairs.filter import FilterConfig, filter_photos  # noqa: E402

logger = logging.getLogger("bench_collect")

BBOX = (-99.2, 47.0, -99.1, 47.05)
DATES = ("2015-01-01", "2020-12-31")
FLICKR_CAP = 4000
FLICKR_CALLS_PER_SECOND = 1.0  # 3,600 calls an hour per API key


@config_dataclass
class BenchConfig:
    """What the collection benchmark measures.

    Attributes:
        photos: Photos in the synthetic Flickr population (a quarter in a dense "town", the rest uniform).
        download: Photos downloaded and filtered (the first of the collected table).
        threads: Download threads per worker process.
        rounds: Rounds per stage; medians are reported.
        seed: Seed of the population.
        json: Write the figures to this JSON file.
    """

    photos: int = 8000
    download: int = 1000
    threads: int = 8
    rounds: int = 1
    seed: int = 0
    json: str | None = None

    def validate_sizes(self) -> None:
        for name in ("photos", "download", "threads", "rounds"):
            require(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        require(self.download <= self.photos, "download", "must be at most photos")


def _serve(kind: str, photos: int, seed: int, image_base: str, queue: multiprocessing.Queue) -> None:
    """Child process: run the loopback Flickr API (``kind="flickr"``, photo URLs under ``image_base``) or the image
    host (``"photos"``) until terminated; its URL goes to ``queue``."""
    from tests.helpers import flickr_server, photo_server
    from tests.helpers.loopback import LoopbackServer

    if kind == "flickr":
        cluster = (-99.15, 47.02, 0.004, photos // 4)
        population = flickr_server.make_population(
            photos - photos // 4, BBOX, seed, cluster=cluster, image_base=image_base, noise=False
        )
        app = flickr_server.build_app(flickr_server.FlickrState(population, cap=FLICKR_CAP))
    else:
        app = photo_server.build_app(photo_server.PhotoHost(size=(640, 480)))
    with LoopbackServer(app, kind) as server:
        queue.put(server.url)
        while True:
            time.sleep(3600)


class _Servers:
    """The image host and the Flickr API, each in its own process, for the duration of a ``with`` block."""

    def __init__(self, cfg: BenchConfig) -> None:
        self.cfg = cfg
        self.processes: list[multiprocessing.Process] = []

    def _start(self, kind: str, image_base: str = "") -> str:
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        args = (kind, self.cfg.photos, self.cfg.seed, image_base, queue)
        process = context.Process(target=_serve, args=args, daemon=True)
        process.start()
        self.processes.append(process)
        return queue.get(timeout=120)

    def __enter__(self) -> tuple[str, str]:
        photo_host = self._start("photos")
        flickr = self._start("flickr", image_base=f"{photo_host}/photos")
        return photo_host, f"{flickr}/services/rest/"

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.terminate()
            process.join(timeout=10)


def _timed(fn, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def _collect(cfg: BenchConfig, endpoint: str, work: Path, round_: int) -> tuple[float, dict]:
    config = CollectPhotosConfig(
        output=str(work / f"collect-{round_}" / "photos.parquet"), bbox=BBOX, start=DATES[0], end=DATES[1],
        endpoint=endpoint, result_cap=FLICKR_CAP, requests_per_second=1e6, backoff_seconds=0.01,
        max_photos_per_cell=0, progress=False,
    )  # fmt: skip
    seconds, report = _timed(collect_photos, config)
    return seconds, report


def _download(cfg: BenchConfig, photos: Path, work: Path, workers: int, round_: int) -> tuple[float, dict]:
    config = DownloadConfig(
        photos=str(photos), output_dir=str(work / f"download-{workers}-{round_}"), threads=cfg.threads,
        workers=workers, shard_size=max(1, cfg.download // 8), retries=1, backoff_seconds=0.01, progress=False,
    )  # fmt: skip
    return _timed(download_photos, config)


def _filter(photos: Path, work: Path, teacher: Path | None, round_: int, torch_threads: int) -> tuple[float, dict]:
    name = f"teacher-{torch_threads}" if teacher is not None else "phash"
    config = FilterConfig(
        photos=str(photos), output=str(work / f"filter-{name}-{round_}" / "kept.parquet"),
        teacher=None if teacher is None else str(teacher), outdoor_threshold=0.0, device="cpu", threads=2,
        progress=False,
    )  # fmt: skip
    return _timed(filter_photos, config)


def _stage_rates(cfg: BenchConfig, work: Path) -> tuple[dict[str, list[float]], dict]:
    from tests.helpers.tiny_clip import save_tiny_clip

    teacher = save_tiny_clip(work / "teacher", image_size=224, patch_size=32)
    rates: dict[str, list[float]] = {}
    facts: dict = {}
    with _Servers(cfg) as (_, endpoint):
        for r in range(cfg.rounds):
            seconds, report = _collect(cfg, endpoint, work, r)
            found = report["photos_found"]
            rates.setdefault("collect (API paging)", []).append(found / seconds)
            facts.update(photos_found=found, api_calls=report["api_calls_this_run"],
                         query_cells_split=report["query_cells_split"])  # fmt: skip
            table = pq.read_table(work / f"collect-{r}" / "photos.parquet").slice(0, cfg.download)
            subset = work / f"subset-{r}.parquet"
            pq.write_table(table, subset)
            downloaded = None
            for workers in (1, 2):
                seconds, result = _download(cfg, subset, work, workers, r)
                require(result["complete"], "download", f"download did not finish: {result}")
                rates.setdefault(f"download ({workers} worker{'s' * (workers > 1)})", []).append(
                    result["photos_downloaded"] / seconds
                )
                downloaded = work / f"download-{workers}-{r}" / "photos.parquet"
            threads = torch.get_num_threads()
            for name, scorer, torch_threads in (
                ("filter (pHash + tiny teacher)", teacher, threads),
                ("filter (pHash + tiny teacher, 1 torch thread)", teacher, 1),
                ("filter (pHash only)", None, threads),
            ):
                torch.set_num_threads(torch_threads)
                seconds, report = _filter(downloaded, work, scorer, r, torch_threads)
                rates.setdefault(name, []).append(report["photos_read"] / seconds)
            torch.set_num_threads(threads)
    return rates, facts


def run(cfg: BenchConfig) -> dict:
    """Measure every stage; print and return the medians, ratios and projections."""
    with tempfile.TemporaryDirectory(prefix="bench_collect-") as tmp:
        rates, facts = _stage_rates(cfg, Path(tmp))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    slowest = min(medians.values())
    calls_per_photo = facts["api_calls"] / facts["photos_found"]
    flickr_hours = 1e6 * calls_per_photo / FLICKR_CALLS_PER_SECOND / 3600
    out = {"config": dataclasses.asdict(cfg), **facts}
    out["stages"] = {
        name: {"photos_per_s": rate, "x_slowest": rate / slowest, "hours_per_million": 1e6 / rate / 3600}
        for name, rate in medians.items()
    }
    out["flickr_rate_limited_hours_per_million"] = flickr_hours
    print(f"\n{'stage':46s} {'photos/s':>10s} {'x slowest':>10s} {'h / 1M photos':>14s}")
    for name, row in out["stages"].items():
        print(f"{name:46s} {row['photos_per_s']:10.1f} {row['x_slowest']:10.2f} {row['hours_per_million']:14.2f}")
    print(
        f"\ncollect: {facts['photos_found']} photos in {facts['api_calls']} API calls ({calls_per_photo:.4f} per "
        f"photo, {facts['query_cells_split']} cells split over the cap of {FLICKR_CAP}); at Flickr's 3,600 calls/h "
        f"a million photos take {flickr_hours:.2f} h of API time per key"
    )
    d1, d2 = medians["download (1 worker)"], medians["download (2 workers)"]
    teacher, single = medians["filter (pHash + tiny teacher)"], medians["filter (pHash + tiny teacher, 1 torch thread)"]
    print(f"download 2 workers / 1 worker = {d2 / d1:.2f}; filter teacher / pHash only = "
          f"{teacher / medians['filter (pHash only)']:.2f}; teacher 1 torch thread / default = {single / teacher:.2f}")  # fmt: skip
    return out


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=None, help=f"population size (default {BenchConfig.photos})")
    parser.add_argument(
        "--download", type=int, default=None, help=f"photos downloaded (default {BenchConfig.download})"
    )
    parser.add_argument("--quick", action="store_true", help="photos=5000, download=300 unless given")
    parser.add_argument("--threads", type=int, default=BenchConfig.threads, help="download threads per worker")
    parser.add_argument("--rounds", type=int, default=BenchConfig.rounds)
    parser.add_argument("--seed", type=int, default=BenchConfig.seed)
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    photos = args.photos if args.photos is not None else (5000 if args.quick else BenchConfig.photos)
    download = args.download if args.download is not None else (300 if args.quick else BenchConfig.download)
    return BenchConfig(photos=photos, download=download, threads=args.threads, rounds=args.rounds, seed=args.seed,
                       json=args.json)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    cfg = parse_args(argv)
    from tests.helpers.flickr_server import API_KEY, API_SECRET

    os.environ["FLICKR_API_KEY"], os.environ["FLICKR_API_SECRET"] = API_KEY, API_SECRET  # the loopback server's
    out = run(cfg)
    if cfg.json:
        Path(cfg.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
