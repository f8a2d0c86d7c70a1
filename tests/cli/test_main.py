"""The `graft` entry point (graft_hf_cli/__init__.py): building the parser and `--help` import no heavy library."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers.cli import OFFLINE


def test_cli_modules_import_only_the_standard_library():
    code = (
        "import sys, graft_hf_cli; graft_hf_cli.build_parser(); "
        "bad = [m for m in ('torch', 'graft_hf', 'datasets', 'transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))


def test_help_lists_commands_without_importing_torch():
    code = (
        "import sys, graft_hf_cli; text = graft_hf_cli.build_parser().format_help(); "
        "assert 'torch' not in sys.modules, 'graft --help imported torch'; print(text)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **OFFLINE})
    assert done.returncode == 0, done.stderr
    for command in ("segment", "detect", "ask"):
        assert command in done.stdout


def test_unknown_flag_prints_the_subcommands_usage_and_the_closest_flag(capsys):
    import pytest

    from graft_hf_cli import main

    with pytest.raises(SystemExit) as info:
        main(["quickstart", "--epoks", "3"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: graft quickstart" in err
    assert "unrecognized arguments: --epoks (did you mean --epochs?) 3" in err
    with pytest.raises(SystemExit):
        main(["pairs", "embed", "pairs/", "--teacher", "clip", "--batch-sise", "4"])
    err = capsys.readouterr().err
    assert "usage: graft pairs embed" in err and "did you mean --batch-size?" in err
