"""A tiny random CLIP saved as a teacher directory (model, image processor at its size, the real CLIP tokenizer)."""

from __future__ import annotations

from pathlib import Path


def save_tiny_clip(path: Path, seed: int = 0, image_size: int = 32, patch_size: int = 8) -> Path:
    """Save ``graft_hf.testing.tiny_clip_model`` with what ``load_teacher`` needs; returns ``path``.

    ``image_size``/``patch_size`` are the vision tower's (a 224 px teacher is what a training preset's student is
    built from); the image processor resizes and crops to ``image_size``.
    """
    from transformers import CLIPImageProcessor

    from graft_hf.testing import tiny_clip_model
    from graft_hf.tokenizer import load_clip_tokenizer

    tiny_clip_model(seed=seed, image_size=image_size, patch_size=patch_size).save_pretrained(path)
    size = {"height": image_size, "width": image_size}
    CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size=size).save_pretrained(path)
    load_clip_tokenizer().save_pretrained(path)
    return path
