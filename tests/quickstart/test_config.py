"""The benchmarks' configs: library errors name the parameter, never a flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from graft_hf.config import ConfigError
from graft_hf.quickstart.common import text_encoder_path
from graft_hf.quickstart.config import MosaicConfig, QuickstartConfig, StudentArch
from graft_hf.quickstart.eurosat import load_eurosat_split
from graft_hf.quickstart.run import run_quickstart


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
