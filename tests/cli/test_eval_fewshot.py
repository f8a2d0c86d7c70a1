"""`graft eval-fewshot` on a tiny GRAFT model and the real EuroSAT splits: runs per seed, mean and spread."""

from __future__ import annotations

import json

import pytest

from graft_hf_cli import main as graft_main
from tests.helpers.data import EUROSAT, needs_eurosat


@needs_eurosat
def test_eval_fewshot_reports_every_seed_and_the_spread(model_dir, tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["eval-fewshot", "--model", str(model_dir), "--data", str(EUROSAT), "--limit", "30", "--shots", "1"]
    argv += ["--shots", "2", "--seeds", "3", "--no-progress", "-o", str(out)]
    assert graft_main(argv) == 0
    assert "graft-tiny on EuroSAT, 1-shot linear: accuracy" in capsys.readouterr().out
    report = json.loads((out / "results.json").read_text())
    assert set(report["summary"]) == {"1", "2"} and report["summary"]["1"]["seeds"] == 3
    assert [(r["shots"], r["seed"]) for r in report["runs"]] == [(k, s) for k in (1, 2) for s in range(3)]
    assert all(len(r["support"]) == r["shots"] * 10 for r in report["runs"])  # EuroSAT's 10 classes
    assert report["dataset"]["test_images"] == 30 and report["metric"] == "accuracy"
    assert "| 2 |" in (out / "results.md").read_text()


@needs_eurosat
def test_eval_fewshot_prototype_classifier_and_flag_errors(model_dir, tmp_path, capsys):
    argv = ["eval-fewshot", "--model", str(model_dir), "--data", str(EUROSAT), "--limit", "10", "--seeds", "1"]
    assert graft_main([*argv, "--classifier", "prototype", "--no-progress", "-o", str(tmp_path / "p")]) == 0
    assert json.loads((tmp_path / "p" / "results.json").read_text())["classifier"] == "prototype"
    capsys.readouterr()
    assert graft_main([*argv, "--shots", "0", "-o", str(tmp_path / "x")]) == 1
    assert "--shots" in capsys.readouterr().err
    assert graft_main([*argv, "--train-split", "validation", "-o", str(tmp_path / "x")]) == 1
    assert "--train-split" in capsys.readouterr().err


def test_eval_fewshot_help_lists_the_protocol_flags(capsys):
    with pytest.raises(SystemExit):
        graft_main(["eval-fewshot", "--help"])
    text = capsys.readouterr().out
    assert all(flag in text for flag in ("--shots", "--seeds", "--classifier", "--regularization", "--baseline"))
