"""The bundled CLIP tokenizer gives open_clip's token ids."""

from __future__ import annotations

import pytest


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
