"""The demo's computations without a browser: retrieval with its map, the query cache, segmentation, region maps,
indexes without thumbnails or from `graft index`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.demo_data import GALLERY_SIZE, gallery_coordinates, with_limits

pytest.importorskip("gradio")

from graft_hf.demo import DemoBackend  # noqa: E402


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
    index, info = load_gallery(tmp_path / "nocoords")  # listed without a map
    unplaced = DemoBackend(backend.model, backend.image_processor, backend.tokenizer, index, info, "m", backend.limits)
    assert unplaced.retrieve("a farm", 2).map_image is None
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
    small = with_limits(backend, query_cache_size=2)
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
