"""A tiny random CLIP saved as a teacher directory (model, 32 px image processor, the real CLIP tokenizer)."""

from __future__ import annotations

from pathlib import Path


def save_tiny_clip(path: Path, seed: int = 0) -> Path:
    """Save ``graft_hf.testing.tiny_clip_model`` with what ``load_teacher`` needs; returns ``path``."""
    from transformers import CLIPImageProcessor

    from graft_hf.testing import tiny_clip_model
    from graft_hf.tokenizer import load_clip_tokenizer

    tiny_clip_model(seed=seed).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    load_clip_tokenizer().save_pretrained(path)
    return path
