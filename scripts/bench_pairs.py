"""Benchmark the pair pipeline on the real NAIP rasters: tile building and the training loader.

(a) Tiles built per second per core (one process; ``graft_hf.pairs.builder.benchmark_tile_reads``): the crop warped
    to NAIP's 1 m training GSD (GDAL bilinear from the 5 m rasters, what a build does by default) against the plain
    windowed read of the source's own pixels (``native_gsd=True``, what builds did before warping), and windowed
    against whole-raster reads of the warp (``read_mode="window"`` / ``"full"``). Every variant builds the same
    tiles (sampled once, at 1 m) into 448 px crops with RGB, PNG, photo positions and photo checks; only the read
    differs.
(b) Loader samples per second (train mode: random rotation + translation, CLIP normalisation, ragged collate)
    with 0, 1 and 2 DataLoader workers, next to the training step rate of one process on the same machine:
    forward + backward + AdamW step of a ViT-B/16 ``GraftModel`` (``GraftConfig()`` defaults, random weights,
    fp32) on the GRAFT image-level loss.

Competing variants run in one process, interleaved round by round; the medians and their ratios are printed.
The shards for (b) are built from the NAIP rasters with synthetic photo geotags (no ground photos exist for this
area), embedded with a tiny random CLIP teacher (512-d targets, as ViT-B/16 CLIP), and replicated to a few
hundred tiles over 4 shards.

Usage::

    python scripts/bench_pairs.py --quick        # about 2-3 minutes on 2 CPU cores
    python scripts/bench_pairs.py --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import glob
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_UPDATE_DOWNLOAD_COUNTS": "False",
}.items():
    os.environ.setdefault(_key, _value)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

logger = logging.getLogger("bench_pairs")

NAIP = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "naip-nd"
# WGS84 box inside the rasters (see naip-nd/README.md), shrunk so most 448 crops stay mostly inside.
LON_RANGE, LAT_RANGE = (-99.178, -99.132), (47.008, 47.033)


def make_photo_table(root: Path, count: int, seed: int) -> Path:
    """A CSV of synthetic geotagged photos over the NAIP area, each with a small JPEG on disk."""
    rng = np.random.default_rng(seed)
    (root / "photos").mkdir(parents=True)
    path = root / "photos.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["photo_id", "lat", "lon", "image"])
        for i in range(count):
            image = root / "photos" / f"{i}.jpg"
            Image.fromarray(rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)).save(image, quality=80)
            writer.writerow([f"p{i}", rng.uniform(*LAT_RANGE), rng.uniform(*LON_RANGE), str(image)])
    return path


#: The tile-building variants of part (a): label -> config changes.
READ_VARIANTS = {
    "plain windowed read, source grid (native_gsd)": {"native_gsd": True},
    "warped read to 1 m, read_mode=window": {},
    "warped read to 1 m, read_mode=full": {"read_mode": "full"},
}


def bench_tile_reads(config, rounds: int, max_tiles: int | None, repeats: int) -> dict[str, list[float]]:
    from graft_hf.pairs.builder import benchmark_tile_reads

    rates: dict[str, list[float]] = {name: [] for name in READ_VARIANTS}
    for round_index in range(rounds):
        names = list(READ_VARIANTS)
        for name in names[round_index % len(names) :] + names[: round_index % len(names)]:  # rotating order
            changed = dataclasses.replace(config, **READ_VARIANTS[name])
            result = benchmark_tile_reads(changed, max_tiles=max_tiles, repeats=repeats, plan_config=config)
            rates[name].append(result["tiles_per_second"])
            logger.info("%s: %d tiles, %.1f tiles/s", name, result["tiles"], result["tiles_per_second"])
    return rates


def prepare_loader_shards(config, root: Path, target_tiles: int) -> Path:
    """Build NAIP pair shards, embed photos with a tiny 512-d teacher, replicate to ``target_tiles`` in 4 shards."""
    from transformers import CLIPImageProcessor

    from graft_hf.pairs.builder import build_pairs
    from graft_hf.pairs.card import render_summary_card
    from graft_hf.pairs.embed import EmbedConfig, embed_pairs
    from graft_hf.testing import tiny_clip_model

    build_pairs(config)
    teacher_dir = root / "teacher"
    tiny_clip_model(projection_dim=512).save_pretrained(teacher_dir)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(teacher_dir)
    embed_pairs(EmbedConfig(pairs=config.output_dir, teacher=str(teacher_dir), device="cpu"))
    table = pa.concat_tables(pq.read_table(p) for p in sorted(glob.glob(f"{config.output_dir}/data/*.parquet")))
    if table.num_rows == 0:
        raise RuntimeError("the NAIP build produced no tiles; check ../shared/data/naip-nd")
    copies = -(-target_tiles // table.num_rows)
    tiles = []
    for copy in range(copies):
        ids = pa.array([f"{tile}-copy{copy}" for tile in table.column("tile_id").to_pylist()])
        tiles.append(table.set_column(table.schema.get_field_index("tile_id"), "tile_id", ids))
    full = pa.concat_tables(tiles).slice(0, target_tiles)
    out = root / "loader-pairs"
    (out / "data").mkdir(parents=True)
    summary = {"tiles": full.num_rows, "built_from_naip": table.num_rows, "copies": copies, "shards": 4}
    description = "NAIP pair shards with synthetic photo geotags, replicated for `scripts/bench_pairs.py`."
    (out / "README.md").write_text(render_summary_card("Loader benchmark pairs", description, summary, tags=("graft",)))
    per_shard = -(-full.num_rows // 4)
    for shard in range(4):
        pq.write_table(full.slice(shard * per_shard, per_shard), out / "data" / f"train-{shard:05d}-of-00004.parquet")
    logger.info("loader shards: %d tiles (%d built from NAIP, x%d) in 4 shards", full.num_rows, table.num_rows, copies)
    return out


def loader_pass(pairs: Path, workers: int, batch_size: int, epoch: int) -> tuple[float, int]:
    from graft_hf.pairs.loader import LoaderConfig, build_pairs_dataloader

    # interleave_shards=1: datasets sleeps 5 s at the end of each pass that interleaves shards (once per epoch in
    # real training, but it would dominate a pass of a few hundred tiles).
    config = LoaderConfig(
        data=str(pairs), batch_size=batch_size, num_workers=workers, shuffle_buffer=64, interleave_shards=1
    )
    start = time.perf_counter()
    loader = build_pairs_dataloader(config)
    loader.dataset.set_epoch(epoch)
    samples = sum(len(batch["tile_id"]) for batch in loader)
    return samples / (time.perf_counter() - start), samples


class TrainStep:
    """Forward + backward + AdamW of a ViT-B/16 GraftModel (random weights, fp32) on the image-level loss."""

    def __init__(self, batch: dict[str, torch.Tensor]):
        try:
            from graft_hf.modeling import GraftConfig, GraftModel

            self.model = GraftModel(GraftConfig())
            self.name = "GraftModel ViT-B/16 (GraftConfig())"
            self.features = self.model.get_image_features
        except ImportError:
            from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

            vision = CLIPVisionConfig(
                hidden_size=768,
                num_hidden_layers=12,
                num_attention_heads=12,
                intermediate_size=3072,
                patch_size=16,
                image_size=224,
                projection_dim=512,
            )
            self.model = CLIPVisionModelWithProjection(vision)
            self.name = "CLIPVisionModelWithProjection ViT-B/16"
            self.features = lambda pixel_values: self.model(pixel_values=pixel_values).image_embeds
        from graft_hf.losses import GraftImageLoss

        self.model.train()
        self.loss = GraftImageLoss()
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=1e-5)
        self.batch = batch

    def __call__(self) -> None:
        image_embeds = self.features(self.batch["pixel_values"])
        loss = self.loss(image_embeds, self.batch["ground_embeds"], self.batch["ground_mask"])
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def rate(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            self()
        return steps * len(self.batch["pixel_values"]) / (time.perf_counter() - start)


def bench_loader_and_training(pairs: Path, rounds: int, batch_size: int, train_steps: int, skip_train: bool):
    """Loader samples/s with 0, 1 and 2 workers and the training step rate, interleaved round by round."""
    from graft_hf.pairs.loader import LoaderConfig, build_pairs_dataloader

    loader_pass(pairs, 0, batch_size, epoch=99)  # warm the page cache and imports
    rates: dict[int, list[float]] = {0: [], 1: [], 2: []}
    train_rates: list[float] = []
    step = None
    for round_index in range(rounds):
        for workers in rates:
            rate, samples = loader_pass(pairs, workers, batch_size, epoch=round_index)
            rates[workers].append(rate)
            logger.info("round %d: loader %d workers: %d samples, %.1f samples/s", round_index, workers, samples, rate)
        if skip_train:
            continue
        if step is None:
            loader = build_pairs_dataloader(
                LoaderConfig(data=str(pairs), batch_size=batch_size, num_workers=0, interleave_shards=1)
            )
            step = TrainStep(next(iter(loader)))
            step()  # warm-up: allocates optimizer state
        train_rates.append(step.rate(train_steps))
        logger.info("round %d: %s: %.2f samples/s", round_index, step.name, train_rates[-1])
    results = {f"loader samples/s, {workers} workers": statistics.median(values) for workers, values in rates.items()}
    if train_rates:
        results[f"train samples/s, {step.name}, batch {batch_size}, fp32 CPU"] = statistics.median(train_rates)
    return results, (statistics.median(train_rates) if train_rates else None)


def print_results(results: dict[str, float], train: float | None, rounds: int) -> None:
    print(f"\nmachine: {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}; medians of {rounds} rounds")
    for name, value in results.items():
        print(f"  {name:<72} {value:10.2f}")
    ratios: dict[str, float] = {}
    plain, warped, full = (f"build tiles/s/core, {name}" for name in READ_VARIANTS)
    if plain in results:
        ratios["build: warped to 1 m / plain windowed read (tiles/s per core)"] = results[warped] / results[plain]
        ratios["build: warped, window / full read"] = results[warped] / results[full]
    base = results["loader samples/s, 0 workers"]
    for workers in (1, 2):
        ratios[f"loader {workers} workers / 0 workers"] = results[f"loader samples/s, {workers} workers"] / base
    if train is not None:
        for workers in (0, 1, 2):
            ratios[f"loader {workers} workers / training step rate"] = (
                results[f"loader samples/s, {workers} workers"] / train
            )
    print("ratios:")
    for name, value in ratios.items():
        print(f"  {name:<72} {value:10.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer tiles, rounds and steps")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per comparison")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--photos", type=int, default=None, help="synthetic photo geotags over the NAIP area")
    parser.add_argument("--skip-build", action="store_true", help="skip part (a)")
    parser.add_argument("--skip-train", action="store_true", help="skip the training step rate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("graft_hf").setLevel(logging.WARNING)
    rounds = args.rounds or (2 if args.quick else 3)
    if not NAIP.is_dir():
        raise SystemExit(f"NAIP rasters not found at {NAIP} (../shared/data/naip-nd relative to the repo)")

    from graft_hf.pairs.config import PairsBuildConfig

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pairs-") as tmp:
        root = Path(tmp)
        photos = make_photo_table(root, args.photos or (200 if args.quick else 600), seed=0)
        config = PairsBuildConfig(
            photos=str(photos),
            output_dir=str(root / "pairs"),
            rasters=tuple(sorted(glob.glob(str(NAIP / "*.tif")))),
            tiles_per_shard=64,
            progress=False,
        )
        if not args.skip_build:
            rates = bench_tile_reads(
                config, rounds, max_tiles=40 if args.quick else None, repeats=1 if args.quick else 2
            )
            for name, values in rates.items():
                results[f"build tiles/s/core, {name}"] = statistics.median(values)
        pairs = prepare_loader_shards(config, root, 96 if args.quick else 256)
        loader_results, train = bench_loader_and_training(
            pairs, rounds, args.batch_size, 2 if args.quick else 4, args.skip_train
        )
        results.update(loader_results)
    print_results(results, train, rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
