"""Region maps as a user runs them: `graft map` killed mid-run and resumed, and memory on a huge raster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.data import SHARED_DATA

rasterio = pytest.importorskip("rasterio")

from rasterio.transform import from_origin  # noqa: E402
from rasterio.windows import Window  # noqa: E402

from graft_hf.tasks.region_map import PROGRESS_FILE  # noqa: E402

NAIP = SHARED_DATA / "naip-nd" / "m_4709963_se_14_1_20140720.tif"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from graft_hf import build_processor
    from graft_hf.testing import tiny_graft_model

    path = tmp_path_factory.mktemp("tiny-graft-process")
    model = tiny_graft_model(seed=1, gsd=5.0)
    model.save_pretrained(path)
    build_processor(model.config).save_pretrained(path)
    return path


def _env() -> dict[str, str]:
    # One thread per process: the test machine has 2 busy cores. Same settings in every run keep float results
    # bit-identical between them.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _graft_map(model_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "graft_hf_cli", "map", "--raster", str(NAIP.resolve()), "--model", str(model_dir),
        "--query", "farmland", "--query", "wetland", "--tile-size", "32", "--gsd", "native", "--batch-size", "2",
        "--checkpoint-every", "0", "--window", "0,0,480,320", "--no-progress", "--no-png", "-o", str(out), *extra,
    ]  # fmt: skip


def _read_scores(out: Path) -> dict[str, np.ndarray]:
    scores = {}
    for name in ("farmland", "wetland"):
        with rasterio.open(out / f"{name}.tif") as ds:
            scores[name] = ds.read(1)
    return scores


def test_resume_after_sigkill_gives_the_uninterrupted_result(model_dir, tmp_path):
    if not NAIP.exists():
        pytest.skip(f"real NAIP raster not found at {NAIP} (expected ../shared/data beside the repository)")
    killed, fresh = tmp_path / "killed", tmp_path / "fresh"
    # The uninterrupted run goes alongside the one to be killed (the start-up, not the mapping, takes the time).
    uninterrupted_run = subprocess.Popen(_graft_map(model_dir, fresh), env=_env(), stderr=subprocess.PIPE, text=True)
    process = subprocess.Popen(_graft_map(model_dir, killed), env=_env(), stderr=subprocess.PIPE, text=True)
    progress = killed / PROGRESS_FILE
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            # The progress file is replaced atomically, so it always parses.
            if progress.exists() and json.loads(progress.read_text())["windows_done"] >= 30:
                break
            time.sleep(0.002)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, (
        f"graft map was not killed mid-run (rc {process.returncode}): {stderr}"
    )
    saved = json.loads(progress.read_text())
    assert 30 <= saved["windows_done"] < saved["num_windows"] and not saved["complete"]

    resumed = subprocess.run(_graft_map(model_dir, killed, "--resume"), env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at window" in resumed.stderr
    _, stderr = uninterrupted_run.communicate(timeout=120)
    assert uninterrupted_run.returncode == 0, stderr

    after_resume, uninterrupted = _read_scores(killed), _read_scores(fresh)
    for name in after_resume:
        assert np.isfinite(uninterrupted[name]).all()
        np.testing.assert_array_equal(after_resume[name], uninterrupted[name])
    topk = [json.loads((out / "topk.geojson").read_text()) for out in (killed, fresh)]
    assert topk[0] == topk[1]
    assert json.loads(progress.read_text())["complete"]


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from graft_hf.tasks.region_map import RegionMapConfig, load_map_model, run_region_map
    from graft_hf.tasks.text import encode_queries
    import PIL.Image, tqdm.auto  # imported by the run; load them before the baseline

    model, _, tokenizer = load_map_model(sys.argv[2])
    encode_queries(model, tokenizer, ["warm-up"])
    del model
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    config = RegionMapConfig(
        raster=sys.argv[1], queries=("farmland", "roads"), model=sys.argv[2], output_dir=sys.argv[3],
        tile_size=32, gsd=40.0, batch_size=8, progress=False, gdal_cache_mb=16,
    )
    result = run_region_map(config)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_kib": after - before, "windows": result.num_windows, "run": result.windows_run}))
    """
)


def test_memory_stays_bounded_on_a_huge_raster(model_dir, tmp_path):
    """A 20000 x 20000 x 3 uint8 raster (1.2 GB in memory; sparse on disk) maps with far less memory than that."""
    side = 20000
    raster = tmp_path / "huge.tif"
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8"}
    with rasterio.open(
        raster, "w", crs="EPSG:32614", transform=from_origin(500000, 5300000, 1.0, 1.0), tiled=True,
        blockxsize=512, blockysize=512, compress="deflate", SPARSE_OK=True, **profile,
    ) as dst:  # fmt: skip
        # A pattern on a sparse set of blocks; unwritten blocks read as zeros (valid black pixels, no nodata set).
        block = np.zeros((3, 512, 512), dtype=np.uint8)
        block[:, ::8] = 200
        block[1, :, ::5] = 90
        for row in range(0, side // 512, 3):
            for col in range(0, side // 512, 4):
                dst.write(block, window=Window(col * 512, row * 512, 512, 512))
    assert raster.stat().st_size < 20 * 2**20
    run = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(raster), str(model_dir), str(tmp_path / "out")],
        env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["windows"] == report["run"] == 16 * 16  # 1280 px windows (40 m tiles of 32 px on a 1 m raster)
    in_memory = 3 * side * side
    growth = report["growth_kib"] * 1024
    assert growth < in_memory / 4, f"peak RSS grew by {growth / 2**20:.0f} MiB for a {in_memory / 2**20:.0f} MiB raster"
    with rasterio.open(tmp_path / "out" / "farmland.tif") as scores:
        assert scores.shape == (16, 16) and np.isfinite(scores.read(1)).all()
    assert (tmp_path / "out" / "farmland.png").exists()
