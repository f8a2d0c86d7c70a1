"""`graft map`: the config built in one place without importing torch, library errors that name the flag."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.rasters import write_raster


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random GRAFT model (32 px input, patch 8) whose sensor GSD matches the 5 m rasters (not conftest's)."""
    from graft_hf import build_processor
    from graft_hf.testing import tiny_graft_model

    path = tmp_path_factory.mktemp("tiny-graft")
    model = tiny_graft_model(seed=0, gsd=5.0)
    model.save_pretrained(path)
    build_processor(model.config).save_pretrained(path)
    return path


def test_cli_builds_the_config_in_one_place_and_imports_no_torch():
    from graft_hf_cli import build_parser
    from graft_hf_cli.map import config_from_args

    args = build_parser().parse_args(
        ["map", "--raster", "scene.tif", "--query", "farmland", "--query", "roads", "--model", "m", "--gsd", "native",
         "--window", "0,0,100,50", "--level", "patch", "--batch-size", "4", "--no-png"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.queries == ("farmland", "roads") and config.window == (0, 0, 100, 50)
    assert (config.gsd, config.level, config.batch_size, config.png) == ("native", "patch", 4, False)
    assert config.output_dir == "scene-graft-map"
    args = build_parser().parse_args(
        ["map", "--raster", "s.tif", "--query", "a", "--model", "m", "--bounds=-99.2,47,-99.1,47.1"]
    )
    assert config_from_args(args).bounds == (-99.2, 47.0, -99.1, 47.1)
    code = "import sys, graft_hf_cli.map; from graft_hf_cli import build_parser; build_parser(); print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_cli_names_flags_where_the_library_names_parameters(model_dir, tmp_path, capsys):
    from graft_hf_cli import main as graft_main

    data = np.full((4, 40, 40), 100, dtype=np.uint8)
    write_raster(tmp_path / "two.tif", data[:2])
    base = ["map", "--model", str(model_dir), "--query", "farmland", "--tile-size", "32", "--no-progress"]
    assert graft_main([*base, "--raster", str(tmp_path / "two.tif"), "-o", str(tmp_path / "a")]) == 1
    assert "--bands: raster" in capsys.readouterr().err
    write_raster(tmp_path / "ok.tif", data)
    (tmp_path / "file").write_text("not a folder")
    assert graft_main([*base, "--raster", str(tmp_path / "ok.tif"), "-o", str(tmp_path / "file" / "out")]) == 1
    assert "--output: output folder" in capsys.readouterr().err
    assert graft_main([*base, "--raster", str(tmp_path / "ok.tif"), "--resume", "--overwrite"]) == 1
    assert "pass only one of --resume and --overwrite" in capsys.readouterr().err
    assert (
        graft_main(
            [*base, "--raster", str(tmp_path / "ok.tif"), "--window", "100,100,10,10", "-o", str(tmp_path / "b")]
        )
        == 1
    )
    assert "--window: the requested region" in capsys.readouterr().err
    assert (
        graft_main([*base, "--raster", str(tmp_path / "ok.tif"), "--score", "softmax", "-o", str(tmp_path / "b")]) == 1
    )
    assert "--score: 'softmax' normalises across queries" in capsys.readouterr().err
    out = tmp_path / "c"
    assert graft_main([*base, "--raster", str(tmp_path / "ok.tif"), "--gsd", "native", "--no-png", "-o", str(out)]) == 0
    assert graft_main([*base, "--raster", str(tmp_path / "ok.tif"), "--gsd", "native", "--no-png", "-o", str(out)]) == 1
    assert "pass --resume to continue it or --overwrite to start again" in capsys.readouterr().err
