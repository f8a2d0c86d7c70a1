"""Model FLOPs per sample (the issue's ViT-B/16 figure) and the peak FLOP/s lookup behind the logged MFU."""

from __future__ import annotations

import pytest
import torch

from graft_hf.modeling import GraftConfig, GraftModel
from graft_hf.testing import tiny_graft_config
from graft_hf.training.throughput import peak_bf16_flops, training_flops_per_sample, vit_forward_flops


def test_vit_b16_costs_about_105_gflop_per_training_sample() -> None:
    config = GraftConfig()
    assert (config.vision_config.patch_size, config.vision_config.image_size) == (16, 224)
    forward = vit_forward_flops(config.vision_config, config.projection_dim)
    assert 3 * forward / 1e9 == pytest.approx(105, rel=0.03)
    b32 = GraftConfig(vision_config={"patch_size": 32})
    assert vit_forward_flops(b32.vision_config, 512) < forward / 4 + 1e9  # about 4x fewer tokens


def test_training_flops_counts_by_hand_for_a_tiny_student() -> None:
    model = GraftModel(tiny_graft_config(image_size=32, patch_size=8))
    width, mlp, layers, tokens = 32, 37, 2, 17  # (32 / 8)^2 patches + the class token
    by_hand = (
        2 * layers * (4 * width * width + 2 * width * mlp) * tokens
        + 4 * layers * tokens**2 * width
        + 2 * 16 * 3 * 8 * 8 * width
        + 2 * width * 16 * tokens
    )
    assert training_flops_per_sample(model) == 3 * by_hand


def test_peak_flops_only_where_known() -> None:
    assert peak_bf16_flops(torch.device("cpu")) is None
    assert peak_bf16_flops(torch.device("cpu"), override_tflops=790.0) == 790e12
