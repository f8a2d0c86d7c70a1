"""`graft quickstart` and `graft mosaic-benchmark`: flags read from the config dataclasses, errors naming the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from graft_hf.quickstart.config import BenchmarkConfig, MosaicConfig, QuickstartConfig, StudentArch
from graft_hf_cli import build_parser
from graft_hf_cli import main as graft_main
from graft_hf_cli.mosaic import build_config as mosaic_from_args
from graft_hf_cli.quickstart import build_config as quickstart_from_args
from graft_hf_cli.quickstart import default_eurosat_path


def test_the_command_line_defaults_are_the_dataclass_defaults() -> None:
    parser = build_parser()
    data = str(default_eurosat_path())
    assert quickstart_from_args(parser.parse_args(["quickstart"])) == QuickstartConfig(data=data)
    assert mosaic_from_args(parser.parse_args(["mosaic-benchmark"])) == MosaicConfig(data=data)
    # The two benchmarks share every field of the base; each overrides only its own defaults.
    shared = set(BenchmarkConfig.__dataclass_fields__)
    assert shared <= set(MosaicConfig.__dataclass_fields__) and shared == set(QuickstartConfig.__dataclass_fields__)
    assert MosaicConfig().student.image_size == MosaicConfig().grid * MosaicConfig().tile_size


def test_public_flag_spellings_set_the_fields(tmp_path: Path) -> None:
    parser = build_parser()
    args = ["quickstart", "--data", "d", "-o", str(tmp_path), "--no-progress", "--epochs", "2", "--lr", "0.01"]
    config = quickstart_from_args(parser.parse_args(args))
    assert (config.data, config.output_dir, config.progress, config.epochs, config.lr) == (
        "d",
        str(tmp_path),
        False,
        2,
        0.01,
    )
    args = ["mosaic-benchmark", "--output", "o", "--grid", "2", "--tile-size", "16", "--patch-size", "4"]
    args += ["--hidden-size", "32", "--layers", "2", "--heads", "2", "--image-model", "m", "--max-observations", "5"]
    config = mosaic_from_args(parser.parse_args(args))
    assert config.student == StudentArch(image_size=32, patch_size=4, hidden_size=32, num_layers=2, num_heads=2)
    assert (config.output_dir, config.image_model, config.max_observations) == ("o", "m", 5)


def test_command_line_errors_name_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert graft_main(["quickstart", "--batch-size", "1", "-o", str(tmp_path / "run")]) != 0
    assert "--batch-size" in capsys.readouterr().err
    assert graft_main(["mosaic-benchmark", "--hidden-size", "10", "-o", str(tmp_path / "run")]) != 0
    assert "--hidden-size" in capsys.readouterr().err
    assert graft_main(["quickstart", "--text-encoder", str(tmp_path / "none"), "-o", str(tmp_path / "run")]) != 0
    assert "--text-encoder" in capsys.readouterr().err
