"""Region maps (`graft map`): georeferencing, scores against a slow reference, outputs, errors; in other processes,
resume after a SIGKILL and bounded memory on a huge raster.
"""

from __future__ import annotations

import json
import math
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
from tests.helpers.rasters import write_raster

rasterio = pytest.importorskip("rasterio")
torch = pytest.importorskip("torch")

from rasterio.transform import from_origin  # noqa: E402
from rasterio.windows import Window  # noqa: E402

from graft_hf.tasks.region_map import PROGRESS_FILE, RegionMapConfig, run_region_map  # noqa: E402

NAIP_NAME = "m_4709963_se_14_1_20100629.tif"


def _naip() -> Path:
    path = SHARED_DATA / "naip-nd" / NAIP_NAME
    if not path.exists():
        pytest.skip(f"real NAIP raster not found at {path} (expected ../shared/data beside the repository)")
    return path.resolve()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random GRAFT model (32 px input, patch 8) whose sensor GSD matches the 5 m NAIP files."""
    from graft_hf import build_processor
    from graft_hf.testing import tiny_graft_model

    path = tmp_path_factory.mktemp("tiny-graft")
    model = tiny_graft_model(seed=0, gsd=5.0)
    model.save_pretrained(path)
    build_processor(model.config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the 2-core test machine is shared; oversubscription makes tiny models crawl
    yield
    torch.set_num_threads(threads)


def _config(raster, model_dir, out, **kwargs) -> RegionMapConfig:
    base = {"tile_size": 32, "batch_size": 8, "progress": False, "checkpoint_interval_s": 0.0}
    return RegionMapConfig(
        raster=str(raster), queries=kwargs.pop("queries", ("farmland", "a road")), model=str(model_dir),
        output_dir=str(out), **{**base, **kwargs},
    )  # fmt: skip


def _reference_scores(model_dir, raster, windows, queries, out_size=32, level="image"):
    """Scores computed the slow obvious way: one window at a time, float64 cosine similarities."""
    from rasterio.enums import Resampling

    from graft_hf.modeling import GraftImageProcessor, GraftModel
    from graft_hf.tokenizer import load_clip_tokenizer

    model = GraftModel.from_pretrained(model_dir).eval()
    processor = GraftImageProcessor.from_graft_config(model.config)
    tokens = load_clip_tokenizer()(list(queries), padding=True, return_tensors="pt")
    with torch.no_grad():
        text = model.get_text_features(tokens["input_ids"], tokens["attention_mask"]).double()
        text = text / text.norm(dim=-1, keepdim=True)
        results = []
        with rasterio.open(raster) as src:
            for col, row, size in windows:
                if size > out_size:
                    pixels = src.read(
                        window=Window(col, row, size, size), out_shape=(src.count, out_size, out_size),
                        resampling=Resampling.average,
                    )  # fmt: skip
                else:
                    pixels = src.read(window=Window(col, row, size, size))
                pixel_values = processor(pixels, return_tensors="pt")["pixel_values"]
                if level == "image":
                    embed = model.get_image_features(pixel_values).double()[0]
                    results.append((embed / embed.norm() @ text.T).numpy())
                else:
                    patches = model.get_patch_features(pixel_values).double()[0]  # (grid, grid, dim)
                    results.append(np.moveaxis((patches @ text.T).numpy(), -1, 0))  # (queries, grid, grid)
    return results


def test_naip_map_is_georeferenced_and_matches_reference(model_dir, tmp_path, one_thread):
    raster = _naip()
    # 10 m tiles on the 5 m raster: 64 x 64 px windows averaged down to the 32 px model input.
    config = _config(raster, model_dir, tmp_path / "out", gsd=10.0, top_k=5)
    result = run_region_map(config)
    assert result.window_pixels == 64 and result.num_windows == math.ceil(723 / 64) * math.ceil(934 / 64)

    with rasterio.open(raster) as src, rasterio.open(result.score_paths["farmland"]) as scores:
        assert scores.crs == src.crs and scores.dtypes[0] == "float32"
        assert scores.shape == (math.ceil(723 / 64), math.ceil(934 / 64))
        assert scores.transform.a == pytest.approx(64 * src.transform.a)
        assert scores.transform.e == pytest.approx(64 * src.transform.e)
        assert (scores.transform.c, scores.transform.f) == pytest.approx((src.transform.c, src.transform.f))
        # The score raster covers the input, and by less than one cell beyond it.
        assert scores.bounds.left == pytest.approx(src.bounds.left) and scores.bounds.top == pytest.approx(
            src.bounds.top
        )
        assert src.bounds.right <= scores.bounds.right < src.bounds.right + 64 * 5
        assert src.bounds.bottom - 64 * 5 < scores.bounds.bottom <= src.bounds.bottom
        farmland = scores.read(1)
    with rasterio.open(result.score_paths["a road"]) as scores:
        road = scores.read(1)
    assert np.isfinite(farmland).all() and np.isfinite(road).all()

    # Windows: first, interior, last column (shifted inside the raster), last row and column.
    cells = [(0, 0), (5, 7), (3, 14), (11, 14)]
    windows = [(min(c * 64, 934 - 64), min(r * 64, 723 - 64), 64) for r, c in cells]
    reference = _reference_scores(model_dir, raster, windows, ("farmland", "a road"))
    for (r, c), expected in zip(cells, reference, strict=True):
        np.testing.assert_allclose([farmland[r, c], road[r, c]], expected, atol=2e-5)

    # PNG overlays exist and decode.
    from PIL import Image

    for query in config.queries:
        with Image.open(result.png_paths[query]) as image:
            assert image.format == "PNG" and image.width > 934 // 2 and image.height > 723 // 2

    # GeoJSON: top-5 per query, ranked, polygons inside the raster's lat/lon bounds.
    collection = json.loads(Path(result.topk_path).read_text())
    with rasterio.open(raster) as src:
        west, south, east, north = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
    for query, grid in (("farmland", farmland), ("a road", road)):
        features = [f for f in collection["features"] if f["properties"]["query"] == query]
        assert [f["properties"]["rank"] for f in features] == [1, 2, 3, 4, 5]
        scores = [f["properties"]["score"] for f in features]
        assert scores == sorted(scores, reverse=True)
        assert scores[0] == pytest.approx(float(grid.max()), abs=1e-6)
        top = features[0]["properties"]
        assert grid[top["row"], top["col"]] == pytest.approx(top["score"], abs=1e-6)
        for feature in features:
            assert feature["geometry"]["type"] == "Polygon"
            lons, lats = np.array(feature["geometry"]["coordinates"][0]).T
            assert (west - 1e-9 <= lons).all() and (lons <= east + 1e-9).all()
            assert (south - 1e-9 <= lats).all() and (lats <= north + 1e-9).all()


def test_patch_level_map_on_a_pixel_window(model_dir, tmp_path, one_thread):
    raster = _naip()
    config = _config(raster, model_dir, tmp_path / "out", level="patch", window=(100, 60, 150, 70), png=False)
    result = run_region_map(config)
    with rasterio.open(raster) as src, rasterio.open(result.score_paths["a road"]) as scores:
        assert scores.shape == (math.ceil(70 / 32) * 4, math.ceil(150 / 32) * 4)
        assert scores.transform.a == pytest.approx(8 * src.transform.a)  # one pixel per 8 px ViT patch
        assert scores.xy(0, 0, offset="ul") == pytest.approx(src.xy(60, 100, offset="ul"))
        values = scores.read(1)
    assert np.isfinite(values).all()  # every patch lies inside the raster
    (expected,) = _reference_scores(model_dir, raster, [(132, 92, 32)], ("farmland", "a road"), level="patch")
    np.testing.assert_allclose(values[4:8, 4:8], expected[1], atol=2e-5)


def test_softmax_scores_sum_to_one_across_queries(model_dir, tmp_path, one_thread):
    raster = _naip()
    config = _config(raster, model_dir, tmp_path / "out", score="softmax", window=(0, 0, 200, 100), png=False)
    result = run_region_map(config)
    stacked = []
    for path in result.score_paths.values():
        with rasterio.open(path) as scores:
            stacked.append(scores.read(1))
    np.testing.assert_allclose(np.sum(stacked, axis=0), 1.0, atol=1e-5)


def test_a_model_already_in_memory_gives_the_same_map(model_dir, tmp_path, one_thread, monkeypatch):
    """The demo maps many uploads with the model it holds: no reload, and the same scores as loading it."""
    import graft_hf.tasks.region_map as region_map
    from graft_hf.tasks.map_setup import load_map_model

    raster = _naip()
    loaded = load_map_model(str(model_dir), "cpu")
    window = {"window": (0, 0, 200, 100), "png": False}
    expected = run_region_map(_config(raster, model_dir, tmp_path / "a", **window))

    def no_reload(*args, **kwargs):
        raise AssertionError("run_region_map reloaded the model it was given")

    monkeypatch.setattr(region_map, "load_map_model", no_reload)
    result = run_region_map(_config(raster, model_dir, tmp_path / "b", **window), loaded=loaded)
    for query, path in result.score_paths.items():
        with rasterio.open(path) as got, rasterio.open(expected.score_paths[query]) as want:
            np.testing.assert_array_equal(got.read(1), want.read(1))


def test_bounds_in_degrees_select_the_matching_pixel_region(model_dir, tmp_path, one_thread):
    raster = _naip()
    with rasterio.open(raster) as src:
        # The lon/lat box of pixel rows 100..300, cols 200..500 (a little inside, against rounding).
        left, top = src.xy(100, 200, offset="ul")
        right, bottom = src.xy(300, 500, offset="ul")
        box = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", left + 1, bottom + 1, right - 1, top - 1)
        crs = src.crs
    result = run_region_map(_config(raster, model_dir, tmp_path / "out", bounds=box, png=False))
    with rasterio.open(result.score_paths["farmland"]) as scores:
        assert scores.crs == crs
        # The UTM box of a lon/lat box is slightly larger than the pixel box it came from: within 2 px here.
        assert abs(scores.transform.c - left) <= 2 * 5 and abs(scores.transform.f - top) <= 2 * 5
        assert scores.shape == (7, 10)  # ceil(~200 / 32) x ceil(~300 / 32) tiles
    assert result.num_windows == 70


def test_nodata_windows_are_skipped_and_written_as_nodata(model_dir, tmp_path, one_thread):
    data = np.random.default_rng(0).integers(1, 255, size=(4, 64, 96), dtype=np.uint8)
    data[:, :, :32] = 0  # the left column of tiles is all nodata
    data[:, 40:, 40:50] = 0  # a partly-nodata tile is still scored
    write_raster(tmp_path / "scene.tif", data, nodata=0)
    result = run_region_map(_config(tmp_path / "scene.tif", model_dir, tmp_path / "out", gsd="native"))
    assert (result.windows_nodata, result.windows_run) == (2, 4)
    with rasterio.open(result.score_paths["farmland"]) as scores:
        values = scores.read(1)
        assert math.isnan(scores.nodata)
    assert np.isnan(values[:, 0]).all() and np.isfinite(values[:, 1:]).all()
    topk = json.loads(Path(result.topk_path).read_text())["features"]
    assert all(f["properties"]["col"] != 0 for f in topk)


def test_clear_errors(model_dir, tmp_path):
    data = np.full((4, 40, 40), 100, dtype=np.uint8)
    write_raster(tmp_path / "nocrs.tif", data, crs=None)
    with pytest.raises(ValueError, match=r"nocrs\.tif has no CRS.*gdal_edit"):
        run_region_map(_config(tmp_path / "nocrs.tif", model_dir, tmp_path / "a"))
    with pytest.raises(ValueError, match="no query"):
        _config(tmp_path / "x.tif", model_dir, tmp_path / "a", queries=())
    with pytest.raises(ValueError, match="query number 2 is empty"):
        _config(tmp_path / "x.tif", model_dir, tmp_path / "a", queries=("farmland", " "))
    with pytest.raises(FileNotFoundError, match="raster not found"):
        run_region_map(_config(tmp_path / "missing.tif", model_dir, tmp_path / "a"))
    write_raster(tmp_path / "two.tif", data[:2])
    with pytest.raises(ValueError, match=r"gives 2 bands.*'naip' expects 4 \(red, green, blue, nir\) or 3.*bands="):
        run_region_map(_config(tmp_path / "two.tif", model_dir, tmp_path / "a"))
    write_raster(tmp_path / "ok.tif", data)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OSError, match="output_dir: output folder .* not writable"):
        run_region_map(_config(tmp_path / "ok.tif", model_dir, tmp_path / "file" / "out"))
    with pytest.raises(ValueError, match="does not overlap"):
        run_region_map(_config(tmp_path / "ok.tif", model_dir, tmp_path / "b", window=(100, 100, 10, 10)))
    with pytest.raises(ValueError, match="softmax.*at least two"):
        _config(tmp_path / "ok.tif", model_dir, tmp_path / "b", queries=("farmland",), score="softmax")
    with pytest.raises(RuntimeError, match="local directory"):
        run_region_map(_config(tmp_path / "ok.tif", "nobody/no-such-graft-model", tmp_path / "c"))


def test_rerun_needs_resume_or_overwrite_and_matching_settings(model_dir, tmp_path, one_thread):
    data = np.random.default_rng(1).integers(1, 255, size=(4, 64, 64), dtype=np.uint8)
    write_raster(tmp_path / "scene.tif", data)
    out = tmp_path / "out"
    run_region_map(_config(tmp_path / "scene.tif", model_dir, out, gsd="native", png=False))
    with pytest.raises(ValueError, match="resume=True.*overwrite=True"):
        run_region_map(_config(tmp_path / "scene.tif", model_dir, out, gsd="native", png=False))
    with pytest.raises(
        ValueError, match=r"different settings \(queries \[\"farmland\", \"a road\"\] -> \[\"x\", \"y\"\]\)"
    ):
        run_region_map(
            _config(tmp_path / "scene.tif", model_dir, out, gsd="native", png=False, queries=("x", "y"), resume=True)
        )
    result = run_region_map(_config(tmp_path / "scene.tif", model_dir, out, gsd="native", png=False, resume=True))
    assert result.windows_run == 0  # a finished run has nothing left to do
    assert (
        run_region_map(_config(tmp_path / "scene.tif", model_dir, out, gsd="native", overwrite=True)).windows_run == 4
    )


# -------------------------------------------------- in other processes: resume after a SIGKILL, bounded memory
NAIP = SHARED_DATA / "naip-nd" / "m_4709963_se_14_1_20140720.tif"


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
