"""Zero-shot classification from embeddings, with a deterministic fake text encoder."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from graft_hf.evaluation.templates import EUROSAT_CLASSNAMES, SATELLITE_TEMPLATES, get_classnames, get_templates
from graft_hf.evaluation.zeroshot import (
    ZeroShotClassifier,
    build_zero_shot_classifier,
    classify,
    multilabel_scores,
    predict_multilabel,
    zero_shot_logits,
)

DIM = 16


def prompt_vector(prompt: str, dim: int = DIM) -> np.ndarray:
    """A fixed pseudo-random vector per prompt string (independent of call order and batching)."""
    seed = int.from_bytes(hashlib.sha1(prompt.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim)


class FakeTextEncoder:
    """Embeds a prompt as `3 * e_class + noise(prompt)` where the class is found by substring match.

    Norms vary with the template (scaled by the prompt length) to check that each prompt is normalised before
    averaging.
    """

    def __init__(self, classnames: list[str]):
        self.classnames = classnames
        self.calls: list[int] = []

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        self.calls.append(len(prompts))
        rows = []
        for p in prompts:
            (cls,) = [i for i, c in enumerate(self.classnames) if f" {c}" in p]
            v = 0.5 * prompt_vector(p)
            v[cls] += 3.0
            rows.append(v * len(p))
        return torch.tensor(np.stack(rows), dtype=torch.float32)


CLASSES = ["forest", "river", "farmland", "city"]
TEMPLATES = ["a satellite image of {}.", "an aerial photo of {}.", "a centered satellite photo of {}."]


def test_template_ensemble_is_mean_of_normalised_embeddings():
    enc = FakeTextEncoder(CLASSES)
    weights = build_zero_shot_classifier(enc, CLASSES, TEMPLATES, batch_size=5)
    assert weights.shape == (4, DIM) and weights.dtype == torch.float32
    assert enc.calls == [5, 5, 2]  # 12 prompts in batches of 5
    for c, name in enumerate(CLASSES):
        vs = []
        for t in TEMPLATES:
            p = t.replace("{}", name)
            v = (0.5 * prompt_vector(p)) + 3.0 * np.eye(DIM)[c]
            v = v * len(p)
            vs.append(v / np.linalg.norm(v))
        mean = np.mean(vs, axis=0)
        np.testing.assert_allclose(weights[c].numpy(), mean / np.linalg.norm(mean), atol=1e-6)
    np.testing.assert_allclose(weights.norm(dim=1).numpy(), 1.0, atol=1e-6)


def test_batch_size_does_not_change_weights():
    enc = FakeTextEncoder(CLASSES)
    a = build_zero_shot_classifier(enc, CLASSES, TEMPLATES, batch_size=1)
    b = build_zero_shot_classifier(enc, CLASSES, TEMPLATES, batch_size=100)
    torch.testing.assert_close(a, b)


def test_classify_returns_expected_classes():
    clf = ZeroShotClassifier.from_encoder(FakeTextEncoder(CLASSES), CLASSES, TEMPLATES)
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    image_embeds = 5 * torch.nn.functional.one_hot(labels, DIM).float() + torch.randn(8, DIM, generator=gen)
    pred = clf.classify(image_embeds, k=2)
    assert pred.predictions.tolist() == labels.tolist()
    assert pred.top_k_indices.shape == (8, 2) and pred.top_k_probs.shape == (8, 2)
    assert [row[0] for row in pred.top_k_labels] == [CLASSES[i] for i in labels]
    torch.testing.assert_close(pred.probs.sum(dim=1), torch.ones(8))
    assert torch.all(pred.top_k_probs[:, 0] >= pred.top_k_probs[:, 1])
    metrics = clf.evaluate(image_embeds, labels, ks=(1, 3))
    assert metrics.top_k["top1"] == 1.0
    np.testing.assert_array_equal(metrics.confusion_matrix, np.diag([2, 2, 2, 2]))
    retrieval = clf.evaluate_retrieval(image_embeds, labels, map_ks=(2,), recall_ks=(2,))
    assert retrieval.per_class()["river"]["mAP@2"] == pytest.approx(1.0)
    assert retrieval.mean()["recall@2"] == pytest.approx(1.0)


def test_logits_are_scaled_cosine():
    classifier = torch.nn.functional.normalize(torch.randn(3, DIM), dim=-1)
    image_embeds = torch.randn(5, DIM) * 7
    logits = zero_shot_logits(image_embeds, classifier, logit_scale=50.0)
    ref = 50.0 * torch.nn.functional.cosine_similarity(image_embeds[:, None], classifier[None], dim=-1)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=1e-5)
    # k is clipped to the number of classes
    assert classify(image_embeds, classifier, k=10).top_k_indices.shape == (5, 3)


def test_multilabel_scores_and_prediction():
    classifier = torch.eye(3, DIM)
    image_embeds = torch.zeros(2, DIM)
    image_embeds[0, :2] = 1.0  # classes 0 and 1
    image_embeds[1, 2] = 1.0  # class 2
    cos = multilabel_scores(image_embeds, classifier, "cosine")
    torch.testing.assert_close(cos, torch.tensor([[0.7071, 0.7071, 0.0], [0.0, 0.0, 1.0]]), atol=1e-4, rtol=0)
    soft = multilabel_scores(image_embeds, classifier, "softmax", logit_scale=10.0)
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(2))
    sig = multilabel_scores(image_embeds, classifier, "sigmoid", logit_scale=10.0, bias=-5.0)
    torch.testing.assert_close(sig, torch.sigmoid(10 * cos - 5))
    assert predict_multilabel(cos, threshold=0.5).tolist() == [[True, True, False], [False, False, True]]
    assert predict_multilabel(cos, top_k=1).tolist() == [[True, False, False], [False, False, True]]

    clf = ZeroShotClassifier(classifier, ("a", "b", "c"), ("{}",))
    res = clf.evaluate_multilabel(image_embeds, torch.tensor([[1, 1, 0], [0, 0, 1]]), threshold=0.5)
    assert res.mean_average_precision == pytest.approx(1.0)
    assert res.micro_f1 == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: get_templates("nonexistent"), "unknown template set"),
        (lambda: get_templates(["no placeholder"]), "exactly one"),
        (lambda: get_templates([]), "empty"),
        (lambda: get_classnames("nonexistent"), "unknown class-name set"),
        (lambda: get_classnames(["a", "a"]), "duplicates"),
        (lambda: build_zero_shot_classifier(lambda p: torch.zeros(len(p) + 1, 4), ["a"], ["{}"]), "must return"),
        (
            lambda: build_zero_shot_classifier(lambda p: torch.full((len(p), 4), float("nan")), ["a"], ["{}"]),
            "non-finite",
        ),
        (lambda: zero_shot_logits(torch.zeros(2, 4), torch.zeros(3, 5)), "dim 4 but the classifier has dim 5"),
        (lambda: multilabel_scores(torch.zeros(2, 4), torch.zeros(3, 4), "bogus"), "score must be"),
        (lambda: predict_multilabel(torch.zeros(2, 3)), "threshold"),
        (lambda: ZeroShotClassifier(torch.zeros(2, 4), ("a", "b", "c"), ("{}",)), "do not match"),
    ],
)
def test_zero_shot_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_with_tiny_graft_model_and_real_tokenizer():
    testing = pytest.importorskip("graft_hf.testing")
    from graft_hf.tokenizer import load_clip_tokenizer

    model = testing.tiny_graft_model(seed=0)
    tokenizer = load_clip_tokenizer()

    @torch.no_grad()
    def encode_text(prompts: list[str]) -> torch.Tensor:
        tokens = tokenizer(prompts, padding=True, return_tensors="pt")
        return model.get_text_features(tokens["input_ids"], tokens["attention_mask"])

    templates = SATELLITE_TEMPLATES[:3]
    clf = ZeroShotClassifier.from_encoder(encode_text, "eurosat", templates, batch_size=7)
    assert clf.weights.shape == (10, model.config.projection_dim)
    # padding to the longest prompt of a batch must not change the classifier
    one_by_one = build_zero_shot_classifier(encode_text, EUROSAT_CLASSNAMES, templates, batch_size=1)
    torch.testing.assert_close(clf.weights, one_by_one, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        image_embeds = model.get_image_features(torch.randn(4, 3, 32, 32))
    pred = clf.classify(image_embeds, k=3)
    assert pred.top_k_indices.shape == (4, 3) and all(len(r) == 3 for r in pred.top_k_labels)
    # an image embedded exactly at a class's weight is classified as that class
    assert clf.classify(clf.weights[[2, 7]] * 3.0).predictions.tolist() == [2, 7]
