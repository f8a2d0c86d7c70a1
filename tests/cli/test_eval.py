"""`graft eval` on a tiny model: the report a subprocess writes on real EuroSAT, errors that name the flag."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from graft_hf_cli import main as graft_main
from tests.helpers.data import EUROSAT


@pytest.mark.skipif(not EUROSAT.is_dir(), reason=f"real EuroSAT data not found at {EUROSAT}")
def test_graft_eval_subprocess_writes_the_report(model_dir, tmp_path):
    from graft_hf.hub.cards import load_eval_results

    out = tmp_path / "report"
    argv = ["eval", "--model", str(model_dir), "--data", str(EUROSAT), "--limit", "16", "--grid-k", "4"]
    proc = subprocess.run(
        [sys.executable, "-m", "graft_hf_cli", *argv, "--templates", "clip-eurosat", "--no-progress", "-o", str(out)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "graft-tiny on EuroSAT (test, 16 images): top1" in proc.stdout
    assert {p.name for p in out.iterdir()} == {
        "results.json",
        "results.md",
        "model_index.yaml",
        "confusion_matrix.png",
        "retrieval_grid.png",
    }
    results = load_eval_results(out / "results.json")
    assert results[0].metric_type == "accuracy" and results[0].dataset_split == "test"
    assert json.loads((out / "results.json").read_text())["templates"][0] == "a centered satellite photo of {}."


def test_graft_eval_errors_name_the_fix(model_dir, tmp_path, capsys):
    assert graft_main(["eval", "--model", str(model_dir), "--data", str(tmp_path / "nope"), "-o", str(tmp_path)]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        graft_main(["eval", "--model", str(model_dir), "--data", str(tmp_path), "--dataset-kind", "resisc", "-o", "x"])
    assert exit_info.value.code == 2
    folder = tmp_path / "ucm"
    for name in ("forest", "river"):
        (folder / name).mkdir(parents=True)
        Image.new("RGB", (20, 20), (0, 90, 0)).save(folder / name / "a.png")
    argv = ["eval", "--model", "openai/clip-vit-base-patch32", "--data", str(folder), "-o", str(tmp_path / "o")]
    assert graft_main(argv) == 1
    assert "--model DIR" in capsys.readouterr().err


def test_graft_eval_names_flags_where_the_library_names_parameters(model_dir, tmp_path, capsys):
    from datasets import Dataset

    (tmp_path / "ints" / "data").mkdir(parents=True)
    rows = {"image": [Image.new("RGB", (8, 8), (i, i, i)) for i in range(3)], "label": [0, 1, 2]}
    Dataset.from_dict(rows).to_parquet(str(tmp_path / "ints" / "data" / "test-00000-of-00001.parquet"))
    argv = ["eval", "--model", str(model_dir), "--data", str(tmp_path / "ints"), "-o", str(tmp_path / "o")]
    assert graft_main(argv) == 1
    assert (
        "--class-names: integer labels without names: pass the class names in label-id order (or --dataset-kind "
        in capsys.readouterr().err
    )
    assert graft_main([*argv, "--split", "validation"]) == 1
    assert "--split: dataset" in capsys.readouterr().err
    assert graft_main([*argv, "--label-column", "caption"]) == 1
    assert "--label-column: 'caption' is not among" in capsys.readouterr().err
    assert graft_main(["eval", "--data", str(tmp_path / "ints"), "-o", str(tmp_path / "o")]) == 1
    assert "--model: pass a GRAFT or CLIP model directory" in capsys.readouterr().err
    assert graft_main(["eval", "--baseline", "open_clip", *argv[3:], "--class-names", "a,b,c"]) == 1
    assert "--arch: open_clip baselines need an architecture" in capsys.readouterr().err


def test_graft_eval_on_a_decompression_bomb_is_a_clean_error(model_dir, tmp_path):
    from tests.helpers.cli import graft
    from tests.helpers.hostile import png_bomb

    for name in ("forest", "river"):
        (tmp_path / "ucm" / name).mkdir(parents=True)
        Image.new("RGB", (20, 20), (0, 90, 0)).save(tmp_path / "ucm" / name / "a.png")
    command = ["eval", "--model", model_dir, "--data", tmp_path / "ucm", "-o", tmp_path / "out", "--no-progress"]
    for side, message in [
        (20_000, "b.png): DecompressionBombError: Image size (400000000 pixels) exceeds limit"),  # Pillow's limit
        (5_000, "b.png) is 5000 x 5000 = 25,000,000 pixels, over the limit of 16,777,216"),  # below it: ours
    ]:
        png_bomb(tmp_path / "ucm" / "forest" / "b.png", side=side)
        done = graft(*command)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert message in done.stderr
