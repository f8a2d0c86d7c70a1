"""`graft segment`, `graft detect` and `graft ask` run as a user runs them: subprocesses on a tiny random GRAFT model,
a small PNG and a real NAIP GeoTIFF crop (outputs, georeferencing, JSON fields, SAM path, error messages)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.data import shared_data

NAIP = ("naip-nd", "m_4709963_se_14_1_20200831.tif")
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def graft(*args: str | os.PathLike, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE}
    command = [sys.executable, "-m", "graft_hf_cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A saved tiny GRAFT model (NAIP sensor, 1 m training GSD, 32 px input), a tiny SAM and a 40x56 PNG."""
    from PIL import Image

    from graft_hf.tasks.sam import tiny_sam
    from graft_hf.testing import tiny_graft_model

    root = tmp_path_factory.mktemp("cli-pixel")
    tiny_graft_model(seed=0).save_pretrained(root / "model")
    sam = tiny_sam(seed=0, image_size=64)
    sam.model.save_pretrained(root / "sam")
    sam.processor.save_pretrained(root / "sam")
    rgb = np.random.default_rng(0).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "tile.png")
    return {"root": root, "model": root / "model", "sam": root / "sam", "png": root / "tile.png"}


@pytest.fixture(scope="module")
def naip(tmp_path_factory) -> dict[str, object]:
    """A 64x48 crop of a real NAIP GeoTIFF (4 bands, EPSG:26914, 5 m/px) and a 2-band copy of it."""
    import rasterio
    from rasterio.windows import Window

    source = shared_data(*NAIP)
    root = tmp_path_factory.mktemp("naip")
    with rasterio.open(source) as src:
        window = Window(100, 200, 64, 48)
        bands = src.read(window=window)
        profile = {**src.profile, "width": 64, "height": 48, "transform": src.window_transform(window)}
    with rasterio.open(root / "crop.tif", "w", **profile) as dst:
        dst.write(bands)
    with rasterio.open(root / "two_bands.tif", "w", **{**profile, "count": 2}) as dst:
        dst.write(bands[:2])
    return {"tif": root / "crop.tif", "two_bands": root / "two_bands.tif", "profile": profile}


def test_help_lists_commands_without_importing_torch():
    code = (
        "import sys, graft_hf_cli; text = graft_hf_cli.build_parser().format_help(); "
        "assert 'torch' not in sys.modules, 'graft --help imported torch'; print(text)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **OFFLINE})
    assert done.returncode == 0, done.stderr
    for command in ("segment", "detect", "ask"):
        assert command in done.stdout


def test_segment_png_writes_palette_mask_overlay_and_areas(files):
    from PIL import Image

    out = files["root"] / "seg-png"
    done = graft("segment", "--model", files["model"], "--image", files["png"], "--query", "farmland",
                 "--query", "road", "--gsd", "0.5", "-o", out)  # fmt: skip
    assert done.returncode == 0, done.stderr
    mask = Image.open(out / "mask.png")
    assert mask.mode == "P" and mask.size == (56, 40)
    labels = np.asarray(mask)
    assert set(np.unique(labels).tolist()) <= {0, 1}
    assert not (out / "mask.tif").exists()  # a PNG has no georeferencing to carry
    assert Image.open(out / "overlay.png").height == 40
    summary = json.loads((out / "summary.json").read_text())
    assert summary["crs"] is None and summary["gsd_m"] == 0.5 and summary["gsd_source"] == "argument"
    assert [label["name"] for label in summary["labels"]] == ["farmland", "road"]
    assert sum(label["fraction"] for label in summary["labels"]) == pytest.approx(1.0)
    for label in summary["labels"]:
        assert label["pixels"] == int((labels == label["id"]).sum())
        assert label["area_m2"] == pytest.approx(0.25 * label["pixels"])
        assert mask.getpalette()[3 * label["id"] : 3 * label["id"] + 3] == label["color"]


def test_segment_geotiff_with_sam_keeps_crs_and_transform(files, naip):
    import rasterio
    from PIL import Image

    out = files["root"] / "seg-tif"
    done = graft("segment", "--model", files["model"], "--image", naip["tif"], "--query", "farmland",
                 "--query", "water", "--background-threshold", "0.6", "--sam", files["sam"], "-o", out)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "refined" in done.stderr  # the SAM path ran
    with rasterio.open(out / "mask.tif") as mask:
        assert mask.crs == naip["profile"]["crs"] and mask.transform == naip["profile"]["transform"]
        assert (mask.count, mask.width, mask.height, mask.dtypes[0]) == (1, 64, 48, "uint8")
        assert mask.tags(1) == {"label_0": "farmland", "label_1": "water", "label_2": "background"}
        geo_labels = mask.read(1)
    assert np.array_equal(geo_labels, np.asarray(Image.open(out / "mask.png")))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["crs"] == "EPSG:26914" and summary["gsd_m"] == pytest.approx(5.0)
    assert summary["gsd_source"] == "raster" and summary["sam"] == str(files["sam"])
    assert [label["background"] for label in summary["labels"]] == [False, False, True]
    for label in summary["labels"]:
        assert label["area_m2"] == pytest.approx(25.0 * int((geo_labels == label["id"]).sum()))


def test_detect_geotiff_with_sam_writes_geojson_in_lonlat(files, naip):
    import rasterio.warp

    out = files["root"] / "det-tif"
    # cosine >= -1 holds everywhere: exactly one instance covering the image, so the numbers below are exact
    done = graft("detect", "--model", files["model"], "--image", naip["tif"], "--query", "solar farm",
                 "--threshold", "-1", "--sam", files["sam"], "-o", out)  # fmt: skip
    assert done.returncode == 0, done.stderr
    collection = json.loads((out / "detections.geojson").read_text())
    summary = json.loads((out / "detections.json").read_text())
    assert collection["type"] == "FeatureCollection"
    assert len(collection["features"]) == len(summary["instances"]) == 1
    feature, instance = collection["features"][0], summary["instances"][0]
    for key in ("label", "score", "area_m2", "num_pixels"):
        assert feature["properties"][key] == instance[key]
    assert instance["label"] == "solar farm" and summary["sam"] == str(files["sam"])
    assert instance["area_m2"] == pytest.approx(25.0 * instance["num_pixels"])
    ring = np.array(feature["geometry"]["coordinates"][0])
    assert ring.shape == (5, 2) and np.array_equal(ring[0], ring[-1])
    left, bottom, right, top = rasterio.transform.array_bounds(48, 64, naip["profile"]["transform"])
    west, south, east, north = rasterio.warp.transform_bounds("EPSG:26914", "EPSG:4326", left, bottom, right, top)
    x0, y0, x1, y1 = instance["box"]
    assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 48
    assert west - 1e-6 <= ring[:, 0].min() and ring[:, 0].max() <= east + 1e-6
    assert south - 1e-6 <= ring[:, 1].min() and ring[:, 1].max() <= north + 1e-6
    assert (out / "overlay.png").stat().st_size > 0


def test_detect_png_writes_pixel_json_only(files):
    out = files["root"] / "det-png"
    done = graft("detect", "--model", files["model"], "--image", files["png"], "--query", "road", "--threshold",
                 "-1", "-o", out)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not (out / "detections.geojson").exists()
    summary = json.loads((out / "detections.json").read_text())
    assert summary["crs"] is None and summary["gsd_source"] == "model" and summary["gsd_m"] == 1.0
    assert summary["queries"] == [{"query": "road", "count": 1, "total_area_m2": 40.0 * 56.0}]
    assert summary["instances"][0]["box"] == [0, 0, 56, 40]
    assert (out / "overlay.png").exists()


def test_ask_prints_answer_and_program(files, naip):
    done = graft("ask", "--model", files["model"], "--image", naip["tif"], "Is there a river in the image?")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] in ("answer: yes", "answer: no") and lines[1] == 'program: exists("river")'


def test_ask_json_counts_with_evidence(files):
    evidence = files["root"] / "evidence.png"
    done = graft("ask", "--model", files["model"], "--image", files["png"], "--threshold", "-1", "--json",
                 "--evidence", evidence, "How many roads are there?")  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["answerable"] and answer["value"] == 1 and answer["answer"] == "1"
    assert answer["program"] == 'count("road")' and answer["detections"] == {
        "road": {"count": 1, "total_area_m2": 40.0 * 56.0}
    }
    assert evidence.exists()


def test_ask_refuses_unanswerable_question_with_exit_2(files):
    done = graft("ask", "--model", files["model"], "--image", files["png"], "Why is the sky blue?")
    assert done.returncode == 2
    assert done.stdout.startswith("cannot answer") and "supported questions" in done.stdout
    assert "Traceback" not in done.stderr and "answer: " not in done.stdout


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
