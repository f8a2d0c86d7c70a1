"""scripts/bench_input.py runs end to end: the CPU part's profile and ratios, and the GPU part's code path on the CPU
with tiny models (no GPU in CI; the figures themselves are never asserted: no timings in tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_input.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_input", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_part_reports_profile_ratios_and_projection(bench, tmp_path: Path, capsys) -> None:
    results = bench.main(["--tiles", "40", "--distinct", "6", "--rounds", "1", "--batch", "8",
                          "--json", str(tmp_path / "out.json")])  # fmt: skip
    cpu = results["cpu"]
    assert {"crop decode, PNG (today)", "crop decode, JPEG q95 4:4:4, PIL", "geometry, PIL per sample (uint8)",
            "arrow access (streaming reader, one row)", "photo targets (precomputed, from Arrow)",
            "collation, batched geometry (uint8 crops + targets)"} <= set(cpu["profile_ms_per_sample"])  # fmt: skip
    assert all(value > 0 for value in cpu["ratios"].values()) and len(cpu["ratios"]) == 4
    assert all("PROJECTED" in name for name in cpu["projected"])
    assert cpu["crop_bytes"]["JPEG q95 4:4:4"] < cpu["crop_bytes"]["PNG level 3"]
    printed = capsys.readouterr().out
    assert "where a sample's time goes" in printed and "goal <= 1.3" in printed
    assert (tmp_path / "out.json").is_file()


def test_gpu_part_runs_on_the_cpu_with_tiny_models(bench) -> None:
    results = bench.main(["--skip-cpu", "--gpu", "--device", "cpu", "--tiny", "--tiles", "32", "--distinct", "4",
                          "--gpu-batch", "8", "--workers", "0", "--seconds", "0", "--min-steps", "1", "--warmup", "1",
                          "--embed-photos", "16"])  # fmt: skip
    gpu = results["gpu"]
    assert gpu["device"] == "cpu" and gpu["loader_alone_samples_per_s"] > 0
    for key in ("ViT-B/16 image", "ViT-B/16 pixel", "ViT-B/32 image"):
        assert gpu[key]["end_to_end_samples_per_s"] > 0 and gpu[key]["step_alone_samples_per_s"] > 0
        assert "mfu_end_to_end" not in gpu[key], "no MFU off a GPU"
    assert gpu["jpeg_decode"]["torchvision_decode_jpeg_samples_per_s"] > 0
    assert gpu["embed"]["embed_pairs_photos_per_s"] > 0 and gpu["embed"]["bare_teacher_forward_photos_per_s"] > 0
