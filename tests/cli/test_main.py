"""The `graft` entry point (graft_hf_cli/__init__.py): building the parser and `--help` import no heavy library; running
out of memory and decompression bombs are one-line errors, not tracebacks.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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


def _raising(error: BaseException):
    def handler(args):
        raise error

    return handler


def test_out_of_memory_and_decompression_bombs_are_clean_errors(monkeypatch, capsys):
    from PIL import Image

    import graft_hf_cli.search
    from graft_hf_cli import main

    cases = [
        (MemoryError("Unable to allocate 37.3 GiB for an array with shape (3, 100000, 100000)"),
         "graft search: error: out of memory (Unable to allocate 37.3 GiB"),
        (Image.DecompressionBombError("Image size (400000000 pixels) exceeds limit"),
         "graft search: error: an image is refused as a possible decompression bomb (Image size"),
    ]  # fmt: skip
    for error, message in cases:
        monkeypatch.setattr(graft_hf_cli.search, "run", _raising(error))
        assert main(["search", "index", "-q", "x"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(message) and "`graft map`" in err
    monkeypatch.setattr(graft_hf_cli.search, "run", _raising(KeyError("a bug")))
    with pytest.raises(KeyError):  # anything else is a bug: its traceback stays
        main(["search", "index", "-q", "x"])
