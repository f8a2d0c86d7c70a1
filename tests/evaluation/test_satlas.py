"""SatlasPretrain land-cover segmentation read from the dataset's real layout (tests/helpers/satlas.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graft_hf.config import ConfigError
from graft_hf.evaluation.satlas import LAND_COVER_CLASSES, load_satlas_segmentation
from graft_hf.tasks.segmentation import evaluate_segmentation
from tests.helpers.satlas import LABEL_TILES, ColourSegmenter, present_classes, write_satlas_root


@pytest.fixture(scope="module")
def satlas_root(tmp_path_factory):
    return write_satlas_root(tmp_path_factory.mktemp("satlas"))


def test_land_cover_classes_are_satlaspretrains_eleven():
    assert LAND_COVER_CLASSES == (
        "water", "developed", "tree", "shrub", "grass", "crop", "bare", "snow", "wetland", "mangroves", "moss",
    )  # fmt: skip


def test_sentinel2_reads_one_512_label_per_tile_with_the_latest_image(satlas_root):
    data = load_satlas_segmentation(satlas_root, "sentinel2")
    assert data.split == "test_lowres" and len(data) == 2
    assert [s.tile for s in data.samples] == list(LABEL_TILES)
    assert data.samples[0].image_path.parent.parent.name.startswith("S2B")  # image_times.json: the later scene
    assert data.mask(0).shape == (512, 512) and data.image(0).size == (512, 512)
    assert data.skipped == {"tile without land_cover.png": 1}


def test_classes_present_are_computed_from_the_labels(satlas_root):
    data = load_satlas_segmentation(satlas_root, "sentinel2")
    assert data.class_names == present_classes() == ["water", "developed", "tree", "grass", "crop", "bare"]
    assert data.pixel_counts["snow"] == 0 and data.pixel_counts["water"] > 0
    mask = data.mask(0)
    assert mask[0, 0] == data.class_names.index("water") and mask[300, 300] == data.class_names.index("crop")
    assert mask[511, 511] == data.ignore_index  # invalid (0) cells are ignored


def test_min_pixels_and_explicit_classes_choose_the_evaluated_classes(satlas_root):
    data = load_satlas_segmentation(satlas_root, "sentinel2", min_pixels=60_000)
    assert data.pixel_counts["bare"] == 502 * 112
    assert data.class_names == ["water", "developed", "tree", "grass", "crop"]  # too little bare
    assert np.all(data.mask(1)[10:, 400:] == data.ignore_index)  # bare is not evaluated
    only = load_satlas_segmentation(satlas_root, "sentinel2", class_names=["crop", "water"])
    assert only.class_names == ["water", "crop"]
    with pytest.raises(ConfigError, match="not SatlasPretrain land-cover classes"):
        load_satlas_segmentation(satlas_root, "sentinel2", class_names=["forest"])


def test_naip_images_get_their_32x32_window_of_the_zoom13_label(satlas_root):
    data = load_satlas_segmentation(satlas_root, "naip")
    assert data.split == "test_highres"
    # 3 NAIP sub-tiles per label tile, minus tile 0's (15, 15) whose window is all invalid.
    assert len(data) == 5 and data.skipped["image whose label is all invalid"] == 1
    assert all(s.window[2] == 32 for s in data.samples) and data.image(0).size == (512, 512)
    sample = next(s for s in data.samples if s.tile == (1867 * 16 + 3, 3287 * 16 + 1))
    assert sample.window == (32, 96, 32)  # (top, left, size): row offset 1, column offset 3
    assert data.mask(data.samples.index(sample)).shape == (32, 32)


@pytest.mark.parametrize("variant", ["naip", "sentinel2"])
def test_a_perfect_segmenter_scores_one_on_the_labels_own_grid(satlas_root, variant):
    data = load_satlas_segmentation(satlas_root, variant)
    metrics = evaluate_segmentation(ColourSegmenter(), data, data.class_names, ignore_index=data.ignore_index)
    assert metrics.pixel_accuracy == 1.0 and metrics.mean_accuracy == 1.0
    counted = int(metrics.confusion.sum())
    assert counted == sum(int((data.mask(i) != data.ignore_index).sum()) for i in range(len(data)))


def test_limit_takes_a_seeded_subset(satlas_root):
    first = load_satlas_segmentation(satlas_root, "naip", limit=3, seed=1)
    again = load_satlas_segmentation(satlas_root, "naip", limit=3, seed=1)
    assert [s.tile for s in first.samples] == [s.tile for s in again.samples] and len(first) <= 3


def test_missing_split_and_bad_split_file_are_named(satlas_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="test_highres.json"):
        load_satlas_segmentation(tmp_path, "naip")
    with pytest.raises(ConfigError, match="unknown SatlasPretrain variant"):
        load_satlas_segmentation(satlas_root, "landsat")
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "test_lowres.json").write_text(json.dumps({"tiles": 3}))
    (tmp_path / "sentinel2").mkdir()
    with pytest.raises(ValueError, match=r"list of \[col, row\] pairs"):
        load_satlas_segmentation(tmp_path, "sentinel2")
