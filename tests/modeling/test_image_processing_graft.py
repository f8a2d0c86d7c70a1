"""GraftImageProcessor on real NAIP and Sentinel-2 data against the documented pipeline written out; layouts,
nodata and bad inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from PIL import Image
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from graft_hf import GraftImageProcessor
from tests.helpers.data import s2_stack, shared_data


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
