"""`graft train`: `--print-config`, and an unknown override key as a clean error."""

from __future__ import annotations

import pytest


def test_cli_print_config(capsys: pytest.CaptureFixture[str]) -> None:
    from graft_hf_cli import main

    assert (
        main(["train", "naip-vitb16-pixel", "--override", "data.path=/p", "-o", "train.max_steps=5", "--print-config"])
        == 0
    )
    text = capsys.readouterr().out
    assert "task: pixel" in text and "max_steps: 5" in text and "lr: 5.0e-05" in text


def test_cli_unknown_key_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    from graft_hf_cli import main

    assert main(["train", "naip-vitb16", "-o", "train.nope=1"]) == 1
    assert "train.nope: unknown key" in capsys.readouterr().err
