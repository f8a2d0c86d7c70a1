"""`graft eval-seg` on a tiny pixel-level GRAFT model and a tiny CLIPSeg, on a SatlasPretrain root in its layout."""

from __future__ import annotations

import json

import pytest

from graft_hf_cli import main as graft_main
from tests.helpers.satlas import present_classes, write_satlas_root


@pytest.fixture(scope="module")
def satlas_root(tmp_path_factory):
    return write_satlas_root(tmp_path_factory.mktemp("satlas"))


@pytest.mark.parametrize("variant", ["naip", "sentinel2"])
def test_eval_seg_writes_per_class_accuracy_for_the_present_classes(files, satlas_root, tmp_path, variant, capsys):
    out = tmp_path / "report"
    argv = ["eval-seg", "--model", str(files["model"]), "--data", str(satlas_root), "--variant", variant]
    assert graft_main([*argv, "--no-progress", "-o", str(out)]) == 0
    assert "mean per-class accuracy" in capsys.readouterr().out
    report = json.loads((out / "results.json").read_text())
    assert report["dataset"]["variant"] == variant and report["dataset"]["label_grid"] == (
        32 if variant == "naip" else 512
    )
    assert report["classes"] == [c for c in present_classes() if report["labelled_cells_per_class"][c] > 0]
    assert set(report["metrics"]["per_class_accuracy"]) == set(report["classes"])
    assert 0.0 <= report["metrics"]["pixel_accuracy"] <= 1.0
    assert "| water |" in (out / "results.md").read_text()


def test_eval_seg_scores_the_clipseg_baseline(satlas_root, tmp_path, capsys):
    from tests.helpers.clipseg import save_tiny_clipseg

    clipseg = save_tiny_clipseg(tmp_path / "clipseg")
    out = tmp_path / "report"
    argv = ["eval-seg", "--model", str(clipseg), "--baseline", "clipseg", "--data", str(satlas_root)]
    assert graft_main([*argv, "--variant", "sentinel2", "--limit", "1", "--no-progress", "-o", str(out)]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["baseline"] == "clipseg" and report["dataset"]["num_images"] == 1


def test_eval_seg_errors_name_the_flag(files, tmp_path, capsys):
    argv = ["eval-seg", "--model", str(files["model"]), "--data", str(tmp_path), "-o", str(tmp_path / "o")]
    assert graft_main(argv) == 1
    err = capsys.readouterr().err
    assert "test_highres.json" in err and "--data" in err
    assert graft_main([*argv, "--limit", "0"]) == 1
    assert "--limit" in capsys.readouterr().err
