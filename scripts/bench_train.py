"""Training throughput of GRAFT: precomputed photo embeddings against an on-the-fly teacher.

CPU mode (default): a small CLIP-shaped model (224 px, patch 32, width 192, 4 layers) trained with the real task
module (``GraftTrainingTask``: student forward + backward + AdamW step; the teacher, when on the fly, encodes
every photo under ``no_grad``). Image-level and pixel-level tasks, both target modes, interleaved in one
process; prints samples/s (median over repeats) and the precomputed / on-the-fly ratio. Batches are synthetic
tensors already in memory, so the figures isolate compute (photo decoding would only widen the gap).

GPU mode (``--gpu``): ViT-B/16 student and teacher (random weights, ``openai/clip-vit-base-patch16`` shapes),
bf16 autocast, float16 teacher; prints samples/s and model FLOPs utilisation

    MFU = (3 x student forward FLOPs x tiles + teacher forward FLOPs x photos) / time / peak FLOP/s

with ViT forward FLOPs counted analytically per image: ``2 x (matmul parameters) x tokens`` plus attention
``4 x layers x tokens^2 x width`` plus the patch embedding.

Usage::

    python scripts/bench_train.py                      # CPU, small config
    python scripts/bench_train.py --gpu --batch 64     # one CUDA device
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from dataclasses import dataclass

import torch

from graft_hf.training.task import GraftTrainingTask, build_student

logger = logging.getLogger("bench_train")

# Dense bf16 peak FLOP/s of common accelerators (no sparsity), by substring of the device name.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 NVL": 835.0, "H100": 756.0, "A100": 312.0, "L40S": 362.0,
                    "L4": 121.0, "A10G": 70.0, "RTX 4090": 165.0}  # fmt: skip


@dataclass
class VitShape:
    width: int
    layers: int
    heads: int
    mlp: int
    image_size: int
    patch: int
    projection: int

    @property
    def tokens(self) -> int:
        return (self.image_size // self.patch) ** 2 + 1

    def forward_flops(self) -> float:
        """Forward FLOPs of the vision tower for one image (multiply-add = 2 FLOPs)."""
        tokens, width = self.tokens, self.width
        matmul_params = self.layers * (4 * width * width + 2 * width * self.mlp)  # qkv + out, fc1 + fc2
        attention = 4 * self.layers * tokens * tokens * width  # q.k^T and attn.v
        patch_embed = 2 * (tokens - 1) * 3 * self.patch * self.patch * width
        head = 2 * width * self.projection * tokens  # pooled projection or patch head (upper bound)
        return 2 * matmul_params * tokens + attention + patch_embed + head

    def clip_config(self, text_layers: int = 1):
        from transformers import CLIPConfig

        vision = {"hidden_size": self.width, "intermediate_size": self.mlp, "num_hidden_layers": self.layers,
                  "num_attention_heads": self.heads, "image_size": self.image_size, "patch_size": self.patch,
                  "projection_dim": self.projection}  # fmt: skip
        text = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": text_layers, "num_attention_heads": 2,
                "projection_dim": self.projection}  # fmt: skip
        return CLIPConfig(vision_config=vision, text_config=text, projection_dim=self.projection)


CPU_SHAPE = VitShape(width=192, layers=4, heads=3, mlp=768, image_size=224, patch=32, projection=64)
VIT_B16 = VitShape(width=768, layers=12, heads=12, mlp=3072, image_size=224, patch=16, projection=512)


def make_batch(batch: int, photos: int, shape: VitShape, on_the_fly: bool, device: torch.device, seed: int = 0):
    """A synthetic training batch following the loader's contract (all photos real and in view)."""
    gen = torch.Generator().manual_seed(seed)
    out = {
        "pixel_values": torch.randn(batch, 3, shape.image_size, shape.image_size, generator=gen),
        "ground_mask": torch.ones(batch, photos, dtype=torch.bool),
        "ground_pixel_coords": torch.rand(batch, photos, 2, generator=gen) * shape.image_size,
        "ground_in_view": torch.ones(batch, photos, dtype=torch.bool),
    }
    if on_the_fly:
        out["ground_pixel_values"] = torch.randn(batch, photos, 3, shape.image_size, shape.image_size, generator=gen)
    else:
        out["ground_embeds"] = torch.randn(batch, photos, shape.projection, generator=gen).half().float()
    return {k: v.to(device) for k, v in out.items()}


def build_task(level: str, on_the_fly: bool, shape: VitShape, device: torch.device, teacher_dtype: str):
    from transformers import CLIPModel

    torch.manual_seed(0)
    teacher = CLIPModel(shape.clip_config()).eval()
    student = build_student("from_clip", clip=teacher, use_patch_head=level == "pixel")
    task = GraftTrainingTask(student, teacher if on_the_fly else None, task=level, teacher_dtype=teacher_dtype)
    task.to_device(device).train()
    optimizer = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=1e-5, weight_decay=1e-2)
    return task, optimizer


def time_steps(task, optimizer, batch, steps: int, autocast_dtype: torch.dtype | None) -> float:
    """Seconds per training step (forward, backward, optimizer step), synchronised on CUDA."""
    device = batch["pixel_values"].device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            losses, _ = task(batch)
            loss = sum(losses.values())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync()
    return (time.perf_counter() - start) / steps


def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    gpu = args.gpu
    if gpu and not torch.cuda.is_available():
        raise RuntimeError("--gpu needs a CUDA device; run without --gpu for the CPU benchmark")
    device = torch.device("cuda" if gpu else "cpu")
    shape = VIT_B16 if gpu else CPU_SHAPE
    autocast_dtype = torch.bfloat16 if gpu else None
    teacher_dtype = args.teacher_dtype or ("float16" if gpu else "float32")
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
    configs = [(level, mode) for level in args.levels for mode in ("precomputed", "on_the_fly")]
    tasks = {c: build_task(c[0], c[1] == "on_the_fly", shape, device, teacher_dtype) for c in configs}
    batches = {c: make_batch(args.batch, args.photos, shape, c[1] == "on_the_fly", device) for c in configs}
    for c in configs:  # warm-up (allocator, kernels, lazy init)
        time_steps(*tasks[c], batches[c], args.warmup, autocast_dtype)
    seconds: dict[tuple[str, str], list[float]] = {c: [] for c in configs}
    for repeat in range(args.repeats):  # interleaved, so machine noise hits every configuration alike
        for c in configs:
            seconds[c].append(time_steps(*tasks[c], batches[c], args.steps, autocast_dtype))
        logger.info("repeat %d/%d done", repeat + 1, args.repeats)

    results: dict[str, dict[str, float]] = {}
    student_flops = 3 * shape.forward_flops() * args.batch
    teacher_flops = shape.forward_flops() * args.batch * args.photos
    peak = _peak_flops(args) if gpu else None
    print(f"device: {torch.cuda.get_device_name() if gpu else f'cpu ({torch.get_num_threads()} threads)'}; vision {shape}; batch {args.batch} tiles x "
          f"{args.photos} photos; teacher {teacher_dtype}; autocast {autocast_dtype}")  # fmt: skip
    for level in args.levels:
        row = {}
        for mode in ("precomputed", "on_the_fly"):
            step = statistics.median(seconds[(level, mode)])
            row[f"{mode}_samples_per_s"] = args.batch / step
            flops = student_flops + (teacher_flops if mode == "on_the_fly" else 0.0)
            if peak:
                row[f"{mode}_mfu"] = flops / step / peak
        row["ratio"] = row["precomputed_samples_per_s"] / row["on_the_fly_samples_per_s"]
        results[level] = row
        line = (f"{level:>5}-level: precomputed {row['precomputed_samples_per_s']:8.2f} samples/s | on-the-fly "
                f"{row['on_the_fly_samples_per_s']:8.2f} samples/s | ratio {row['ratio']:.2f}x")  # fmt: skip
        if peak:
            line += f" | MFU {row['precomputed_mfu']:.1%} / {row['on_the_fly_mfu']:.1%}"
        print(line)
    return results


def _peak_flops(args: argparse.Namespace) -> float:
    if args.peak_tflops:
        return args.peak_tflops * 1e12
    name = torch.cuda.get_device_name()
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    raise RuntimeError(f"unknown peak bf16 FLOP/s for {name!r}; pass --peak-tflops")


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="ViT-B/16 bf16 on one CUDA device, with MFU")
    parser.add_argument("--batch", type=int, default=None, help="tiles per step (CPU 8, GPU 64)")
    parser.add_argument("--photos", type=int, default=6, help="ground photos per tile")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per repeat (CPU 2, GPU 10)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds, median reported (CPU 7, GPU 3)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (CPU default 1: stable on a busy box)"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--levels", nargs="+", default=["image", "pixel"], choices=["image", "pixel"])
    parser.add_argument("--teacher-dtype", choices=["float16", "bfloat16", "float32"], default=None,
                        help="on-the-fly teacher precision (CPU float32: float16 matmuls are slow on CPUs)")  # fmt: skip
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 TFLOP/s of the GPU for MFU")
    args = parser.parse_args(argv)
    args.batch = args.batch or (64 if args.gpu else 8)
    args.steps = args.steps or (10 if args.gpu else 1)
    args.repeats = args.repeats or (3 if args.gpu else 7)
    if args.threads or not args.gpu:
        torch.set_num_threads(args.threads or 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    main()
