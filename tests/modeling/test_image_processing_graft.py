"""GraftImageProcessor / GraftProcessor / tokenizer on real NAIP and Sentinel-2 data, layouts and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoProcessor
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

import graft_hf
from graft_hf import GraftConfig, GraftImageProcessor, GraftProcessor
from tests.helpers.data import shared_data

S2_L2A_ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
S2_PATCH = "S2A_MSIL2A_20170613T101031_87_48"


def _reference(rgb_unit: np.ndarray, size: int = 224) -> torch.Tensor:
    """The documented pipeline written out: resize (antialiased bicubic, clamped) then CLIP normalisation."""
    x = torch.from_numpy(rgb_unit.astype(np.float32))[None]
    x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True).clamp(0, 1)[0]
    mean = torch.tensor(OPENAI_CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD).view(3, 1, 1)
    return (x - mean) / std


def _s2_stack() -> np.ndarray:
    """The 12 L2A bands of a real BigEarthNet patch on the 10 m grid (20/60 m bands repeated)."""
    folder = shared_data("bigearthnet-s2-examples", S2_PATCH)
    bands = []
    for name in S2_L2A_ORDER:
        with rasterio.open(folder / f"{S2_PATCH}_{name}.tif") as src:
            band = src.read(1)
        bands.append(np.kron(band, np.ones((120 // band.shape[0],) * 2, dtype=band.dtype)))
    return np.stack(bands)  # (12, 120, 120) uint16


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
    stack = _s2_stack()
    processor = GraftImageProcessor(sensor="sentinel2")
    full = processor(stack)["pixel_values"]
    rgb_only = processor(stack[[3, 2, 1]])["pixel_values"]
    torch.testing.assert_close(full, rgb_only, rtol=0, atol=0)
    expected = np.clip(stack[[3, 2, 1]].astype(np.float32) / 3000.0, 0, 1)
    torch.testing.assert_close(full[0], _reference(expected))
    # A real image is not degenerate after scaling: values spread over the normalised range.
    assert full.std() > 0.1


def test_sentinel2_offset_for_new_processing_baseline():
    stack = _s2_stack()
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
    stack = _s2_stack()
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


def test_config_validation_errors():
    with pytest.raises(ValueError, match="rgb_bands"):
        GraftConfig(rgb_bands=[0, 1])
    with pytest.raises(ValueError, match="index outside"):
        GraftConfig(rgb_bands=[0, 1, 7])
    with pytest.raises(ValueError, match="multiple of patch_size"):
        GraftConfig(vision_config={"image_size": 100, "patch_size": 16})
    with pytest.raises(ValueError, match="has no preset"):
        GraftConfig(sensor="spot6")
    with pytest.raises(ValueError, match="gsd"):
        GraftConfig(gsd=-1.0)
    with pytest.raises(TypeError, match="vision_config"):
        GraftConfig(vision_config=42)


def test_config_round_trip_and_presets(tmp_path):
    config = GraftConfig.vit_b32(sensor="sentinel2")
    assert config.vision_config.patch_size == 32 and config.patch_grid == (7, 7)
    assert config.band_names[config.rgb_bands[0]] == "B04" and config.gsd == 10.0
    config.save_pretrained(tmp_path)
    loaded = GraftConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    default = GraftConfig()
    assert (default.vision_config.patch_size, default.vision_config.hidden_size, default.projection_dim) == (
        16,
        768,
        512,
    )
    assert default.text_config.hidden_size == 512 and default.sensor == "naip"


def test_tokenizer_ids_equal_open_clip(clip_tokenizer):
    open_clip = pytest.importorskip("open_clip")
    reference = open_clip.get_tokenizer("ViT-B-16")
    texts = ["a satellite image of farmland.", "A Solar Farm!!  near   roads", "123 lakes, 4 rivers", ""]
    ours = clip_tokenizer(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    theirs = reference(texts)
    for mine, ref in zip(ours["input_ids"], theirs):
        length = int((ref != 0).sum())  # open_clip pads with 0, transformers with <|endoftext|>
        assert mine[:length].tolist() == ref[:length].tolist()
        assert int(ours["attention_mask"][0].sum()) > 0


def test_processor_round_trip_through_auto_processor(tmp_path):
    config = GraftConfig(sensor="sentinel2", vision_config={"image_size": 64, "patch_size": 16})
    processor = graft_hf.build_processor(config)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, GraftProcessor)
    assert loaded.image_processor.sensor == "sentinel2" and loaded.image_processor.size == 64
    stack = _s2_stack()
    a = processor(text=["farmland", "a lake"], images=stack)
    b = loaded(text=["farmland", "a lake"], images=stack)
    assert a["pixel_values"].shape == (1, 3, 64, 64) and a["input_ids"].shape == (2, 77)
    for key in ("pixel_values", "input_ids", "attention_mask"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    with pytest.raises(ValueError, match="pass text, images or both"):
        loaded()
