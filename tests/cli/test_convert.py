"""`graft convert`: library errors that name the flag."""

from __future__ import annotations

import pytest
import torch

from graft_hf_cli import main
from tests.helpers.authors_checkpoint import authors_checkpoint, make_authors, tiny_clip, trained_authors


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip")
    tiny_clip().save_pretrained(path)
    return path


def test_cli_errors_name_the_flags(clip_dir, tmp_path, capsys):
    checkpoint = authors_checkpoint(make_authors(), "nested", log_scale=False)
    checkpoint["state_dict"]["ground_encoder.proj.weight"] = torch.zeros(2, 2)
    ckpt = tmp_path / "extra.ckpt"
    torch.save(checkpoint, ckpt)
    out = str(tmp_path / "out")
    assert main(["convert", str(ckpt), "--clip", str(clip_dir), "-o", out]) == 1
    assert "graft convert: error: --ignore-key-prefix: " in capsys.readouterr().err
    other = tmp_path / "clip-p16"
    tiny_clip(patch_size=16).save_pretrained(other)
    argv = ["convert", str(ckpt), "--clip", str(clip_dir), "-o", out, "--ignore-key-prefix", "ground_encoder."]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "graft convert: error: --level: the checkpoint does not tell" in err and "pass --level 'image'" in err
    argv[3] = str(other)
    assert main(argv + ["--level", "pixel"]) == 1
    assert "graft convert: error: --clip: checkpoint shapes do not match this CLIP" in capsys.readouterr().err


def test_cli_reads_the_level_from_the_weights(clip_dir, tmp_path, capsys):
    ckpt = tmp_path / "pixel.ckpt"
    torch.save(authors_checkpoint(trained_authors("pixel"), "nested", log_scale=False), ckpt)
    assert main(["convert", str(ckpt), "--clip", str(clip_dir), "-o", str(tmp_path / "out")]) == 0
    assert "GRAFT pixel-level model written to" in capsys.readouterr().out
