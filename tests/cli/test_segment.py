"""`graft segment` as a user runs it (a subprocess): mask, overlay and areas on a PNG; a GeoTIFF with SAM keeps its
georeferencing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.cli import graft


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
