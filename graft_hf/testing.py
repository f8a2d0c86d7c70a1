"""Tiny random GRAFT and CLIP models for tests and examples (the way transformers tests its models).

No pretrained weights can be downloaded in offline environments; these build the same code paths as a real
ViT-B/16 checkpoint at a size that runs in milliseconds on a CPU.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import CLIPConfig, CLIPModel, CLIPSegConfig, CLIPSegForImageSegmentation

from graft_hf.modeling import GraftConfig, GraftModel

TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
    "projection_dim": 16,
}
TINY_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 49408,
    "max_position_embeddings": 77,
    "projection_dim": 16,
}


def tiny_graft_config(
    image_size: int = 32, patch_size: int = 8, projection_dim: int = 16, **kwargs: Any
) -> GraftConfig:
    """A tiny `GraftConfig` (2 layers, width 32) with the real CLIP vocabulary size."""
    vision = {**TINY_VISION, "image_size": image_size, "patch_size": patch_size, "projection_dim": projection_dim}
    text = {**TINY_TEXT, "projection_dim": projection_dim}
    return GraftConfig(vision_config=vision, text_config=text, projection_dim=projection_dim, **kwargs)


def tiny_graft_model(seed: int = 0, **config_kwargs: Any) -> GraftModel:
    """A tiny random `GraftModel` in eval mode, deterministic for `seed`."""
    torch.manual_seed(seed)
    return GraftModel(tiny_graft_config(**config_kwargs)).eval()


def tiny_clip_model(seed: int = 0, image_size: int = 32, patch_size: int = 8, projection_dim: int = 16) -> CLIPModel:
    """A tiny random transformers `CLIPModel` with the same shapes as `tiny_graft_config`."""
    torch.manual_seed(seed)
    config = CLIPConfig(
        vision_config={
            **TINY_VISION,
            "image_size": image_size,
            "patch_size": patch_size,
            "projection_dim": projection_dim,
        },
        text_config={**TINY_TEXT, "projection_dim": projection_dim},
        projection_dim=projection_dim,
    )
    return CLIPModel(config).eval()


def tiny_clipseg_model(seed: int = 0, image_size: int = 64, projection_dim: int = 16) -> CLIPSegForImageSegmentation:
    """A tiny random transformers `CLIPSegForImageSegmentation` (2 CLIP layers, both feeding the decoder)."""
    torch.manual_seed(seed)
    config = CLIPSegConfig(
        text_config={**TINY_TEXT, "projection_dim": projection_dim},
        vision_config={**TINY_VISION, "image_size": image_size, "projection_dim": projection_dim},
        projection_dim=projection_dim,
        extract_layers=[0, 1],
        reduce_dim=16,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )
    return CLIPSegForImageSegmentation(config).eval()


__all__ = [
    "TINY_TEXT",
    "TINY_VISION",
    "tiny_clip_model",
    "tiny_clipseg_model",
    "tiny_graft_config",
    "tiny_graft_model",
]
