"""Every limit of the demo (`DemoLimits` and its checks), mostly met through the backend as a user meets it:
queries, k, uploads (hostile ones too: many bands, pixel types, sizes declared in a small file), region maps.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.demo_data import with_limits
from tests.helpers.hostile import huge_tiff, many_bands_tiff, measure

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
        ("forest", float("nan"), "whole number"),
        ("forest", float("inf"), "whole number"),
        ("forest", float("-inf"), "whole number"),
        ("forest", True, "whole number"),
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


def test_hostile_rasters_are_refused_from_their_header(backend, tmp_path):
    import rasterio

    roomy = with_limits(backend, max_upload_bytes=20_971_520, max_pixels=4_194_304, max_map_pixels=16_777_216)
    bands = many_bands_tiff(tmp_path)
    with pytest.raises(DemoInputError, match="the image has 300 bands; the limit is max_bands=16"):
        roomy.segment(str(bands), "water, road", background=True)
    with pytest.raises(DemoInputError, match="max_bands=16"):
        roomy.region_map(str(bands), "farmland", "native")
    # Past the demo's band limit, the image processor refuses the band count before reading a pixel.
    with pytest.raises(DemoInputError, match="expected 4 bands .* got 300"):
        with_limits(roomy, max_bands=1000).segment(str(bands), "water, road", background=True)
    with pytest.raises(DemoInputError, match="is 100000 x 100000 = 10,000,000,000 pixels; the limit is max_pixels"):
        roomy.segment(str(huge_tiff(tmp_path)), "water, road", background=True)
    complex_tif = tmp_path / "complex.tif"
    with rasterio.open(complex_tif, "w", driver="GTiff", width=8, height=8, count=3, dtype="complex64") as dst:
        dst.write(np.ones((3, 8, 8), dtype=np.complex64))
    with pytest.raises(DemoInputError, match="the raster holds complex64 pixels; upload one of uint8, uint16"):
        roomy.segment(str(complex_tif), "water, road", background=True)


def test_a_300_band_upload_costs_little(tiny_model_dir, gallery_dir, tmp_path):
    """The reported case: a 300-band GeoTIFF within the default limits took 3.6 GB and 11.5 s before rejection."""
    bands = many_bands_tiff(tmp_path)
    setup = (
        "import rasterio, PIL.Image\n"
        "from graft_hf.demo import DemoBackend, DemoLimits\n"
        f"backend = DemoBackend.from_paths({str(tiny_model_dir)!r}, {str(gallery_dir)!r}, DemoLimits(),"
        f" workdir={str(tmp_path / 'work')!r})\n"
        "lenient = DemoBackend.from_paths("
        f"{str(tiny_model_dir)!r}, {str(gallery_dir)!r}, DemoLimits(max_bands=1000), workdir={str(tmp_path / 'w2')!r})"
    )
    for name, message in [("backend", "max_bands=16"), ("lenient", "expected 4 bands")]:
        result = measure(setup, f"{name}.segment({str(bands)!r}, 'water, road')")
        assert result["outcome"].startswith("DemoInputError") and message in result["outcome"], result
        assert result["growth_mb"] < 300 and result["seconds"] < 1.0, result
