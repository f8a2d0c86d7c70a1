"""GraftProcessor: text and a real Sentinel-2 stack together, round trip through AutoProcessor."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoProcessor

import graft_hf
from graft_hf import GraftConfig, GraftProcessor
from tests.helpers.data import s2_stack


def test_processor_round_trip_through_auto_processor(tmp_path):
    config = GraftConfig(sensor="sentinel2", vision_config={"image_size": 64, "patch_size": 16})
    processor = graft_hf.build_processor(config)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, GraftProcessor)
    assert loaded.image_processor.sensor == "sentinel2" and loaded.image_processor.size == 64
    stack = s2_stack()
    a = processor(text=["farmland", "a lake"], images=stack)
    b = loaded(text=["farmland", "a lake"], images=stack)
    assert a["pixel_values"].shape == (1, 3, 64, 64) and a["input_ids"].shape == (2, 77)
    for key in ("pixel_values", "input_ids", "attention_mask"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    with pytest.raises(ValueError, match="pass text, images or both"):
        loaded()
