"""GraftModel.encode_text_queries / zero_shot_classify against the slow obvious computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from graft_hf import build_processor
from graft_hf.testing import tiny_graft_model

TEMPLATES = ["a satellite photo of {}.", "an aerial view of {}."]
CLASSES = ["forest", "river", "industrial buildings"]


@pytest.fixture(scope="module")
def model_and_processor():
    model = tiny_graft_model(seed=3)
    return model, build_processor(model.config)


def _images(n: int = 4) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)) for _ in range(n)]


def test_encode_text_queries_matches_per_prompt_average(model_and_processor):
    model, processor = model_and_processor
    embeds = model.encode_text_queries(CLASSES, processor, TEMPLATES, batch_size=3)
    assert embeds.shape == (3, model.config.projection_dim)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(3))
    for c, name in enumerate(CLASSES):
        rows = []
        for t in TEMPLATES:
            tokens = processor(text=[t.format(name)], return_tensors="pt")
            f = model.get_text_features(tokens["input_ids"], tokens["attention_mask"]).double()
            rows.append(f / f.norm())
        mean = torch.stack(rows).mean(0)[0]
        torch.testing.assert_close(embeds[c].double(), mean / mean.norm(), atol=1e-5, rtol=1e-5)


def test_encode_text_queries_without_templates_and_errors(model_and_processor):
    model, processor = model_and_processor
    plain = model.encode_text_queries("a solar farm", processor.tokenizer)
    same = model.encode_text_queries(["a solar farm"], processor, ["{}"])
    torch.testing.assert_close(plain, same)
    with pytest.raises(ValueError, match="placeholder"):
        model.encode_text_queries(["x"], processor, ["no placeholder"])
    with pytest.raises(ValueError, match="at least one"):
        model.encode_text_queries([], processor)


def test_zero_shot_classify_equals_clip_logits(model_and_processor):
    model, processor = model_and_processor
    images = _images()
    probs = model.zero_shot_classify(images, CLASSES, processor, TEMPLATES)
    assert probs.shape == (4, 3)
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))
    pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
    img = model.get_image_features(pixel_values).double()
    img = img / img.norm(dim=-1, keepdim=True)
    cls = model.encode_text_queries(CLASSES, processor, TEMPLATES).double()
    expected = (model.logit_scale.exp().double() * img @ cls.T).softmax(-1)
    torch.testing.assert_close(probs.double(), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="no tokenizer"):
        model.zero_shot_classify(images, CLASSES, processor.image_processor)
    with pytest.raises(ValueError, match="empty"):
        model.zero_shot_classify(images, [], processor)
