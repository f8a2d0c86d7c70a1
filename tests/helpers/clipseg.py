"""A tiny random CLIPSeg checkpoint on disk, laid out like CIDAS/clipseg-rd64-refined (weights, config, processor)."""

from __future__ import annotations

from pathlib import Path

#: CLIP's normalisation, which CLIPSeg's ViTImageProcessor uses.
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def save_tiny_clipseg(folder: Path, size: int = 64, seed: int = 0) -> Path:
    """Write a tiny random `CLIPSegForImageSegmentation` and its `CLIPSegProcessor` (input `size` px) to `folder`."""
    from transformers import CLIPSegProcessor, ViTImageProcessor

    from graft_hf.testing import tiny_clipseg_model
    from graft_hf.tokenizer import load_clip_tokenizer

    image_processor = ViTImageProcessor(size={"height": size, "width": size}, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    tiny_clipseg_model(seed=seed, image_size=size).save_pretrained(folder)
    CLIPSegProcessor(image_processor=image_processor, tokenizer=load_clip_tokenizer()).save_pretrained(folder)
    return folder
