"""`graft demo` and `graft demo-gallery`: limits parsed without importing torch or gradio, errors that name the flag."""

from __future__ import annotations

import pytest

pytest.importorskip("gradio")


def test_graft_demo_cli_parses_limits_without_importing_torch():
    import subprocess
    import sys

    code = (
        "import sys; from graft_hf_cli import build_parser; "
        "a = build_parser().parse_args(['demo', '--model', 'm', '--gallery', 'g', '--share', 'no', "
        "'--max-upload-mb', '1', '--k-max', '5']); "
        "assert a.share is False and a.port == 7860 and a.host == '127.0.0.1'; "
        "assert 'torch' not in sys.modules and 'gradio' not in sys.modules, 'heavy import at parse time'; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]

    from graft_hf_cli import build_parser
    from graft_hf_cli.demo import limits_from_args

    args = build_parser().parse_args(["demo", "--gallery", "g", "--max-upload-mb", "1", "--k-max", "5"])
    limits = limits_from_args(args)
    assert limits.max_upload_bytes == 1048576 and limits.k_max == 5 and limits.k_default == 5
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--gallery", "g", "--share", "maybe"])


def test_demo_cli_errors_name_the_flags(monkeypatch, capsys, tiny_model_dir, naip_crop, tmp_path):
    from graft_hf_cli import main

    monkeypatch.delenv("GRAFT_MODEL", raising=False)
    assert main(["demo", "--gallery", str(tmp_path)]) == 1
    assert "graft demo: error: --model: no model given" in capsys.readouterr().err
    argv = ["demo-gallery", "--model", str(tiny_model_dir), "--pairs", str(tmp_path), "-o", str(tmp_path / "g")]
    assert main([*argv, "--limit", "0"]) == 1
    assert "graft demo-gallery: error: --limit: must be positive, got 0" in capsys.readouterr().err
    assert main(["demo", "--model", "m", "--gallery", "g", "--max-pixels", "0"]) == 1
    assert "graft demo: error: --max-pixels: DemoLimits.max_pixels must be positive" in capsys.readouterr().err
