"""What `graft segment`, `graft detect` and `graft ask` share (graft_hf_cli/_pixel_inputs.py): a missing image, a
GeoTIFF with the wrong bands, library errors that name the flag.
"""

from __future__ import annotations

import pytest

from tests.helpers.cli import graft


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
