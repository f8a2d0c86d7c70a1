"""`graft detect` as a user runs it (a subprocess): GeoJSON in lon/lat for a GeoTIFF with SAM, pixel JSON for a PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.cli import graft


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
