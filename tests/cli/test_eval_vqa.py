"""`graft eval-vqa` as a user runs it: an RSVQA split in the dataset's layout, real NAIP crops standing in for the
aerial images (the paper's protocol), a tiny GRAFT model; the report files and the numbers in them agree."""

from __future__ import annotations

import json

from graft_hf_cli import main
from tests.helpers.cli import graft
from tests.helpers.data import shared_data
from tests.helpers.rsvqa import write_naip_images, write_rsvqa

NAIP = ("naip-nd", "m_4709963_se_14_1_20200831.tif")


def test_eval_vqa_writes_per_type_accuracy_and_predictions(files, tmp_path):
    data = write_rsvqa(tmp_path / "rsvqa")
    images = write_naip_images(tmp_path / "naip", shared_data(*NAIP), [1, 2, 3])
    out = tmp_path / "out"
    done = graft("eval-vqa", "--model", files["model"], "--data", data, "--images", images, "-o", out,
                 "--num-questions", "6", "--seed", "1", "--threshold", "0.0", "--templates", "none")  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert results["questions"] == len(records) == 6 and results["config"]["num_questions"] == 6
    for name, row in results["per_type"].items():
        group = [r for r in records if r["type"] == name]
        assert row["total"] == len(group) and row["correct"] == sum(r["correct"] for r in group)
    averaged = sum(row["accuracy"] for row in results["per_type"].values()) / len(results["per_type"])
    assert abs(results["average_accuracy"] - averaged) < 1e-12
    assert all(r["program"] is None or r["program"].startswith("def execute_command(image):") for r in records)
    assert "| **average** |" in (out / "results.md").read_text() and "average:" in done.stdout
    again = graft("eval-vqa", "--model", files["model"], "--data", data, "--images", images, "-o", tmp_path / "again",
                  "--num-questions", "6", "--seed", "1", "--threshold", "0.0", "--templates", "none")  # fmt: skip
    assert (
        again.returncode == 0
        and (tmp_path / "again" / "predictions.jsonl").read_text() == (out / "predictions.jsonl").read_text()
    )  # same seed, same questions, same answers


def test_eval_vqa_errors_name_the_flags(files, tmp_path, capsys):
    data = write_rsvqa(tmp_path / "rsvqa")
    base = ["eval-vqa", "--model", str(files["model"]), "-o", str(tmp_path / "out")]
    assert main([*base, "--data", str(data), "--type", "rural_urban"]) == 1
    assert "--type: ['rural_urban'] do not occur in the test split" in capsys.readouterr().err
    assert main([*base, "--data", str(tmp_path)]) == 1
    assert "USGS_split_test_questions.json not found" in capsys.readouterr().err
    assert main([*base, "--data", str(data), "--image-pattern", "x.tif"]) == 1
    assert "--image-pattern: must contain {id}" in capsys.readouterr().err
