"""Determinism of `graft pairs build`: any --workers, any --num-shards split, and resume after a SIGKILL."""

from __future__ import annotations

import dataclasses
import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.data import REPO_ROOT, SHARED_DATA
from tests.helpers.make_photos import make_photo_table

NAIP = SHARED_DATA / "naip-nd"


def _shards(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "data").glob("train-*.parquet"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    if not NAIP.is_dir():
        pytest.skip(f"real NAIP rasters not found at {NAIP} (../shared/data/naip-nd)")
    from graft_hf.pairs.builder import build_pairs
    from graft_hf.pairs.config import PairsBuildConfig

    root = tmp_path_factory.mktemp("resume")
    make_photo_table(
        root / "photos.csv", "EPSG:26914", (486500, 5206200, 489900, 5208700), 120, seed=4, with_images=False
    )
    config = PairsBuildConfig(
        photos=str(root / "photos.csv"),
        output_dir=str(root / "ref"),
        rasters=tuple(sorted(glob.glob(str(NAIP / "*.tif")))),
        crop_size=128,
        footprint_size=32,
        tiles_per_shard=4,
        seed=9,
        progress=False,
    )
    report = build_pairs(config)
    assert report["complete"] and report["shards"] >= 20
    return config, report, _shards(root / "ref"), root


@pytest.mark.parametrize("change", [{"workers": 2}, {"read_mode": "full"}], ids=["workers2", "full_read"])
def test_workers_and_read_mode_give_byte_identical_shards(reference, change: dict) -> None:
    from graft_hf.pairs.builder import build_pairs

    config, _, expected, root = reference
    out = root / "-".join(f"{k}{v}" for k, v in change.items())
    build_pairs(dataclasses.replace(config, output_dir=str(out), **change))
    assert _shards(out) == expected


def test_num_shards_partitions_are_disjoint_and_cover(reference) -> None:
    from graft_hf.pairs.builder import build_pairs

    config, report, expected, root = reference
    out = root / "split"
    seen: set[str] = set()
    for index in range(3):
        result = build_pairs(dataclasses.replace(config, output_dir=str(out), num_shards=3, shard_index=index))
        new = set(_shards(out)) - seen
        assert new and not new & seen
        assert all(int(name[6:11]) % 3 == index for name in new)
        seen |= new
        # Only the job that completes the set writes the report and the card.
        assert result["complete"] == (index == 2) == (out / "README.md").exists()
    assert _shards(out) == expected
    assert result["photos"] == report["photos"] and result["tiles"] == report["tiles"]


def test_changed_settings_refuse_to_resume(reference) -> None:
    from graft_hf.pairs.builder import build_pairs

    config, *_ = reference
    with pytest.raises(ValueError, match="different settings"):
        build_pairs(dataclasses.replace(config, seed=10))


def test_resume_after_sigkill_is_byte_identical(reference) -> None:
    from graft_hf.pairs.builder import build_pairs

    config, report, expected, root = reference
    out = root / "killed"
    command = [sys.executable, "-m", "graft_hf_cli", "pairs", "build", "--photos", config.photos, "-o", str(out)]
    for raster in config.rasters:
        command += ["--raster", raster]
    command += ["--crop-size", "128", "--footprint-size", "32", "--tiles-per-shard", "4", "--seed", "9"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([*command, "--no-progress"], env=env, stderr=subprocess.PIPE)
    manifest = out / "_build" / "manifest"
    deadline = time.monotonic() + 120
    while not (manifest.is_dir() and any(manifest.glob("*.json"))):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the build never finished a shard"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL

    done_before = {p.name[: -len(".json")]: (out / "data" / p.name[: -len(".json")]).stat().st_mtime_ns
                   for p in manifest.glob("*.json")}  # fmt: skip
    assert 0 < len(done_before) < len(expected), "the kill must land mid-build"
    assert not (out / "build_report.json").exists()

    result = build_pairs(dataclasses.replace(config, output_dir=str(out)))
    assert result["complete"]
    # Finished shards were not rewritten, and the resumed build equals an uninterrupted one byte for byte.
    assert {name: (out / "data" / name).stat().st_mtime_ns for name in done_before} == done_before
    assert _shards(out) == expected
    assert result["photos"] == report["photos"] and result["tiles"] == report["tiles"]
