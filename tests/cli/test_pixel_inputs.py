"""What `graft segment`, `graft detect` and `graft ask` share (graft_hf_cli/_pixel_inputs.py): a missing image, a
GeoTIFF with the wrong bands, a raster too large for one image (refused from its header, pointing to `graft map`), a
missing model folder, library errors that name the flag.
"""

from __future__ import annotations

import pytest

from tests.helpers.cli import graft
from tests.helpers.hostile import huge_tiff, many_bands_tiff, measure


@pytest.mark.parametrize("command", ["segment", "detect", "ask"])
def test_missing_image_is_a_clean_error(files, command):
    query = ["Is there a road?"] if command == "ask" else ["--query", "road", "-o", files["root"] / "never"]
    done = graft(command, "--model", files["model"], "--image", files["root"] / "missing.png", *query)
    assert done.returncode == 1
    assert "image not found" in done.stderr and "Traceback" not in done.stderr
    assert not (files["root"] / "never").exists()


def test_geotiff_with_wrong_band_count_names_the_fix(files, naip):
    done = graft("segment", "--model", files["model"], "--image", naip["two_bands"], "--query", "road", "-o",
                 files["root"] / "seg-bad")  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "expected 4 bands (red, green, blue, nir) or 3 RGB bands" in done.stderr and "got 2" in done.stderr


@pytest.mark.parametrize("command", ["segment", "detect"])
def test_library_errors_name_the_flags(files, tmp_path, capsys, command):
    from graft_hf_cli import main as graft_main

    (tmp_path / "file").write_text("not a folder")
    base = [command, "--image", str(files["png"]), "--query", "road"]
    assert graft_main([*base, "--model", str(files["model"]), "-o", str(tmp_path / "file" / "out")]) == 1
    assert "--output: output folder" in capsys.readouterr().err
    assert graft_main([*base, "--model", "nobody/no-such-graft-model", "-o", str(tmp_path / "o")]) == 1
    assert "e.g. --model /path/to/graft-naip-vitb16" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["segment", "detect"])
def test_a_raster_too_large_for_one_image_points_to_graft_map(files, tmp_path, command):
    huge = huge_tiff(tmp_path)
    done = graft(command, "--model", files["model"], "--image", huge, "--query", "road", "-o", tmp_path / "out")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"--image {huge} is 100000 x 100000 = 10,000,000,000 pixels, over the limit of 16,777,216" in done.stderr
    assert "Use `graft map`, which tiles large scenes" in done.stderr
    bands = many_bands_tiff(tmp_path)
    done = graft(command, "--model", files["model"], "--image", bands, "--query", "road", "-o", tmp_path / "out")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "expected 4 bands (red, green, blue, nir) or 3 RGB bands for sensor 'naip', got 300" in done.stderr


def test_the_header_check_costs_little(files, tmp_path):
    huge = huge_tiff(tmp_path)
    setup = (
        "import rasterio, graft_hf.tasks.tiling  # imported by the first call: not what is measured\n"
        "from graft_hf.modeling import GraftConfig\n"
        "from graft_hf_cli._pixel_inputs import open_image_input\n"
        f"config = GraftConfig.from_pretrained({str(files['model'])!r})"
    )
    result = measure(setup, f"open_image_input({str(huge)!r}, None, config)")
    assert result["outcome"].startswith("ValueError: --image") and "`graft map`" in result["outcome"]
    assert result["growth_mb"] < 300 and result["seconds"] < 1.0, result


def test_a_missing_model_folder_is_named(files, tmp_path):
    done = graft("segment", "--model", tmp_path / "no-model", "--image", files["png"], "--query", "road", "-o",
                 tmp_path / "out")  # fmt: skip
    assert done.returncode == 1
    assert f"--model: model folder '{tmp_path / 'no-model'}' does not exist; pass an existing folder" in done.stderr
