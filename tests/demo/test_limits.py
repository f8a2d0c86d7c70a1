"""Every limit of the demo (`DemoLimits` and its checks), mostly met through the backend as a user meets it:
queries, k, uploads, region maps.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.demo_data import with_limits

pytest.importorskip("gradio")

from graft_hf.demo import DemoInputError, DemoLimits  # noqa: E402


@pytest.mark.parametrize(
    ("query", "k", "message"),
    [
        ("", 3, "type a query first"),
        ("x" * 61, 3, "max_query_chars=60"),
        ("forest", 13, "k_max=12"),
        ("forest", 0, "k_min=1"),
        ("forest", 2.5, "whole number"),
        ("forest", None, "whole number"),
    ],
)
def test_retrieval_limits_name_the_limit(backend, query, k, message):
    with pytest.raises(DemoInputError, match=message):
        backend.retrieve(query, k)


def test_k_is_capped_by_a_small_gallery(backend, tmp_path):
    from graft_hf.demo.limits import check_k

    with pytest.raises(DemoInputError, match="the gallery size=5"):
        check_k(6, DemoLimits(k_max=24), gallery_size=5)


@pytest.mark.parametrize(
    ("queries", "message"),
    [
        ("", "type a query first"),
        (" , ,", "type a query first"),
        ("a, b, c, d, e", "max_queries=4"),
        ("water, " + "y" * 61, "max_query_chars=60"),
        ("water, water", "repeat"),
        ("background, road", "name of the background label"),
    ],
)
def test_segmentation_query_limits(backend, eurosat_png, queries, message):
    with pytest.raises(DemoInputError, match=message):
        backend.segment(str(eurosat_png), queries, background=True)


def test_one_query_needs_the_background_label(backend, eurosat_png):
    with pytest.raises(DemoInputError, match="background label"):
        backend.segment(str(eurosat_png), "water", background=False)
    assert len(backend.segment(str(eurosat_png), "water", background=True).overlays) == 2


def test_upload_limits_and_corrupt_files(backend, tmp_path, eurosat_png, naip_crop):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > backend.limits.max_upload_bytes
    cases = {
        None: "upload a file first",
        str(tmp_path / "gone.png"): "missing on the server",
        str(big): "max_upload_bytes=200000",
    }
    wide = tmp_path / "wide.png"
    Image.new("RGB", (200, 100), "green").save(wide)  # 20,000 px > max_pixels=16,384, small file
    cases[str(wide)] = "max_pixels=16,384"
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    cases[str(corrupt)] = "cannot decode 'corrupt.png'"
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(eurosat_png.read_bytes()[:200])
    cases[str(truncated)] = "cannot decode 'truncated.png'"
    bad_tif = tmp_path / "bad.tif"
    bad_tif.write_bytes(b"II*\x00" + b"\x00" * 64)
    cases[str(bad_tif)] = "cannot read 'bad.tif' as a GeoTIFF"
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cases[str(text)] = "unsupported file type '.txt'"
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cases[str(empty)] = "is empty"
    for upload, message in cases.items():
        with pytest.raises(DemoInputError, match=message):
            backend.segment(upload, "water, road", background=True)


def test_a_band_count_the_sensor_cannot_use_is_an_input_error(backend, tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "two_bands.tif"
    profile = {"driver": "GTiff", "width": 40, "height": 40, "count": 2, "dtype": "uint8", "crs": "EPSG:26914",
               "transform": from_origin(485900, 5209245, 5, 5)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((2, 40, 40), 90, dtype=np.uint8))
    with pytest.raises(DemoInputError, match="expected 4 bands"):
        backend.segment(str(path), "water, road", background=True)
    with pytest.raises(DemoInputError, match="expects 4"):
        backend.region_map(str(path), "farmland", "native")


def test_region_map_limits(backend, tmp_path, eurosat_png, naip_crop):
    import rasterio

    with pytest.raises(DemoInputError, match="needs a georeferenced GeoTIFF"):
        backend.region_map(str(eurosat_png), "farmland", "native")
    plain = tmp_path / "no_crs.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=32, height=32, count=4, dtype="uint8") as dst:
        dst.write(np.full((4, 32, 32), 100, dtype=np.uint8))
    with pytest.raises(DemoInputError, match="no coordinate reference system"):
        backend.region_map(str(plain), "farmland", "native")
    with pytest.raises(DemoInputError, match="max_query_chars=60"):
        backend.region_map(str(naip_crop), "z" * 70, "native")
    with pytest.raises(DemoInputError, match="'model' or 'native'"):
        backend.region_map(str(naip_crop), "farmland", "10")
    with pytest.raises(DemoInputError, match="max_map_windows=4"):
        with_limits(backend, max_map_windows=4).region_map(str(naip_crop), "farmland", "native")
    with pytest.raises(DemoInputError, match="max_map_pixels=9,000"):
        with_limits(backend, max_map_pixels=9000).region_map(str(naip_crop), "farmland", "native")


def test_limits_validate_themselves():
    with pytest.raises(ValueError, match="max_pixels must be positive"):
        DemoLimits(max_pixels=0)
    with pytest.raises(ValueError, match="k_min <= k_default <= k_max"):
        DemoLimits(k_default=30, k_max=24)
