"""Region-map throughput (`graft map`) in km^2 per second on the real NAIP rasters in ../shared/data/naip-nd.

A ViT-B/16 GraftModel from `GraftConfig()` defaults (random weights: the speed of a real checkpoint) maps each
raster at its own GSD (5 m/px: a 224 px tile covers 1.12 km x 1.12 km) with two queries. Variants (batch size,
image- vs patch-level scores) run in interleaved rounds, since the machines are shared and noisy: compare the
ratios within one run. The tiling loop (windowed reads, preprocessing, forward passes, windowed writes,
checkpoints) is timed; model loading, the GeoJSON and the PNGs are reported separately as end-to-end time.

    python scripts/bench_map.py            # 3 rasters, 3 variants, 2 rounds, fp32 on the CPU
    python scripts/bench_map.py --quick    # 1 raster, 2 variants, 1 round
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from graft_hf import GraftConfig, GraftModel, build_processor
from graft_hf.tasks.region_map import RegionMapConfig, run_region_map

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "naip-nd"
QUERIES = ("farmland", "a lake")


VARIANTS = {"image b16": ("image", 16), "image b4": ("image", 4), "patch b16": ("patch", 16)}


def _map_rasters(
    model_dir: Path, rasters: list[Path], out_root: Path, level: str, batch: int, device: str
) -> tuple[float, float, float, float]:
    """Map every raster once: `(tiling-loop seconds, end-to-end seconds, km^2, tiles)`."""
    loop = total = area = tiles = 0.0
    for raster in rasters:
        map_config = RegionMapConfig(
            raster=str(raster), queries=QUERIES, model=str(model_dir), output_dir=str(out_root / raster.stem),
            gsd="native", level=level, batch_size=batch, device=device, progress=False,
        )  # fmt: skip
        began = time.perf_counter()
        result = run_region_map(map_config)
        total += time.perf_counter() - began
        loop += result.seconds
        area += result.area_km2 or 0.0
        tiles += result.num_windows
    return loop, total, area, tiles


def _report(
    loop_s: dict[str, list[float]], total_s: dict[str, list[float]], forward_s: list[float], facts: dict
) -> None:
    area_km2, tiles = facts["area_km2"], facts["tiles"]
    base = statistics.median(loop_s["image b16"])
    print(
        f"\n{facts['rasters']} raster(s), {area_km2:.1f} km^2, {tiles:.0f} tiles of 224 px at 5 m/px, "
        f"{len(QUERIES)} queries, fp32 on {facts['device']}, median of {facts['rounds']} round(s)"
    )
    print(f"{'variant':12s} {'km^2/s':>8s} {'tiles/s':>8s} {'loop s':>8s} {'end-to-end s':>13s} {'vs image b16':>13s}")
    for name in loop_s:
        loop, total = statistics.median(loop_s[name]), statistics.median(total_s[name])
        print(f"{name:12s} {area_km2 / loop:8.3f} {tiles / loop:8.2f} {loop:8.1f} {total:13.1f} {base / loop:12.2f}x")
    forward = statistics.median(forward_s)
    print(
        f"{'forward only':12s} {area_km2 / forward:8.3f} {tiles / forward:8.2f} {forward:8.1f} {'':13s} "
        f"{base / forward:12.2f}x"
    )
    print("(forward only: the model on random 224 px batches of 16, the same tile count; its gap to 'image b16' is")
    print(" the cost of windowed reads, preprocessing, writes and checkpoints)")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one raster, two variants, one round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    return parser.parse_args()


def main() -> None:
    args = _parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    rasters = sorted(DATA.resolve().glob("*.tif"))
    if not rasters:
        raise SystemExit(f"no NAIP rasters in {DATA.resolve()} (expected ../shared/data/naip-nd)")
    variants, rounds = dict(VARIANTS), args.rounds
    if args.quick:
        rasters, rounds = rasters[:1], 1
        variants = {k: variants[k] for k in ("image b16", "patch b16")}
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    loop_s: dict[str, list[float]] = {name: [] for name in variants}
    total_s: dict[str, list[float]] = {name: [] for name in variants}
    forward_s: list[float] = []
    facts = {"rasters": len(rasters), "rounds": rounds, "device": args.device, "area_km2": 0.0, "tiles": 0.0}
    with tempfile.TemporaryDirectory(prefix="bench-map-") as tmp:
        torch.manual_seed(0)
        config = GraftConfig()  # ViT-B/16, 224 px, NAIP sensor
        model_dir = Path(tmp) / "graft-vitb16"
        GraftModel(config).save_pretrained(model_dir)
        build_processor(config).save_pretrained(model_dir)
        model = GraftModel.from_pretrained(model_dir).to(args.device).eval()
        for round_index in range(rounds):
            for name, (level, batch) in variants.items():
                out = Path(tmp) / f"out-{name.replace(' ', '-')}-{round_index}"
                loop, total, facts["area_km2"], facts["tiles"] = _map_rasters(
                    model_dir, rasters, out, level, batch, args.device
                )
                loop_s[name].append(loop)
                total_s[name].append(total)
                print(f"round {round_index + 1} {name:10s}: {facts['area_km2'] / loop:6.3f} km^2/s ({loop:.1f} s loop)")
            forward_s.append(_time_forward(model, int(facts["tiles"]), batch=16, device=args.device))
            speed = facts["area_km2"] / forward_s[-1]
            print(f"round {round_index + 1} forward only: {speed:6.3f} km^2/s ({forward_s[-1]:.1f} s)")
    _report(loop_s, total_s, forward_s, facts)


@torch.inference_mode()
def _time_forward(model: GraftModel, tiles: int, batch: int, device: str) -> float:
    pixel_values = torch.randn(batch, 3, 224, 224, device=device)
    began = time.perf_counter()
    for start in range(0, tiles, batch):
        model(pixel_values=pixel_values[: min(batch, tiles - start)])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
