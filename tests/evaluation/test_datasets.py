"""Evaluation dataset adapters: real EuroSAT and BigEarthNet examples, synthetic image folders and label layouts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from graft_hf.evaluation.datasets import (
    SAT6_CLASSNAMES,
    load_eval_dataset,
    readable_class_name,
    to_rgb_image,
)
from graft_hf.evaluation.templates import EUROSAT_CLASSNAMES
from tests.helpers.data import BIGEARTHNET, EUROSAT, needs_ben, needs_eurosat


@needs_eurosat
def test_eurosat_is_detected_with_readable_prompt_names():
    data = load_eval_dataset(EUROSAT, split="test", limit=30, seed=1)
    assert data.kind == "eurosat" and data.name == "EuroSAT" and data.dataset_type == "eurosat"
    assert len(data) == 30 and data.labels.dtype == np.int64 and not data.multilabel
    assert data.class_names[0] == "AnnualCrop" and data.prompt_names == list(EUROSAT_CLASSNAMES)
    image = data.image(0)
    assert isinstance(image, Image.Image) and image.size == (64, 64) and image.mode == "RGB"
    assert [len(b) for b in data.batches(16)] == [16, 14]
    assert len(np.unique(data.labels)) >= 5  # a seeded random subset, not the first rows of a class-sorted split
    again = load_eval_dataset(EUROSAT, split="test", limit=30, seed=1)
    np.testing.assert_array_equal(again.labels, data.labels)


@needs_ben
def test_bigearthnet_patches_are_twelve_band_multilabel_stacks():
    data = load_eval_dataset(BIGEARTHNET)
    assert data.kind == "bigearthnet" and data.multilabel and data.sensor == "sentinel2" and len(data) == 6
    for row, folder in enumerate(data.source):
        labels = json.loads((folder / f"{folder.name}_labels_metadata.json").read_text())["labels"]
        assert sorted(data.label_names(row)) == sorted(labels)
    stack = data.image(0)
    assert stack.shape == (12, 120, 120) and stack.dtype == np.uint16 and stack.max() > 0
    rgb = data.rgb_image(0)
    assert rgb.size == (120, 120) and np.asarray(rgb).std() > 1  # a real picture, not a flat image
    assert to_rgb_image(rgb).size == (120, 120)


def _write_folder(root: Path, classes: list[str], per_class: int = 3) -> None:
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(root / name / f"{i}.png")


def test_uc_merced_style_image_folder(tmp_path):
    _write_folder(tmp_path / "ucm", ["denseresidential", "river", "storagetanks"])
    data = load_eval_dataset(tmp_path / "ucm", split="test")  # no splits: all images, with a log line
    assert data.kind == "imagefolder" and len(data) == 9
    assert data.class_names == ["denseresidential", "river", "storagetanks"]
    assert data.prompt_names == ["dense residential area", "river", "storage tanks"]
    assert np.bincount(data.labels).tolist() == [3, 3, 3]


def _write_parquet(root: Path, split: str, columns: dict, features=None) -> None:
    from datasets import Dataset

    (root / "data").mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(columns, features=features).to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))


def _images(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (16, 16), (10 * i, 0, 0)) for i in range(n)]


def test_generic_multilabel_column_of_names(tmp_path):
    from datasets import Features, List, Value
    from datasets import Image as ImageFeature

    features = Features({"image": ImageFeature(), "labels": List(Value("string"))})
    labels = [["water", "forest"], ["urban"], [], ["forest"]]
    _write_parquet(tmp_path / "ml", "test", {"image": _images(4), "labels": labels}, features)
    data = load_eval_dataset(tmp_path / "ml", split="test")
    assert data.kind == "multilabel" and data.class_names == ["forest", "urban", "water"]
    np.testing.assert_array_equal(data.labels, [[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="holds lists"):
        load_eval_dataset(tmp_path / "ml", split="test", kind="eurosat")


def test_sat6_integer_labels_get_the_known_names(tmp_path):
    _write_parquet(tmp_path / "sat6", "test", {"image": _images(6), "label": [0, 1, 2, 3, 4, 5]})
    data = load_eval_dataset(tmp_path / "sat6", kind="sat6")
    assert data.kind == "sat6" and data.name == "SAT-6" and tuple(data.class_names) == SAT6_CLASSNAMES
    with pytest.raises(ValueError, match="class_names: integer labels without names"):
        load_eval_dataset(tmp_path / "sat6")  # integer labels, no names, no kind
    with pytest.raises(ValueError, match="one label per image"):
        load_eval_dataset(tmp_path / "sat6", kind="multilabel")


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_eval_dataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown dataset kind 'resisc'"):
        load_eval_dataset(tmp_path, kind="resisc")
    _write_parquet(tmp_path / "nolabel", "test", {"image": _images(2), "caption": ["a", "b"]})
    with pytest.raises(ValueError, match="label_column: no label column"):
        load_eval_dataset(tmp_path / "nolabel")
    with pytest.raises(ValueError, match="split: .*no split 'validation'"):
        load_eval_dataset(tmp_path / "nolabel", split="validation", label_column="caption")
    with pytest.raises(ValueError, match="not a BigEarthNet"):
        load_eval_dataset(tmp_path / "nolabel", kind="bigearthnet")


def test_offline_hub_id_fails_fast_naming_a_local_copy():
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="path: .*there is no folder 'blanchon/EuroSAT_RGB' here.*pass path=DIR"):
        load_eval_dataset("blanchon/EuroSAT_RGB")
    assert time.perf_counter() - started < 15


@pytest.mark.parametrize("path", ["runs/data/eurosat", "./eurosat", "../eurosat", "~/no-such-eurosat"])
def test_a_missing_folder_is_named_not_blamed_on_offline_mode(path):
    with pytest.raises(FileNotFoundError, match=f"dataset folder {path!r} does not exist; pass an existing folder"):
        load_eval_dataset(path)


def test_a_bad_image_stops_the_evaluation_naming_it(tmp_path):
    from graft_hf.evaluation.images import ImageReadError
    from tests.helpers.hostile import png_bomb

    for name in ("forest", "river"):
        (tmp_path / "ucm" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), (0, 90, 0)).save(tmp_path / "ucm" / name / "a.png")
    png_bomb(tmp_path / "ucm" / "river" / "b.png")
    data = load_eval_dataset(tmp_path / "ucm")
    with pytest.raises(ImageReadError, match=r"image row \d \(.*b.png\): DecompressionBombError"):
        list(data.batches(8))


def test_readable_class_names():
    assert readable_class_name("AnnualCrop") == "annual crop"
    assert readable_class_name("storage_tanks") == "storage tanks"
    assert readable_class_name("golfcourse") == "golf course"


@needs_eurosat
def test_class_names_become_prompt_names_for_named_labels():
    names = [f"class {i}" for i in range(10)]
    data = load_eval_dataset(EUROSAT, limit=5, class_names=names)
    assert data.kind == "eurosat" and data.class_names[0] == "AnnualCrop" and data.prompt_names == names
    with pytest.raises(ValueError, match="got 3 class names for a label with 10 classes"):
        load_eval_dataset(EUROSAT, limit=5, class_names=names[:3])
