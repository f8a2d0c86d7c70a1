"""The demo's computations and checks without a browser: retrieval, segmentation, region maps, every limit."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tests.helpers.data import REPO_ROOT
from tests.helpers.demo_data import GALLERY_SIZE, gallery_coordinates

torch = pytest.importorskip("torch")
pytest.importorskip("gradio")

from graft_hf.demo import DemoBackend, DemoInputError, DemoLimits  # noqa: E402


def _with_limits(backend: DemoBackend, **changes) -> DemoBackend:
    limits = dataclasses.replace(backend.limits, **changes)
    return DemoBackend(
        backend.model, backend.image_processor, backend.tokenizer, backend.index, backend.gallery_info,
        backend.model_ref, limits, backend.templates, backend.workdir / "other",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------- gallery
def test_gallery_round_trip_keeps_coordinates_thumbnails_and_embeddings(gallery_dir, tiny_model_dir, eurosat_records):
    from PIL import Image

    from graft_hf.demo import load_gallery
    from graft_hf.modeling import GraftImageProcessor, GraftModel

    index, info = load_gallery(gallery_dir)
    assert len(index) == info.num_items == GALLERY_SIZE and info.has_thumbnails and info.projection_dim == 16
    row = index.dataset[7]
    assert (row["lat"], row["lon"]) == pytest.approx(gallery_coordinates(7))
    assert row["label"] == eurosat_records[7]["label"] and row["tile_id"] == eurosat_records[7]["tile_id"]
    thumb = Image.open(__import__("io").BytesIO(row["thumbnail"]))
    assert thumb.size == (64, 64)
    # The stored embedding is the model's own (normalised) image embedding of that tile.
    model = GraftModel.from_pretrained(tiny_model_dir).eval()
    pixels = GraftImageProcessor.from_graft_config(model.config)(eurosat_records[7]["image"])["pixel_values"]
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.get_image_features(pixels), dim=-1)[0]
    torch.testing.assert_close(index.embeddings[7], expected, atol=1e-5, rtol=1e-4)


def test_gallery_records_need_coordinates(tmp_path, tiny_model_dir, eurosat_records):
    from graft_hf.demo import build_gallery
    from graft_hf.modeling import GraftModel

    model = GraftModel.from_pretrained(tiny_model_dir).eval()
    with pytest.raises(ValueError, match="lacks 'lat'/'lon'"):
        build_gallery(model, [{"image": eurosat_records[0]["image"]}], tmp_path / "g")
    with pytest.raises(ValueError, match=r"lat=95.0 is outside"):
        build_gallery(model, [{"image": eurosat_records[0]["image"], "lat": 95, "lon": 0}], tmp_path / "g")
    with pytest.raises(ValueError, match="no gallery records"):
        build_gallery(model, [], tmp_path / "g")


def test_gallery_from_geotiffs_is_placed_at_the_raster_centre(tmp_path, tiny_model_dir, naip_crop):
    import rasterio
    from rasterio.warp import transform

    from graft_hf.demo import build_gallery, records_from_geotiffs
    from graft_hf.modeling import GraftModel

    model = GraftModel.from_pretrained(tiny_model_dir).eval()
    index = build_gallery(model, records_from_geotiffs([naip_crop.parent]), tmp_path / "g")
    with rasterio.open(naip_crop) as src:
        b = src.bounds
        lons, lats = transform(src.crs, "EPSG:4326", [(b.left + b.right) / 2], [(b.bottom + b.top) / 2])
    assert index.dataset[0]["lat"] == pytest.approx(lats[0], abs=1e-9)
    assert index.dataset[0]["lon"] == pytest.approx(lons[0], abs=1e-9)


def test_an_index_without_thumbnails_or_of_another_size_is_handled(tmp_path, backend):
    from graft_hf.demo import load_gallery
    from graft_hf.index import EmbeddingIndex

    plain = EmbeddingIndex.from_embeddings(
        np.random.default_rng(0).normal(size=(5, 16)), lat=[47.0] * 5, lon=[-99.0] * 5
    )
    plain.save_to_disk(tmp_path / "plain")
    index, info = load_gallery(tmp_path / "plain")
    assert not info.has_thumbnails
    other = DemoBackend(backend.model, backend.image_processor, backend.tokenizer, index, info, "m", backend.limits)
    hits = other.retrieve("a farm", 3).hits
    assert len(hits) == 3 and all(h.image.size == (96, 96) for h in hits)  # grey placeholders

    wrong = EmbeddingIndex.from_embeddings(np.ones((4, 8)), lat=[0.0] * 4, lon=[0.0] * 4)
    with pytest.raises(ValueError, match="rebuild the gallery with this model"):
        DemoBackend(backend.model, backend.image_processor, backend.tokenizer, wrong, info, "m", backend.limits)
    no_coords = EmbeddingIndex.from_embeddings(np.ones((4, 16)))
    no_coords.save_to_disk(tmp_path / "nocoords")
    with pytest.raises(ValueError, match="no latitude/longitude"):
        load_gallery(tmp_path / "nocoords")
    with pytest.raises(FileNotFoundError, match="graft demo-gallery"):
        DemoBackend.from_paths("unused", tmp_path / "missing")


# ---------------------------------------------------------------------------------------------------- retrieval
def test_retrieval_returns_k_hits_with_coordinates_scores_and_a_map(backend):
    out = backend.retrieve("  a river crossing farmland ", 5)
    assert len(out.hits) == 5 and [h.rank for h in out.hits] == [1, 2, 3, 4, 5]
    scores = [h.score for h in out.hits]
    assert scores == sorted(scores, reverse=True)
    # Same order and scores as an exact search written out by hand.
    text = backend.cache.get(["a river crossing farmland"], "satellite")[0]
    reference = (backend.index.embeddings.double() @ text.double()).numpy()
    assert scores == pytest.approx(np.sort(reference)[::-1][:5].tolist(), abs=1e-5)
    grid = {gallery_coordinates(i) for i in range(GALLERY_SIZE)}
    for hit in out.hits:
        assert (round(hit.lat, 6), round(hit.lon, 6)) in {(round(a, 6), round(b, 6)) for a, b in grid}
        assert f"{hit.lat:.4f}, {hit.lon:.4f}" in hit.caption and f"score {hit.score:.3f}" in hit.caption
        assert hit.image.size == (64, 64)
    assert out.map_image.size == (640, 440) and "5 of 30" in out.summary
    # The map has coloured markers (the rest of the picture is grey scale).
    rgb = np.asarray(out.map_image).astype(int)
    assert (np.ptp(rgb, axis=-1) > 60).sum() > 200


def test_query_embeddings_are_cached_with_a_bounded_lru(backend):
    small = _with_limits(backend, query_cache_size=2)
    small.retrieve("forest", 3)
    misses = small.cache.misses
    small.retrieve("forest", 4)
    assert small.cache.misses == misses and small.cache.hits >= 1
    small.retrieve("lake", 3)
    small.retrieve("highway", 3)
    assert len(small.cache) == 2
    small.retrieve("forest", 3)  # evicted: runs the text tower again
    assert small.cache.misses == misses + 3


# ---------------------------------------------------------------------------------------------------- segmentation
def test_segmentation_of_a_png_gives_one_overlay_per_query(backend, eurosat_png):
    out = backend.segment(str(eurosat_png), "water, road, trees", background=True)
    assert out.mask.shape == (64, 64) and out.class_names == ("water", "road", "trees", "background")
    assert [caption.split(":")[0] for _, caption in out.overlays] == ["all queries", "water", "road", "trees"]
    combined = out.overlays[0][0]
    assert combined.height >= 64 and combined.width > 64  # the image plus a legend panel
    for picture, _ in out.overlays[1:]:
        assert picture.mode == "RGB" and picture.height >= 64
    fractions = [float(c.split(": ")[1].split("%")[0]) for _, c in out.overlays[1:]]
    counts = [(out.mask == i).mean() * 100 for i in range(3)]
    assert fractions == pytest.approx(counts, abs=0.06)
    assert "| water |" in out.summary


def test_segmentation_of_a_real_naip_geotiff(backend, naip_crop):
    out = backend.segment(str(naip_crop), "farmland, road", background=False)
    assert out.mask.shape == (96, 96) and set(np.unique(out.mask)) <= {0, 1}
    assert len(out.overlays) == 3 and all(p.height >= 96 for p, _ in out.overlays)


# ---------------------------------------------------------------------------------------------------- region map
def test_region_map_of_a_real_geotiff(backend, naip_crop):
    import rasterio

    out = backend.region_map(str(naip_crop), "farmland", "native")
    assert out.overlay.mode == "RGB" and out.overlay.width > 96
    with rasterio.open(out.score_path) as scores:
        values = scores.read(1)
        assert scores.crs.to_epsg() == 26914 and values.shape == (3, 3)  # 96 px / 32 px tiles
        assert np.isfinite(values).all() and np.abs(values).max() <= 1.0
    features = json.loads(open(out.topk_path).read())["features"]
    assert [f["properties"]["rank"] for f in features] == [1, 2, 3, 4, 5]
    assert f"{features[0]['properties']['score']:.3f}" in out.summary and "47.0" in out.summary


# ---------------------------------------------------------------------------------------------------- limits
@pytest.mark.parametrize(
    ("query", "k", "message"),
    [
        ("", 3, "type a query first"),
        ("x" * 61, 3, "max_query_chars=60"),
        ("forest", 13, "k_max=12"),
        ("forest", 0, "k_min=1"),
        ("forest", 2.5, "whole number"),
        ("forest", None, "whole number"),
    ],
)
def test_retrieval_limits_name_the_limit(backend, query, k, message):
    with pytest.raises(DemoInputError, match=message):
        backend.retrieve(query, k)


def test_k_is_capped_by_a_small_gallery(backend, tmp_path):
    from graft_hf.demo.limits import check_k

    with pytest.raises(DemoInputError, match="the gallery size=5"):
        check_k(6, DemoLimits(k_max=24), gallery_size=5)


@pytest.mark.parametrize(
    ("queries", "message"),
    [
        ("", "type a query first"),
        (" , ,", "type a query first"),
        ("a, b, c, d, e", "max_queries=4"),
        ("water, " + "y" * 61, "max_query_chars=60"),
        ("water, water", "repeat"),
        ("background, road", "name of the background label"),
    ],
)
def test_segmentation_query_limits(backend, eurosat_png, queries, message):
    with pytest.raises(DemoInputError, match=message):
        backend.segment(str(eurosat_png), queries, background=True)


def test_one_query_needs_the_background_label(backend, eurosat_png):
    with pytest.raises(DemoInputError, match="background label"):
        backend.segment(str(eurosat_png), "water", background=False)
    assert len(backend.segment(str(eurosat_png), "water", background=True).overlays) == 2


def test_upload_limits_and_corrupt_files(backend, tmp_path, eurosat_png, naip_crop):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > backend.limits.max_upload_bytes
    cases = {
        None: "upload a file first",
        str(tmp_path / "gone.png"): "missing on the server",
        str(big): "max_upload_bytes=200000",
    }
    wide = tmp_path / "wide.png"
    Image.new("RGB", (200, 100), "green").save(wide)  # 20,000 px > max_pixels=16,384, small file
    cases[str(wide)] = "max_pixels=16,384"
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    cases[str(corrupt)] = "cannot decode 'corrupt.png'"
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(eurosat_png.read_bytes()[:200])
    cases[str(truncated)] = "cannot decode 'truncated.png'"
    bad_tif = tmp_path / "bad.tif"
    bad_tif.write_bytes(b"II*\x00" + b"\x00" * 64)
    cases[str(bad_tif)] = "cannot read 'bad.tif' as a GeoTIFF"
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cases[str(text)] = "unsupported file type '.txt'"
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cases[str(empty)] = "is empty"
    for upload, message in cases.items():
        with pytest.raises(DemoInputError, match=message):
            backend.segment(upload, "water, road", background=True)


def test_a_band_count_the_sensor_cannot_use_is_an_input_error(backend, tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "two_bands.tif"
    profile = {"driver": "GTiff", "width": 40, "height": 40, "count": 2, "dtype": "uint8", "crs": "EPSG:26914",
               "transform": from_origin(485900, 5209245, 5, 5)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((2, 40, 40), 90, dtype=np.uint8))
    with pytest.raises(DemoInputError, match="expected 4 bands"):
        backend.segment(str(path), "water, road", background=True)
    with pytest.raises(DemoInputError, match="expects 4"):
        backend.region_map(str(path), "farmland", "native")


def test_region_map_limits(backend, tmp_path, eurosat_png, naip_crop):
    import rasterio

    with pytest.raises(DemoInputError, match="needs a georeferenced GeoTIFF"):
        backend.region_map(str(eurosat_png), "farmland", "native")
    plain = tmp_path / "no_crs.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=32, height=32, count=4, dtype="uint8") as dst:
        dst.write(np.full((4, 32, 32), 100, dtype=np.uint8))
    with pytest.raises(DemoInputError, match="no coordinate reference system"):
        backend.region_map(str(plain), "farmland", "native")
    with pytest.raises(DemoInputError, match="max_query_chars=60"):
        backend.region_map(str(naip_crop), "z" * 70, "native")
    with pytest.raises(DemoInputError, match="'model' or 'native'"):
        backend.region_map(str(naip_crop), "farmland", "10")
    with pytest.raises(DemoInputError, match="max_map_windows=4"):
        _with_limits(backend, max_map_windows=4).region_map(str(naip_crop), "farmland", "native")
    with pytest.raises(DemoInputError, match="max_map_pixels=9,000"):
        _with_limits(backend, max_map_pixels=9000).region_map(str(naip_crop), "farmland", "native")


def test_the_app_shows_input_errors_and_failures_as_gradio_errors(backend):
    import gradio as gr

    from graft_hf.demo.app import _guard

    with pytest.raises(gr.Error, match="max_query_chars=60"):
        _guard(backend.retrieve)("q" * 100, 3)

    def broken(*_):
        raise KeyError("boom")

    with pytest.raises(gr.Error, match=r"the request failed \(KeyError"):
        _guard(broken)()


def test_limits_validate_themselves():
    with pytest.raises(ValueError, match="max_pixels must be positive"):
        DemoLimits(max_pixels=0)
    with pytest.raises(ValueError, match="k_min <= k_default <= k_max"):
        DemoLimits(k_default=30, k_max=24)


# ---------------------------------------------------------------------------------------------------- CLI, Space
def test_graft_demo_cli_parses_limits_without_importing_torch():
    import subprocess
    import sys

    code = (
        "import sys; from graft_hf_cli import build_parser; "
        "a = build_parser().parse_args(['demo', '--model', 'm', '--gallery', 'g', '--share', 'no', "
        "'--max-upload-mb', '1', '--k-max', '5']); "
        "assert a.share is False and a.port == 7860 and a.host == '127.0.0.1'; "
        "assert 'torch' not in sys.modules and 'gradio' not in sys.modules, 'heavy import at parse time'; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]

    from graft_hf_cli import build_parser
    from graft_hf_cli.demo import limits_from_args

    args = build_parser().parse_args(["demo", "--gallery", "g", "--max-upload-mb", "1", "--k-max", "5"])
    limits = limits_from_args(args)
    assert limits.max_upload_bytes == 1048576 and limits.k_max == 5 and limits.k_default == 5
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--gallery", "g", "--share", "maybe"])


def test_demo_cli_errors_name_the_flags(monkeypatch, capsys, tiny_model_dir, naip_crop, tmp_path):
    from graft_hf_cli import main

    monkeypatch.delenv("GRAFT_MODEL", raising=False)
    assert main(["demo", "--gallery", str(tmp_path)]) == 1
    assert "graft demo: error: --model: no model given" in capsys.readouterr().err
    argv = ["demo-gallery", "--model", str(tiny_model_dir), "--pairs", str(tmp_path), "-o", str(tmp_path / "g")]
    assert main([*argv, "--limit", "0"]) == 1
    assert "graft demo-gallery: error: --limit: must be positive, got 0" in capsys.readouterr().err
    assert main(["demo", "--model", "m", "--gallery", "g", "--max-pixels", "0"]) == 1
    assert "graft demo: error: --max-pixels: DemoLimits.max_pixels must be positive" in capsys.readouterr().err


def test_demo_configs_check_themselves():
    from graft_hf.config import ConfigError
    from graft_hf.demo import DemoConfig, GalleryConfig

    assert DemoConfig(model="m", gallery="g", templates="None").prompt_templates is None
    assert DemoConfig(model="m", gallery="g").prompt_templates == "satellite"
    with pytest.raises(ConfigError, match="gallery: no gallery given"):
        DemoConfig(model="m")
    with pytest.raises(ConfigError, match="exactly one source"):
        GalleryConfig(model="m", output_dir="o", pairs="p", geotiffs=["a.tif"])
    with pytest.raises(ConfigError, match="port: "):
        DemoConfig(model="m", gallery="g", port="80")


def test_the_demo_without_gradio_names_the_extra():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['gradio'] = None\n"
        "try:\n    import graft_hf.demo.app\nexcept ImportError as error:\n    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "the GRAFT demo needs gradio, which is not installed: pip install 'graft-hf[demo]'" in result.stdout, (
        result.stderr[-2000:]
    )


def test_space_metadata_matches_the_installed_gradio():

    import gradio
    import yaml

    spaces = REPO_ROOT / "spaces"
    text = (spaces / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    for key in ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "license", "tags"):
        assert key in meta, key
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__
    assert (spaces / meta["app_file"]).is_file()
    assert meta["colorFrom"] in {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert f"gradio=={gradio.__version__}" in (spaces / "requirements.txt").read_text()
    assert "build_demo" in (spaces / meta["app_file"]).read_text()


def test_build_demo_from_paths_and_the_gallery_command(tmp_path, tiny_model_dir, naip_crop, demo_limits):
    import gradio as gr

    from graft_hf.demo import build_demo, load_gallery
    from graft_hf_cli import main

    gallery = tmp_path / "cli-gallery"
    argv = ["demo-gallery", "--model", str(tiny_model_dir), "--geotiffs", str(naip_crop), "-o", str(gallery)]
    assert main([*argv, "--device", "cpu", "--thumbnail-size", "48"]) == 0
    index, info = load_gallery(gallery)
    assert len(index) == 1 and info.thumbnail_size == 48 and info.model == str(tiny_model_dir)
    demo = build_demo(tiny_model_dir, gallery, limits=demo_limits, templates=None)
    try:
        assert isinstance(demo, gr.Blocks) and demo.graft_backend.limits == demo_limits
        api = {dep.api_name for dep in demo.fns.values() if dep.api_name}
        assert {"retrieve", "segment", "region_map"} <= api
        assert demo.graft_backend.retrieve("farmland", 1).hits[0].tile_id == naip_crop.stem
    finally:
        demo.graft_backend.close()


def test_the_space_app_builds_the_same_demo_from_its_variables(monkeypatch, tiny_model_dir, gallery_dir):
    import runpy

    import gradio as gr

    monkeypatch.setenv("MODEL_ID", str(tiny_model_dir))
    monkeypatch.setenv("GALLERY", str(gallery_dir))
    monkeypatch.setenv("TEMPLATES", "none")
    app = REPO_ROOT / "spaces" / "app.py"
    namespace = runpy.run_path(str(app), run_name="space_app")  # not __main__: builds the app, does not serve it
    demo = namespace["demo"]
    try:
        assert isinstance(demo, gr.Blocks) and demo.graft_backend.templates is None
        assert len(demo.graft_backend.retrieve("farmland", 3).hits) == 3
    finally:
        demo.graft_backend.close()


def test_gallery_records_from_pairs_shards(tmp_path, eurosat_records):
    from datasets import Dataset, Features, Image, Value

    from graft_hf.demo import records_from_pairs

    features = Features(
        {"tile_id": Value("string"), "image": Image(), "center_lat": Value("float64"), "center_lon": Value("float64"),
         "acquisition_date": Value("string"), "sensor": Value("string"), "gsd": Value("float64")}
    )  # fmt: skip
    rows = {
        "tile_id": ["t0", "t1", "t2"], "image": [r["image"] for r in eurosat_records[:3]],
        "center_lat": [47.0, 47.1, 47.2], "center_lon": [-99.0, -99.1, -99.2],
        "acquisition_date": ["2020-08-31"] * 3, "sensor": ["naip"] * 3, "gsd": [1.0] * 3,
    }  # fmt: skip
    (tmp_path / "pairs").mkdir()
    Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / "pairs" / "shard-00000.parquet"))
    records = list(records_from_pairs(tmp_path / "pairs", limit=2))
    assert [(r["tile_id"], r["lat"], r["lon"], r["date"]) for r in records] == [
        ("t0", 47.0, -99.0, "2020-08-31"), ("t1", 47.1, -99.1, "2020-08-31"),
    ]  # fmt: skip
    assert records[0]["image"].size == (64, 64)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no parquet shards"):
        list(records_from_pairs(tmp_path / "empty"))


def test_an_index_from_graft_index_shows_its_source_images(tmp_path, tiny_model_dir, naip_crop, demo_limits):
    import shutil

    from graft_hf.evaluation.archive import IndexBuildConfig, build_index

    tiles = tmp_path / "tiles"
    tiles.mkdir()
    shutil.copy(naip_crop, tiles / "a.tif")
    build_index(
        IndexBuildConfig(model=str(tiny_model_dir), data=str(tiles), output=str(tmp_path / "idx"), progress=False)
    )
    backend = DemoBackend.from_paths(str(tiny_model_dir), tmp_path / "idx", demo_limits, workdir=tmp_path / "work")
    hit = backend.retrieve("farmland", 1).hits[0]
    assert hit.image.size == (96, 96)  # the GeoTIFF itself, not the grey placeholder
    assert np.asarray(hit.image).std() > 5
    assert f"{hit.lat:.4f}" in hit.caption and 46 < hit.lat < 48
