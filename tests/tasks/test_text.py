"""Tests of graft_hf.tasks.text.encode_queries with a tiny GraftModel and the real CLIP tokenizer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from graft_hf.tasks.text import encode_queries, make_text_encoder


def test_encode_queries_plain_matches_text_features(tiny_model, clip_tokenizer):
    queries = ["road", "a building", "water"]
    out = encode_queries(tiny_model, clip_tokenizer, queries)
    assert out.shape == (3, tiny_model.config.projection_dim)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)
    for i, q in enumerate(queries):  # one at a time: padding in a batch must not change the embedding
        tokens = clip_tokenizer([q], return_tensors="pt")
        with torch.no_grad():
            ref = F.normalize(tiny_model.get_text_features(tokens["input_ids"], tokens["attention_mask"]), dim=-1)
        assert torch.allclose(out[i], ref[0], atol=1e-5)


def test_encode_queries_template_ensemble_is_mean_of_normalised_prompts(tiny_model, clip_tokenizer):
    templates = ["a satellite photo of {}.", "an aerial view of {}."]
    out = encode_queries(tiny_model, clip_tokenizer, ["road", "forest"], templates=templates, batch_size=3)
    encode = make_text_encoder(tiny_model, clip_tokenizer)
    for i, q in enumerate(["road", "forest"]):
        prompts = [t.format(q) for t in templates]
        ref = F.normalize(F.normalize(encode(prompts), dim=-1).mean(0), dim=-1)
        assert torch.allclose(out[i], ref, atol=1e-5)
    named = encode_queries(tiny_model, clip_tokenizer, ["road"], templates="simple")
    assert named.shape == (1, tiny_model.config.projection_dim)


@pytest.mark.parametrize("queries", [[], [""], ["road", "  "]])
def test_encode_queries_rejects_empty(tiny_model, clip_tokenizer, queries):
    with pytest.raises(ValueError, match="query"):
        encode_queries(tiny_model, clip_tokenizer, queries)
