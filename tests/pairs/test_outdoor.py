"""Outdoor scores: the zero-shot prompt-ensemble score equals CLIP's class softmax written out in float64; a
transformers image classifier's summed label probabilities; errors naming the parameter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from graft_hf.config import ConfigError
from graft_hf.pairs.outdoor import (
    INDOOR_DESCRIPTIONS,
    OUTDOOR_DESCRIPTIONS,
    TEMPLATES,
    ClassifierOutdoorScorer,
    ZeroShotOutdoorScorer,
)
from graft_hf.pairs.teachers import Teacher


class _Teacher(Teacher):
    """Texts mentioning an outdoor description point one way, indoor ones another; photos by their blueness."""

    teacher_id, dim, device = "fake", 3, torch.device("cpu")

    def embed_texts(self, texts):
        out = []
        for text in texts:
            outdoor = any(d in text for d in OUTDOOR_DESCRIPTIONS)
            noise = (sum(map(ord, text)) % 7) / 50
            out.append([1.0, noise, 0.1] if outdoor else [noise, 1.0, 0.1])
        return torch.tensor(out)

    def embed_images(self, images):
        return torch.tensor(
            [[float(np.asarray(i)[..., 2].mean()), float(np.asarray(i)[..., 0].mean()), 1.0] for i in images]
        )


def _reference(teacher: _Teacher, images) -> np.ndarray:
    prompts = [[t.replace("{}", d) for t in TEMPLATES] for d in (*OUTDOOR_DESCRIPTIONS, *INDOOR_DESCRIPTIONS)]
    classes = []
    for group in prompts:
        e = teacher.embed_texts(group).double()
        e = e / e.norm(dim=-1, keepdim=True)
        mean = e.mean(0)
        classes.append(mean / mean.norm())
    text = torch.stack(classes)
    image = teacher.embed_images(images).double()
    image = image / image.norm(dim=-1, keepdim=True)
    probs = torch.softmax(100.0 * image @ text.T, dim=-1)
    return probs[:, : len(OUTDOOR_DESCRIPTIONS)].sum(-1).numpy()


def test_zero_shot_score_equals_the_float64_reference():
    sky = Image.fromarray(np.full((8, 8, 3), (40, 90, 230), np.uint8))
    room = Image.fromarray(np.full((8, 8, 3), (200, 150, 90), np.uint8))
    grey = Image.fromarray(np.full((8, 8, 3), 128, np.uint8))
    teacher = _Teacher()
    scores = ZeroShotOutdoorScorer(teacher)([sky, room, grey])
    np.testing.assert_allclose(scores, _reference(teacher, [sky, room, grey]), atol=1e-5)
    assert scores[0] > 0.9 and scores[1] < 0.1 and 0.3 < scores[2] < 0.7


def test_zero_shot_with_a_real_clip_teacher(tmp_path):
    from graft_hf.pairs.teachers import load_teacher
    from tests.helpers.tiny_clip import save_tiny_clip

    teacher = load_teacher(str(save_tiny_clip(tmp_path / "clip")), device="cpu")
    scores = ZeroShotOutdoorScorer(teacher)([Image.new("RGB", (40, 30), c) for c in ("red", "blue")])
    assert scores.shape == (2,) and ((scores > 0) & (scores < 1)).all()


def test_classifier_scorer(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=37, num_labels=3, id2label={0: "indoor", 1: "Outdoor", 2: "other"})  # fmt: skip
    torch.manual_seed(0)
    model = ViTForImageClassification(config).eval()
    model.save_pretrained(tmp_path / "cls")
    processor = ViTImageProcessor(size={"height": 32, "width": 32})
    processor.save_pretrained(tmp_path / "cls")
    images = [Image.new("RGB", (50, 40), c) for c in ("green", "white")]
    scores = ClassifierOutdoorScorer(str(tmp_path / "cls"), ["outdoor", "other"], device="cpu")(images)
    with torch.no_grad():
        probs = model(**processor(images=images, return_tensors="pt")).logits.softmax(-1)
    np.testing.assert_allclose(scores, (probs[:, 1] + probs[:, 2]).numpy(), atol=1e-6)
    with pytest.raises(ConfigError, match="outdoor_labels: labels \\['sky'\\]"):
        ClassifierOutdoorScorer(str(tmp_path / "cls"), ["sky"], device="cpu")
    with pytest.raises(ConfigError, match="classifier: cannot load"):
        ClassifierOutdoorScorer(str(tmp_path / "nothing"), ["outdoor"], device="cpu")
