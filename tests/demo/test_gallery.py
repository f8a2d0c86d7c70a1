"""Demo galleries: built from records, GeoTIFFs or pairs shards, and loaded back with coordinates and thumbnails."""

from __future__ import annotations

import pytest

from tests.helpers.demo_data import GALLERY_SIZE, gallery_coordinates

torch = pytest.importorskip("torch")
pytest.importorskip("gradio")


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


def test_gallery_records_have_coordinates_all_or_none(tmp_path, tiny_model_dir, eurosat_records):
    from graft_hf.demo import build_gallery
    from graft_hf.modeling import GraftModel

    model = GraftModel.from_pretrained(tiny_model_dir).eval()
    image = eurosat_records[0]["image"]
    with pytest.raises(ValueError, match="record 1: the first records have 'lat'/'lon'"):
        build_gallery(model, [{"image": image, "lat": 1, "lon": 2}, {"image": image}], tmp_path / "g")
    unplaced = build_gallery(model, [{"image": image}, {"image": image}], tmp_path / "unplaced")
    assert len(unplaced) == 2 and unplaced.columns.get("lat") is None
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
