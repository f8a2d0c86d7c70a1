"""GraftImageProcessor on real NAIP and Sentinel-2 data against the documented pipeline written out; layouts,
nodata and bad inputs; hostile files refused from their header (bounded memory and time, measured in a subprocess).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from PIL import Image
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from graft_hf import GraftImageProcessor
from tests.helpers.data import s2_stack, shared_data
from tests.helpers.hostile import huge_tiff, many_bands_tiff, measure, png_bomb


def _reference(rgb_unit: np.ndarray, size: int = 224) -> torch.Tensor:
    """The documented pipeline written out: resize (antialiased bicubic, clamped) then CLIP normalisation."""
    x = torch.from_numpy(rgb_unit.astype(np.float32))[None]
    x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True).clamp(0, 1)[0]
    mean = torch.tensor(OPENAI_CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD).view(3, 1, 1)
    return (x - mean) / std


def test_naip_geotiff_path_matches_reference():
    path = shared_data("naip-nd", "m_4709963_se_14_1_20200831.tif")
    out = GraftImageProcessor(sensor="naip")(str(path))["pixel_values"]
    assert out.shape == (1, 3, 224, 224) and out.dtype == torch.float32
    with rasterio.open(path) as src:
        raw = src.read()  # (4, H, W) RGBN uint8
    torch.testing.assert_close(out[0], _reference(raw[:3] / 255.0))


def test_naip_rgbn_rgb_and_layouts_agree():
    path = shared_data("naip-nd", "m_4709963_se_14_1_20140720.tif")
    with rasterio.open(path) as src:
        raw = src.read(window=((100, 400), (200, 500)))  # (4, 300, 300)
    processor = GraftImageProcessor(sensor="naip")
    chw = processor(raw)["pixel_values"]
    hwc = processor(np.moveaxis(raw, 0, -1))["pixel_values"]
    rgb = processor(np.moveaxis(raw[:3], 0, -1))["pixel_values"]
    pil = processor(Image.fromarray(np.moveaxis(raw[:3], 0, -1)))["pixel_values"]
    tensor = processor(torch.from_numpy(raw))["pixel_values"]
    for other in (hwc, rgb, pil, tensor):
        torch.testing.assert_close(chw, other, rtol=0, atol=0)
    batch = processor(np.stack([raw, raw[:, ::-1].copy()]))["pixel_values"]
    assert batch.shape == (2, 3, 224, 224)
    torch.testing.assert_close(batch[0], chw[0])


def test_sentinel2_band_stack_selects_b4_b3_b2_and_scales():
    stack = s2_stack()
    processor = GraftImageProcessor(sensor="sentinel2")
    full = processor(stack)["pixel_values"]
    rgb_only = processor(stack[[3, 2, 1]])["pixel_values"]
    torch.testing.assert_close(full, rgb_only, rtol=0, atol=0)
    expected = np.clip(stack[[3, 2, 1]].astype(np.float32) / 3000.0, 0, 1)
    torch.testing.assert_close(full[0], _reference(expected))
    # A real image is not degenerate after scaling: values spread over the normalised range.
    assert full.std() > 0.1


def test_sentinel2_offset_for_new_processing_baseline():
    stack = s2_stack()
    plain = GraftImageProcessor(sensor="sentinel2", do_resize=False, do_normalize=False)(stack)["pixel_values"]
    shifted = GraftImageProcessor(sensor="sentinel2", value_offset=1000, do_resize=False, do_normalize=False)(
        stack + 1000
    )["pixel_values"]
    torch.testing.assert_close(plain, shifted)


def test_float_inputs_in_unit_range_are_taken_as_scaled():
    rng = np.random.default_rng(0)
    unit = rng.random((3, 50, 50), dtype=np.float32)
    processor = GraftImageProcessor(sensor="rgb")
    torch.testing.assert_close(processor(unit)["pixel_values"][0], _reference(unit))
    bf16 = processor(torch.from_numpy(unit).to(torch.bfloat16))["pixel_values"]
    assert bf16.dtype == torch.float32 and bf16.shape == (1, 3, 224, 224)


def test_partial_nodata_is_zeroed():
    stack = s2_stack()
    stack[:, :10, :] = 0
    out = GraftImageProcessor(sensor="sentinel2", do_resize=False, do_normalize=False)(stack)["pixel_values"]
    assert torch.all(out[0, :, :10] == 0) and out[0, :, 10:].max() > 0


@pytest.mark.parametrize(
    ("make_input", "error", "match"),
    [
        (lambda: np.zeros((5, 20, 20), dtype=np.uint8), ValueError, "expected 4 bands"),
        (lambda: np.zeros((0, 20, 3), dtype=np.uint8), ValueError, "empty image"),
        (lambda: np.full((3, 20, 20), np.nan, dtype=np.float32), ValueError, "entirely nodata/NaN"),
        (lambda: np.ones((3, 20, 20), dtype=bool), TypeError, "unsupported dtype bool"),
        (lambda: np.ones((3, 20, 20), dtype=np.complex64), TypeError, "unsupported dtype complex64"),
        (lambda: np.ones((2, 3, 4, 5, 6), dtype=np.uint8), ValueError, "must have 2"),
        (lambda: {"not": "an image"}, TypeError, "unsupported image type dict"),
        (lambda: [], ValueError, "empty batch"),
    ],
)
def test_bad_inputs_raise_clear_errors(make_input, error, match):
    with pytest.raises(error, match=match):
        GraftImageProcessor(sensor="naip")(make_input())


def test_all_nodata_sentinel2_raises():
    with pytest.raises(ValueError, match="entirely nodata"):
        GraftImageProcessor(sensor="sentinel2")(np.zeros((12, 30, 30), dtype=np.uint16))


def test_missing_and_corrupt_files(tmp_path):
    processor = GraftImageProcessor(sensor="naip")
    with pytest.raises(FileNotFoundError, match="not found"):
        processor(str(tmp_path / "nope.tif"))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(ValueError, match="cannot decode"):
        processor(str(corrupt))


def test_unknown_sensor_needs_metadata():
    with pytest.raises(ValueError, match="has no preset"):
        GraftImageProcessor(sensor="worldview3")
    custom = GraftImageProcessor(
        sensor="worldview3", band_names=["c", "b", "g", "y", "r"], rgb_bands=[4, 2, 1], value_scale=2047
    )
    assert custom(np.full((5, 8, 8), 100, dtype=np.uint16))["pixel_values"].shape == (1, 3, 224, 224)


# ------------------------------------------------------------------------------- hostile files: the header decides
# rasterio and Pillow are imported by the processor's first read: imported here so that only the read is measured.
_PROCESSOR = (
    "import rasterio, PIL.Image\n"
    "from graft_hf.modeling import GraftImageProcessor\n"
    "processor = GraftImageProcessor(sensor='naip')"
)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (many_bands_tiff, r"bands300.tif: expected 4 bands \(red, green, blue, nir\) or 3 RGB bands .* got 300"),
        (huge_tiff, r"huge.tif is 100000 x 100000 = 10,000,000,000 pixels, over .* max_image_pixels=16,777,216.*"
                    r"`graft map`"),
        (lambda folder: png_bomb(folder / "bomb.png"), r"cannot decode image file .*bomb.png"),
    ],
    ids=["300-bands", "100000x100000", "png-bomb"],
)  # fmt: skip
def test_hostile_files_are_refused_within_bounded_memory_and_time(tmp_path, make, message):
    path = make(tmp_path)
    assert path.stat().st_size < 500_000  # a small file declaring gigabytes
    result = measure(_PROCESSOR, f"processor({str(path)!r})")
    assert result["outcome"].startswith("ValueError: ") and re.search(message, result["outcome"])
    assert result["growth_mb"] < 300, result
    assert result["seconds"] < 1.0, result


def test_only_the_sensors_rgb_bands_are_read(tmp_path, monkeypatch):
    from rasterio.io import DatasetReader

    path = shared_data("naip-nd", "m_4709963_se_14_1_20200831.tif")
    stack = tmp_path / "s2.tif"
    data = s2_stack()
    with rasterio.open(stack, "w", driver="GTiff", width=120, height=120, count=12, dtype="uint16") as dst:
        dst.write(data)
    reads = []
    original = DatasetReader.read

    def spy(self, indexes=None, *args, **kwargs):
        reads.append(indexes)
        return original(self, indexes, *args, **kwargs)

    monkeypatch.setattr(DatasetReader, "read", spy)
    GraftImageProcessor(sensor="naip")(str(path))
    assert reads == [[1, 2, 3]]  # never the near-infrared band
    reads.clear()
    out = GraftImageProcessor(sensor="sentinel2", do_resize=False, do_normalize=False)(str(stack))["pixel_values"]
    assert reads == [[4, 3, 2]]  # B04, B03, B02 of the 12 L2A bands
    expected = np.clip(data[[3, 2, 1]].astype(np.float32) / 3000.0, 0, 1)
    torch.testing.assert_close(out[0], torch.from_numpy(expected))


def test_the_pixel_limit_is_a_setting_and_unsupported_pixel_types_are_refused_first(tmp_path):
    path = shared_data("naip-nd", "m_4709963_se_14_1_20200831.tif")
    with rasterio.open(path) as src:
        pixels = src.width * src.height
    with pytest.raises(ValueError, match=f"over the image processor's limit max_image_pixels={pixels - 1:,}"):
        GraftImageProcessor(sensor="naip", max_image_pixels=pixels - 1)(str(path))
    assert GraftImageProcessor(sensor="naip", max_image_pixels=None)(str(path))["pixel_values"].shape[0] == 1
    complex_tif = tmp_path / "complex.tif"
    with rasterio.open(complex_tif, "w", driver="GTiff", width=8, height=8, count=3, dtype="complex64") as dst:
        dst.write(np.ones((3, 8, 8), dtype=np.complex64))
    with pytest.raises(ValueError, match=r"complex.tif holds complex64 pixels"):
        GraftImageProcessor(sensor="naip")(str(complex_tif))
    big_png = tmp_path / "big.png"
    Image.new("L", (300, 200)).save(big_png)
    with pytest.raises(ValueError, match="big.png is 300 x 200 = 60,000 pixels"):
        GraftImageProcessor(sensor="rgb", max_image_pixels=50_000)(str(big_png))
    saved = GraftImageProcessor(sensor="naip", max_image_pixels=1234)
    saved.save_pretrained(tmp_path / "processor")
    assert GraftImageProcessor.from_pretrained(tmp_path / "processor").max_image_pixels == 1234
