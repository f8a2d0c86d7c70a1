"""Region maps (`graft map`): georeferencing, scores against a slow reference, outputs, errors, tiling geometry."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.data import SHARED_DATA

rasterio = pytest.importorskip("rasterio")
torch = pytest.importorskip("torch")

from rasterio.transform import from_origin  # noqa: E402
from rasterio.windows import Window  # noqa: E402

from graft_hf.tasks.region_map import RegionMapConfig, run_region_map  # noqa: E402
from graft_hf.tasks.tiling import PixelWindow, TileGrid  # noqa: E402

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


def _write_raster(path, data, crs="EPSG:32614", nodata=None):
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0]}
    with rasterio.open(
        path, "w", dtype=data.dtype, crs=crs, transform=from_origin(500000, 5200000, 5.0, 5.0), nodata=nodata,
        **profile,
    ) as dst:  # fmt: skip
        dst.write(data)


def test_nodata_windows_are_skipped_and_written_as_nodata(model_dir, tmp_path, one_thread):
    data = np.random.default_rng(0).integers(1, 255, size=(4, 64, 96), dtype=np.uint8)
    data[:, :, :32] = 0  # the left column of tiles is all nodata
    data[:, 40:, 40:50] = 0  # a partly-nodata tile is still scored
    _write_raster(tmp_path / "scene.tif", data, nodata=0)
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
    _write_raster(tmp_path / "nocrs.tif", data, crs=None)
    with pytest.raises(ValueError, match=r"nocrs\.tif has no CRS.*gdal_edit"):
        run_region_map(_config(tmp_path / "nocrs.tif", model_dir, tmp_path / "a"))
    with pytest.raises(ValueError, match="no query"):
        _config(tmp_path / "x.tif", model_dir, tmp_path / "a", queries=())
    with pytest.raises(ValueError, match="query number 2 is empty"):
        _config(tmp_path / "x.tif", model_dir, tmp_path / "a", queries=("farmland", " "))
    with pytest.raises(FileNotFoundError, match="raster not found"):
        run_region_map(_config(tmp_path / "missing.tif", model_dir, tmp_path / "a"))
    _write_raster(tmp_path / "two.tif", data[:2])
    with pytest.raises(ValueError, match=r"gives 2 bands.*'naip' expects 4 \(red, green, blue, nir\) or 3.*bands="):
        run_region_map(_config(tmp_path / "two.tif", model_dir, tmp_path / "a"))
    _write_raster(tmp_path / "ok.tif", data)
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
    _write_raster(tmp_path / "scene.tif", data)
    out = tmp_path / "out"
    run_region_map(_config(tmp_path / "scene.tif", model_dir, out, gsd="native", png=False))
    with pytest.raises(ValueError, match="resume=True.*overwrite=True"):
        run_region_map(_config(tmp_path / "scene.tif", model_dir, out, gsd="native", png=False))
    with pytest.raises(ValueError, match="other settings"):
        run_region_map(
            _config(tmp_path / "scene.tif", model_dir, out, gsd="native", png=False, queries=("x", "y"), resume=True)
        )
    result = run_region_map(_config(tmp_path / "scene.tif", model_dir, out, gsd="native", png=False, resume=True))
    assert result.windows_run == 0  # a finished run has nothing left to do
    assert (
        run_region_map(_config(tmp_path / "scene.tif", model_dir, out, gsd="native", overwrite=True)).windows_run == 4
    )


def test_cli_builds_the_config_in_one_place_and_imports_no_torch():
    from graft_hf_cli import build_parser
    from graft_hf_cli.map import config_from_args

    args = build_parser().parse_args(
        ["map", "--raster", "scene.tif", "--query", "farmland", "--query", "roads", "--model", "m", "--gsd", "native",
         "--window", "0,0,100,50", "--level", "patch", "--batch-size", "4", "--no-png"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.queries == ("farmland", "roads") and config.window == (0, 0, 100, 50)
    assert (config.gsd, config.level, config.batch_size, config.png) == ("native", "patch", 4, False)
    assert config.output_dir == "scene-graft-map"
    args = build_parser().parse_args(
        ["map", "--raster", "s.tif", "--query", "a", "--model", "m", "--bounds=-99.2,47,-99.1,47.1"]
    )
    assert config_from_args(args).bounds == (-99.2, 47.0, -99.1, 47.1)
    code = "import sys, graft_hf_cli.map; from graft_hf_cli import build_parser; build_parser(); print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_cli_names_flags_where_the_library_names_parameters(model_dir, tmp_path, capsys):
    from graft_hf_cli import main as graft_main

    data = np.full((4, 40, 40), 100, dtype=np.uint8)
    _write_raster(tmp_path / "two.tif", data[:2])
    base = ["map", "--model", str(model_dir), "--query", "farmland", "--tile-size", "32", "--no-progress"]
    assert graft_main([*base, "--raster", str(tmp_path / "two.tif"), "-o", str(tmp_path / "a")]) == 1
    assert "--bands: raster" in capsys.readouterr().err
    _write_raster(tmp_path / "ok.tif", data)
    (tmp_path / "file").write_text("not a folder")
    assert graft_main([*base, "--raster", str(tmp_path / "ok.tif"), "-o", str(tmp_path / "file" / "out")]) == 1
    assert "--output: output folder" in capsys.readouterr().err
    assert graft_main([*base, "--raster", str(tmp_path / "ok.tif"), "--resume", "--overwrite"]) == 1
    assert "pass only one of --resume and --overwrite" in capsys.readouterr().err
    assert (
        graft_main(
            [*base, "--raster", str(tmp_path / "ok.tif"), "--window", "100,100,10,10", "-o", str(tmp_path / "b")]
        )
        == 1
    )
    assert "--window: the requested region" in capsys.readouterr().err
    assert (
        graft_main([*base, "--raster", str(tmp_path / "ok.tif"), "--score", "softmax", "-o", str(tmp_path / "b")]) == 1
    )
    assert "--score: 'softmax' normalises across queries" in capsys.readouterr().err
    out = tmp_path / "c"
    assert graft_main([*base, "--raster", str(tmp_path / "ok.tif"), "--gsd", "native", "--no-png", "-o", str(out)]) == 0
    assert graft_main([*base, "--raster", str(tmp_path / "ok.tif"), "--gsd", "native", "--no-png", "-o", str(out)]) == 1
    assert "pass --resume to continue it or --overwrite to start again" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ tiling geometry
def test_tile_grid_covers_the_region_and_shifts_edge_tiles_inside():
    grid = TileGrid(region=PixelWindow(10, 5, 100, 70), raster_width=200, raster_height=100, window=32, stride=32)
    assert grid.grid_shape == (3, 4) and grid.score_shape == (3, 4)
    covered = np.zeros((100, 200), dtype=bool)
    for _, w in grid.windows():
        assert 10 <= w.col_off and w.col_off + w.width <= 110 and 5 <= w.row_off and w.row_off + w.height <= 75
        covered[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] = True
    assert covered[5:75, 10:110].all()
    assert grid.window_at(grid.index(2, 3)) == PixelWindow(110 - 32, 75 - 32, 32, 32)
    transform = grid.score_transform(from_origin(0, 0, 2.0, 2.0))
    assert (transform.a, transform.c, transform.f) == (64.0, 20.0, -10.0)


def test_tile_grid_overlap_centres_windows_on_their_cells():
    grid = TileGrid(region=PixelWindow(0, 0, 320, 320), raster_width=320, raster_height=320, window=64, stride=32)
    assert grid.grid_shape == (10, 10)
    window = grid.window_at(grid.index(4, 5))
    assert (window.col_off + 32, window.row_off + 32) == (5 * 32 + 16, 4 * 32 + 16)  # centre of cell (4, 5)
    with pytest.raises(ValueError, match="gaps"):
        TileGrid(region=PixelWindow(0, 0, 100, 100), raster_width=100, raster_height=100, window=16, stride=32)
