"""Benchmark the training input pipeline: where a sample's time goes, the crop codec, and the loader against decode.

CPU part (always, one process, the machine's first core):

(a) Profile of one sample through the loader, in milliseconds per sample: Arrow access (the streaming reader's
    rows), photo targets (precomputed embeddings from Arrow buffers), crop decode (today's PNG and the JPEG
    codec), geometry (PIL per sample, and batched ``grid_sample`` on CPU tensors), normalisation (numpy per
    sample), photo positions, collation.
(b) Ratios in one run over ``--tiles`` (>= 300) crops, steady state (the first batch of each pass, which holds the
    start-up, is excluded): the loader (``geometry="batched"``, JPEG shards, no workers) against a bare decode of the
    same stored crops (goal: the loader costs at most 1.3x the decode alone) and against a bare decode of today's
    PNG crops (goal: at least 1.5x faster); today's loader (``geometry="per_sample"`` on PNG shards) for
    reference; batched geometry on CPU tensors against PIL per sample; the samples/s of a 16-core machine,
    *projected* linearly from the one-process rate (labelled as such: not measured).

GPU part (``--gpu``; one CUDA device; a prepared command of at most ~6 minutes, making its own data):
end-to-end samples/s and MFU of ViT-B/16 image and pixel level at 224 px (bf16 autocast, SDPA, fused AdamW,
views rendered on the GPU) with the real loader feeding it, the loader alone and the step alone, ViT-B/32 image
level, ``torchvision.io.decode_jpeg`` on the GPU against PIL in workers, and ``embed_pairs`` throughput against
the bare forward of the same (random-weight ViT-B/16) teacher. MFU is against ``--peak-tflops`` (default 790, the
bf16 rate measured on the H200 lent to this project). ``--gpu --device cpu --tiny`` runs the same code on the CPU
with tiny models (the test of this path).

Crops: 448 px views of the real NAIP rasters in ``../shared/data/naip-nd`` (a 90 px window of the 5 m source
upsampled to 448 px, like the 1 m warp a build stores), or, where they are absent (a device machine), a seeded
synthetic texture of the same size; the source is printed. Shards carry 1-12 photos per tile with 512-d float16
embeddings.

Usage::

    python scripts/bench_input.py --quick                  # CPU, about 2 minutes on 2 cores
    python scripts/bench_input.py --gpu --tiles 4096       # one CUDA device, under 6 minutes
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

for _key, _value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}.items():
    os.environ.setdefault(_key, _value)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from graft_hf.pairs.augment import extract_view_pil, random_view, render_views, view_points, view_vector  # noqa: E402
from graft_hf.pairs.loader import (  # noqa: E402
    ARROW_ROWS,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    LoaderConfig,
    PairsIterableDataset,
    build_pairs_dataloader,
    collate_pairs,
    open_pairs_stream,
)
from graft_hf.pairs.raster import encode_crop  # noqa: E402
from graft_hf.pairs.schema import crop_codec_metadata, pairs_table  # noqa: E402

logger = logging.getLogger("bench_input")

NAIP = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "naip-nd"
CROP, VIEW, DIM = 448, 224, 512
README = "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*.parquet\n---\n"


# ------------------------------------------------------------------------------------------------------ data
def make_crops(count: int, seed: int) -> tuple[list[np.ndarray], str]:
    """``count`` distinct 448 px RGB crops: NAIP 5 m windows upsampled to 1 m, else a synthetic texture."""
    rng = np.random.default_rng(seed)
    rasters = sorted(glob.glob(str(NAIP / "*.tif")))
    crops = []
    if rasters:
        import rasterio

        sources = []
        for path in rasters:
            with rasterio.open(path) as src:
                sources.append(np.moveaxis(src.read([1, 2, 3]), 0, -1))
        for _ in range(count):
            image = sources[int(rng.integers(len(sources)))]
            top, left = (int(rng.integers(0, image.shape[i] - 90)) for i in (0, 1))
            window = np.ascontiguousarray(image[top : top + 90, left : left + 90])
            crops.append(np.asarray(Image.fromarray(window).resize((CROP, CROP), Image.Resampling.BILINEAR)))
        return crops, f"real NAIP ({len(rasters)} rasters, 90 px windows of the 5 m source upsampled to 448 px)"
    for _ in range(count):
        coarse = rng.integers(0, 256, size=(90, 90, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((CROP, CROP), Image.Resampling.BILINEAR), dtype=np.int16)
        crops.append(np.clip(smooth + rng.integers(-12, 13, size=smooth.shape), 0, 255).astype(np.uint8))
    return crops, "synthetic texture (NAIP rasters not found: 90 px noise upsampled to 448 px plus pixel noise)"


def write_shards(root: Path, crops: list[bytes], crop_format: str, tiles: int, shards: int, seed: int) -> Path:
    """Pair shards of ``tiles`` tiles cycling over the encoded ``crops``, with 1-12 embedded photos per tile."""
    rng = np.random.default_rng(seed)
    (root / "data").mkdir(parents=True)
    (root / "README.md").write_text(README)
    rows = []
    for i in range(tiles):
        photos = [
            {
                "photo_id": f"p{i}-{k}",
                "lat": 47.0,
                "lon": -99.0,
                "row": float(rng.uniform(0, CROP)),
                "col": float(rng.uniform(0, CROP)),
                "time": None,
                "license": "CC0-1.0",
                "owner": None,
                "text": None,
                "image": None,
                "url": None,
                "embedding": rng.normal(size=DIM).astype(np.float16).tolist(),
                "text_embedding": None,
            }  # fmt: skip
            for k in range(int(rng.integers(1, 13)))
        ]
        rows.append({"tile_id": f"t{i}", "image": {"bytes": crops[i % len(crops)], "path": None}, "photos": photos,
                     "sensor": "naip", "gsd": 1.0})  # fmt: skip
    per = -(-tiles // shards)
    metadata = crop_codec_metadata(crop_format, 95)
    for k in range(shards):
        table = pairs_table(rows[k * per : (k + 1) * per])
        table = table.replace_schema_metadata({**table.schema.metadata, **metadata})
        pq.write_table(table, root / "data" / f"train-{k:05d}-of-{shards:05d}.parquet")
    return root


def loader_config(root: Path, geometry: str, batch_size: int, workers: int = 0, **changes) -> LoaderConfig:
    # interleave_shards=1: datasets sleeps 5 s at the end of each pass that interleaves shards.
    return LoaderConfig(data=str(root), batch_size=batch_size, num_workers=workers, shuffle_buffer=64,
                        interleave_shards=1, geometry=geometry, target="embedding", **changes)  # fmt: skip


# ------------------------------------------------------------------------------------------------ measurements
def steady_rate(loader, epoch: int) -> float:
    """Samples/s of one pass after its first batch (start-up excluded)."""
    loader.dataset.set_epoch(epoch)
    iterator = iter(loader)
    next(iterator)
    start, samples = time.perf_counter(), 0
    for batch in iterator:
        samples += len(batch["tile_id"])
    return samples / (time.perf_counter() - start)


def decode_rate(encoded: list[bytes], decoder: str = "pil") -> float:
    """Samples/s of a bare decode of the stored crops to RGB uint8 (what any loader must do), with PIL (today's
    loader) or ``torchvision.io.decode_image`` (the batched-geometry loader's decoder)."""
    from torchvision.io import ImageReadMode, decode_image

    start = time.perf_counter()
    for data in encoded:
        if decoder == "pil":
            with Image.open(io.BytesIO(data)) as image:
                np.asarray(image.convert("RGB"))
        else:
            decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    return len(encoded) / (time.perf_counter() - start)


def profile(png_root: Path, jpeg: list[bytes], png: list[bytes], batch_size: int) -> dict[str, float]:
    """Milliseconds per sample of each stage of the loader, measured apart on the same rows."""
    config = loader_config(png_root, "per_sample", batch_size, train=True)
    dataset = PairsIterableDataset(None, config)
    stream = open_pairs_stream(loader_config(png_root, "per_sample", batch_size, train=False), arrow=True)
    start = time.perf_counter()
    rows = list(stream)
    n, ms = len(rows), {}
    ms["arrow access (streaming reader, one row)"] = (time.perf_counter() - start) / n * 1e3
    groups = [pa.concat_tables(rows[i : i + ARROW_ROWS]) for i in range(0, n, ARROW_ROWS)]  # the loader reads groups
    start = time.perf_counter()
    for group in groups:
        dataset._arrow_targets(group.column("photos").combine_chunks().flatten())
    ms["photo targets (precomputed, from Arrow)"] = (time.perf_counter() - start) / n * 1e3
    for name, encoded in (("PNG (today)", png), ("JPEG q95 4:4:4, PIL", jpeg)):
        start = time.perf_counter()
        images = [Image.open(io.BytesIO(data)).convert("RGB") for data in encoded]
        ms[f"crop decode, {name}"] = (time.perf_counter() - start) / len(encoded) * 1e3
    start = time.perf_counter()
    decode_rate(jpeg, "torchvision")
    ms["crop decode, JPEG, torchvision.io.decode_image (the loader's)"] = (
        (time.perf_counter() - start) / len(jpeg) * 1e3
    )
    rng = np.random.default_rng(0)
    views = [random_view(rng, CROP, CROP, VIEW) for _ in images]
    start = time.perf_counter()
    resampled = [np.asarray(extract_view_pil(image, view), dtype=np.float32) for image, view in zip(images, views)]
    ms["geometry, PIL per sample (uint8)"] = (time.perf_counter() - start) / len(images) * 1e3
    scale = 1.0 / (255.0 * np.asarray(OPENAI_CLIP_STD, np.float32))
    shift = -np.asarray(OPENAI_CLIP_MEAN, np.float32) / np.asarray(OPENAI_CLIP_STD, np.float32)
    start = time.perf_counter()
    for pixels in resampled:
        np.ascontiguousarray((pixels * scale + shift).transpose(2, 0, 1))
    ms["normalisation, numpy per sample"] = (time.perf_counter() - start) / len(images) * 1e3
    points = rng.uniform(0, CROP, size=(6, 2))
    start = time.perf_counter()
    for view in views:
        view_points(points, view)
    ms["photo positions, numpy per sample"] = (time.perf_counter() - start) / len(images) * 1e3
    batched = PairsIterableDataset(None, loader_config(png_root, "batched", batch_size, train=True))
    samples = [s for s in batched.prepare_arrow_rows(pa.concat_tables(rows[: 4 * batch_size])) if s is not None]
    start = time.perf_counter()
    for i in range(0, len(samples), batch_size):
        collate_pairs(samples[i : i + batch_size])
    ms["collation, batched geometry (uint8 crops + targets)"] = (time.perf_counter() - start) / len(samples) * 1e3
    ms["geometry + normalisation, batched grid_sample on CPU"] = batched_geometry_ms(images, views, batch_size)
    return ms


def batched_geometry_ms(images: list[Image.Image], views, batch_size: int) -> float:
    crops = torch.from_numpy(np.stack([np.asarray(image) for image in images[:batch_size]]))
    vectors = torch.from_numpy(np.stack([view_vector(v) for v in views[:batch_size]]))
    render_views(crops, vectors, VIEW, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)  # warm-up
    start, repeats = time.perf_counter(), 3
    for _ in range(repeats):
        render_views(crops, vectors, VIEW, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    return (time.perf_counter() - start) / (repeats * len(crops)) * 1e3


def cpu_part(args: argparse.Namespace, root: Path) -> dict:
    crops, source = make_crops(min(args.tiles, args.distinct), args.seed)
    jpeg = [encode_crop(c, "jpeg", 95) for c in crops]
    png = [encode_crop(c, "png") for c in crops]
    roots = {
        "png": write_shards(root / "png", png, "png", args.tiles, 4, args.seed),
        "jpeg": write_shards(root / "jpeg", jpeg, "jpeg", args.tiles, 4, args.seed),
    }
    stored_jpeg = [jpeg[i % len(jpeg)] for i in range(args.tiles)]
    stored_png = [png[i % len(png)] for i in range(args.tiles)]
    loaders = {
        "loader, batched geometry, JPEG": build_pairs_dataloader(loader_config(roots["jpeg"], "batched", args.batch)),
        "loader, per-sample geometry, PNG (today)": build_pairs_dataloader(
            loader_config(roots["png"], "per_sample", args.batch)
        ),
        "loader, per-sample geometry, JPEG": build_pairs_dataloader(
            loader_config(roots["jpeg"], "per_sample", args.batch)
        ),
    }
    bare = ["bare decode, JPEG, torchvision (the loader's decoder)", "bare decode, JPEG, PIL", "bare decode, PNG, PIL"]
    rates: dict[str, list[float]] = {name: [] for name in [*loaders, *bare]}
    steady_rate(loaders["loader, batched geometry, JPEG"], epoch=99)  # warm caches and imports
    for round_index in range(args.rounds):  # interleaved: machine noise hits every variant alike
        for name, loader in loaders.items():
            rates[name].append(steady_rate(loader, epoch=round_index))
        rates[bare[0]].append(decode_rate(stored_jpeg, "torchvision"))
        rates[bare[1]].append(decode_rate(stored_jpeg))
        rates[bare[2]].append(decode_rate(stored_png))
        logger.info("round %d: %s", round_index, {k: round(v[-1], 1) for k, v in rates.items()})
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ms = profile(roots["png"], jpeg, png, args.batch)
    fast = medians["loader, batched geometry, JPEG"]
    pil_ms = ms["geometry, PIL per sample (uint8)"] + ms["normalisation, numpy per sample"]
    ratios = {
        "loader time / bare decode time of the same JPEG crops (goal <= 1.3)": medians[bare[0]] / fast,
        "loader / bare decode of today's PNG crops, samples/s (goal >= 1.5)": fast / medians[bare[2]],
        "loader / today's loader (per-sample geometry, PNG), samples/s": fast
        / medians["loader, per-sample geometry, PNG (today)"],
        "PIL per sample / batched grid_sample on CPU tensors (geometry + normalisation time)": pil_ms
        / ms["geometry + normalisation, batched grid_sample on CPU"],
    }
    sizes = {
        "JPEG q95 4:4:4": float(np.mean([len(b) for b in jpeg])),
        "PNG level 3": float(np.mean([len(b) for b in png])),
    }
    projected = {"PROJECTED (not measured) loader samples/s on 16 cores, 16 workers, linear": 16 * fast}
    return {"crops": source, "tiles": args.tiles, "rounds": args.rounds, "profile_ms_per_sample": ms,
            "samples_per_s": medians, "ratios": ratios, "crop_bytes": sizes, "projected": projected}  # fmt: skip


# ------------------------------------------------------------------------------------------------- GPU part
def _student(name: str, tiny: bool, level: str):
    from graft_hf.modeling import GraftConfig, GraftModel
    from graft_hf.testing import tiny_graft_config

    if tiny:
        config = tiny_graft_config(image_size=VIEW, patch_size=32 if name.endswith("32") else 16, projection_dim=DIM)
    else:
        patch = 32 if name.endswith("32") else 16
        config = GraftConfig(vision_config={"patch_size": patch}, use_patch_head=level == "pixel")
    config.use_patch_head = level == "pixel"
    return GraftModel(config)


class Step:
    """One training step of the real task: views rendered on the device, bf16 autocast, fused AdamW."""

    def __init__(self, name: str, level: str, device: torch.device, tiny: bool, compile_student: bool) -> None:
        from graft_hf.training.task import GraftTrainingTask, freeze_unused_heads
        from graft_hf.training.throughput import training_flops_per_sample

        torch.manual_seed(0)
        student = _student(name, tiny, level)
        freeze_unused_heads(student, level)
        self.task = GraftTrainingTask(student, None, task=level).to_device(device).train()
        if compile_student:
            student.compile()
        params = [p for p in self.task.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")
        self.device, self.flops = device, training_flops_per_sample(student)
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def __call__(self, batch: dict) -> torch.Tensor:
        from graft_hf.training.task import batch_to_device

        batch = batch_to_device(batch, self.device)
        with self.autocast:
            losses, _ = self.task(batch)
            loss = sum(losses.values())
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run, device: torch.device, seconds: float, min_steps: int) -> tuple[int, float]:
    """Run ``run()`` (returns samples done) for about ``seconds`` and at least ``min_steps``; (samples, seconds)."""
    _sync(device)
    start, samples, steps = time.perf_counter(), 0, 0
    while steps < min_steps or time.perf_counter() - start < seconds:
        samples += run()
        steps += 1
    _sync(device)
    return samples, time.perf_counter() - start


def gpu_part(args: argparse.Namespace, root: Path) -> dict:
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    crops, source = make_crops(min(args.tiles, args.distinct), args.seed)
    jpeg = [encode_crop(c, "jpeg", 95) for c in crops]
    workers = args.workers if args.workers is not None else min(16, os.cpu_count() or 1)
    shards = max(workers, 1) * 2
    data = write_shards(root / "gpu-jpeg", jpeg, "jpeg", args.tiles, shards, args.seed)
    out: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "crops": source,
                 "workers": workers, "batch": args.gpu_batch, "peak_tflops": args.peak_tflops}  # fmt: skip
    config = loader_config(data, "batched", args.gpu_batch, workers, pin_memory=device.type == "cuda",
                           drop_last=True)  # fmt: skip
    loader = build_pairs_dataloader(config)
    out["loader_alone_samples_per_s"] = steady_rate(loader, epoch=0)
    logger.info("loader alone: %.0f samples/s", out["loader_alone_samples_per_s"])
    first = next(iter(loader))
    models = [("ViT-B/16", "image"), ("ViT-B/16", "pixel"), ("ViT-B/32", "image")]
    for name, level in models:
        step = Step(name, level, device, args.tiny, args.compile)
        for _ in range(args.warmup):
            step(first)
        samples, seconds = timed(lambda step=step: (step(first), len(first["tile_id"]))[1], device,
                                 args.seconds, args.min_steps)  # fmt: skip
        alone = samples / seconds

        def fed(step=step, state={"it": None}) -> int:  # noqa: B006 (the iterator lives across calls)
            batch = next(state["it"], None) if state["it"] is not None else None
            if batch is None:
                loader.dataset.set_epoch(int(time.time()))
                state["it"] = iter(loader)
                batch = next(state["it"])
            step(batch)
            return len(batch["tile_id"])

        fed()  # start the workers outside the timing
        samples, seconds = timed(fed, device, args.seconds, args.min_steps)
        end_to_end = samples / seconds
        key = f"{name} {level}"
        out[key] = {"gflop_per_sample": step.flops / 1e9, "step_alone_samples_per_s": alone,
                    "end_to_end_samples_per_s": end_to_end,
                    "loader_over_step": out["loader_alone_samples_per_s"] / alone}  # fmt: skip
        if device.type == "cuda":
            out[key]["mfu_step_alone"] = alone * step.flops / (args.peak_tflops * 1e12)
            out[key]["mfu_end_to_end"] = end_to_end * step.flops / (args.peak_tflops * 1e12)
        logger.info("%s: %s", key, out[key])
        del step
    out["jpeg_decode"] = decode_on_device(jpeg[: args.gpu_batch], device)
    out["embed"] = embed_throughput(root, jpeg, device, args)
    return out


def decode_on_device(encoded: list[bytes], device: torch.device) -> dict[str, float]:
    """``torchvision.io.decode_jpeg`` batched on ``device`` against PIL, one core, samples/s."""
    from torchvision.io import decode_jpeg

    tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in encoded]
    decode_jpeg(tensors, device=device)  # warm-up (nvjpeg handles)
    samples, seconds = timed(lambda: len(decode_jpeg(tensors, device=device)), device, 3.0, 3)
    return {
        "torchvision_decode_jpeg_samples_per_s": samples / seconds,
        "pil_one_core_samples_per_s": decode_rate(encoded),
    }


def embed_throughput(root: Path, jpeg: list[bytes], device: torch.device, args: argparse.Namespace) -> dict:
    """``embed_pairs`` photos/s against the bare forward of the same random teacher on the same device."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from graft_hf.pairs.embed import EmbedConfig, embed_pairs
    from graft_hf.testing import TINY_TEXT, TINY_VISION

    vision = TINY_VISION if args.tiny else {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                                            "num_attention_heads": 12, "patch_size": 16}  # fmt: skip
    vision = {**vision, "image_size": 224, "patch_size": 32 if args.tiny else 16}
    torch.manual_seed(0)
    teacher = CLIPModel(CLIPConfig(vision_config=vision, text_config=TINY_TEXT, projection_dim=DIM))
    teacher_dir = root / "teacher"
    teacher.save_pretrained(teacher_dir)
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(
        teacher_dir
    )
    photos = [encode_crop(c[:320, :320], "jpeg", 90) for c in make_crops(64, args.seed + 1)[0]]
    pairs = root / "embed-pairs"
    (pairs / "data").mkdir(parents=True)
    rows = [{"tile_id": f"e{i}", "image": {"bytes": jpeg[i % len(jpeg)], "path": None},
             "photos": [{"photo_id": f"e{i}-{k}", "lat": 47.0, "lon": -99.0, "row": 1.0, "col": 1.0,
                         "image": photos[(i + k) % len(photos)]} for k in range(8)]}
            for i in range(args.embed_photos // 8)]  # fmt: skip
    pq.write_table(pairs_table(rows), pairs / "data" / "train-00000-of-00001.parquet")
    report = embed_pairs(EmbedConfig(pairs=str(pairs), teacher=str(teacher_dir), device=str(device),
                                     batch_size=args.gpu_batch, overwrite=True))  # fmt: skip
    model = teacher.to(device).eval().to(torch.float16 if device.type == "cuda" else torch.float32)
    pixels = torch.randn(args.gpu_batch, 3, 224, 224, device=device, dtype=next(model.parameters()).dtype)

    @torch.no_grad()
    def forward() -> int:
        model.get_image_features(pixel_values=pixels)
        return len(pixels)

    forward()
    samples, seconds = timed(forward, device, 3.0, 3)
    embed = report.photos_embedded / report.seconds
    bare = samples / seconds
    return {"embed_pairs_photos_per_s": embed, "bare_teacher_forward_photos_per_s": bare, "ratio": embed / bare}


# ------------------------------------------------------------------------------------------------------ output
def print_cpu(result: dict) -> None:
    print(f"\nCPU: {os.cpu_count()} cores, one process; {result['tiles']} tiles per pass, medians of "
          f"{result['rounds']} rounds, first batch of each pass excluded; crops: {result['crops']}")  # fmt: skip
    print("\nwhere a sample's time goes (ms per sample, one core):")
    for name, value in result["profile_ms_per_sample"].items():
        print(f"  {name:<66} {value:8.3f}")
    print("\nsamples/s:")
    for name, value in result["samples_per_s"].items():
        print(f"  {name:<66} {value:8.1f}")
    print("\nmean stored crop bytes: " + ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in result["crop_bytes"].items()))
    print("\nratios:")
    for name, value in result["ratios"].items():
        print(f"  {name:<84} {value:6.2f}")
    for name, value in result["projected"].items():
        print(f"\n{name}: {value:.0f}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiles", type=int, default=384, help="tiles per loader pass (>= 300 for the goals)")
    parser.add_argument("--distinct", type=int, default=96, help="distinct crops (tiles cycle over them)")
    parser.add_argument("--batch", type=int, default=32, help="CPU loader batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for the CPU part")
    parser.add_argument("--skip-cpu", action="store_true", help="only the GPU part")
    parser.add_argument("--gpu", action="store_true", help="run the GPU part")
    parser.add_argument("--device", default="cuda", help="device of the GPU part (cpu: test the path)")
    parser.add_argument("--tiny", action="store_true", help="tiny models in the GPU part (tests, CPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the student in the GPU part")
    parser.add_argument("--gpu-batch", type=int, default=256, help="tiles per step in the GPU part")
    parser.add_argument(
        "--workers", type=int, default=None, help="loader workers in the GPU part (default min(16, cores))"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per GPU measurement")
    parser.add_argument("--min-steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--embed-photos", type=int, default=4096, help="photos embedded in the embed measurement")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="bf16 TFLOP/s the MFU is measured against")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.gpu and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device (or --device cpu --tiny to test the path on the CPU)")
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench_input_") as tmp:
        if not args.skip_cpu:
            torch.set_num_threads(args.threads)
            results["cpu"] = cpu_part(args, Path(tmp) / "cpu")
            print_cpu(results["cpu"])
        if args.gpu:
            results["gpu"] = gpu_part(args, Path(tmp) / "gpu")
            print("\nGPU part:\n" + json.dumps(results["gpu"], indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
