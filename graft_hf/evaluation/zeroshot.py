"""Zero-shot classification from embeddings (single-label and multi-label).

Only embeddings go in, so a GRAFT model, its CLIP teacher or any other two-tower model is scored the same way:
pass a function that maps a list of prompts to text embeddings, and the image embeddings of the test set.

Example:
    >>> clf = ZeroShotClassifier.from_encoder(encode_text, "eurosat", templates="satellite")
    >>> metrics = clf.evaluate(image_embeds, labels)          # top-1/top-5, per-class accuracy, confusion
    >>> prediction = clf.classify(image_embeds, k=3)           # top-k classes and probabilities
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from graft_hf.evaluation.metrics import (
    ClassificationMetrics,
    MultiLabelMetrics,
    RetrievalMetrics,
    class_retrieval_metrics,
    classification_metrics,
    multilabel_metrics,
)
from graft_hf.evaluation.templates import get_classnames, get_templates
from graft_hf.modeling.modeling_graft import ensemble_text_embeddings

logger = logging.getLogger(__name__)

EncodeText = Callable[[list[str]], torch.Tensor]
MultiLabelScore = Literal["cosine", "softmax", "sigmoid"]

__all__ = [
    "EncodeText",
    "ZeroShotClassifier",
    "ZeroShotPrediction",
    "build_zero_shot_classifier",
    "classify",
    "multilabel_scores",
    "predict_multilabel",
    "zero_shot_logits",
]


@torch.no_grad()
def build_zero_shot_classifier(
    encode_text: EncodeText,
    classnames: str | Sequence[str],
    templates: str | Sequence[str] = "satellite",
    batch_size: int = 256,
) -> torch.Tensor:
    """Builds zero-shot classifier weights from a prompt-template ensemble.

    Each prompt embedding is L2-normalised, the `num_templates` embeddings of a class are averaged and the mean
    is re-normalised (CLIP's prompt ensembling, averaged in embedding space; the implementation is
    `graft_hf.modeling.modeling_graft.ensemble_text_embeddings`, shared with `GraftModel.encode_text_queries`).

    Args:
        encode_text: Maps a list of `b` prompts to text embeddings `(b, dim)` (need not be normalised); e.g. a
            closure over a tokenizer and `model.get_text_features`.
        classnames: Class names, or a set name from `CLASSNAME_SETS` (e.g. `"eurosat"`).
        templates: Templates with one `{}`, or a set name from `TEMPLATE_SETS` (e.g. `"satellite"`).
        batch_size: Prompts per `encode_text` call.

    Returns:
        float32 weights `(num_classes, dim)` with unit-norm rows, on the device `encode_text` returned.
    """
    classnames = get_classnames(classnames)
    templates = get_templates(templates)
    weights = ensemble_text_embeddings(encode_text, classnames, templates, batch_size)
    logger.info("built zero-shot classifier: %d classes x %d templates", len(classnames), len(templates))
    return weights


def _check_embeds(image_embeds: torch.Tensor, classifier: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    image_embeds = torch.as_tensor(image_embeds)
    classifier = torch.as_tensor(classifier)
    if image_embeds.ndim != 2 or classifier.ndim != 2:
        raise ValueError(
            f"expected image_embeds (batch, dim) and classifier (num_classes, dim), "
            f"got {tuple(image_embeds.shape)} and {tuple(classifier.shape)}"
        )
    if image_embeds.shape[1] != classifier.shape[1]:
        raise ValueError(
            f"image embeddings have dim {image_embeds.shape[1]} but the classifier has dim {classifier.shape[1]}; "
            "build the classifier with the same model's text tower"
        )
    classifier = classifier.to(device=image_embeds.device, dtype=torch.float32)
    return F.normalize(image_embeds.float(), dim=-1), F.normalize(classifier, dim=-1)


def zero_shot_logits(image_embeds: torch.Tensor, classifier: torch.Tensor, logit_scale: float = 100.0) -> torch.Tensor:
    """Scaled cosine similarities between images and classes.

    Args:
        image_embeds: Image embeddings `(batch, dim)` (normalised here).
        classifier: Class weights `(num_classes, dim)` from :func:`build_zero_shot_classifier`.
        logit_scale: Temperature multiplier (CLIP's learned scale is 100).

    Returns:
        Logits `(batch, num_classes)`.
    """
    img, clf = _check_embeds(image_embeds, classifier)
    return logit_scale * img @ clf.T


@dataclass
class ZeroShotPrediction:
    """Output of :func:`classify`.

    Attributes:
        logits: `(batch, num_classes)` scaled cosine similarities.
        probs: `(batch, num_classes)` softmax probabilities.
        top_k_indices: `(batch, k)` class ids, most likely first (ties: lower class id first).
        top_k_probs: `(batch, k)` their probabilities.
        top_k_labels: Class names for `top_k_indices` when class names were given, else None.
    """

    logits: torch.Tensor
    probs: torch.Tensor
    top_k_indices: torch.Tensor
    top_k_probs: torch.Tensor
    top_k_labels: list[list[str]] | None = None

    @property
    def predictions(self) -> torch.Tensor:
        """Top-1 class ids `(batch,)`."""
        return self.top_k_indices[:, 0]


def classify(
    image_embeds: torch.Tensor,
    classifier: torch.Tensor,
    k: int = 5,
    logit_scale: float = 100.0,
    classnames: Sequence[str] | None = None,
) -> ZeroShotPrediction:
    """Single-label zero-shot prediction: softmax over classes and the top-k classes.

    Args:
        image_embeds: `(batch, dim)`.
        classifier: `(num_classes, dim)`.
        k: Number of classes to return per image (clipped to `num_classes`).
        logit_scale: Temperature multiplier.
        classnames: Optional names, to fill `top_k_labels`.

    Returns:
        A :class:`ZeroShotPrediction`.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    logits = zero_shot_logits(image_embeds, classifier, logit_scale)
    if classnames is not None and len(classnames) != logits.shape[1]:
        raise ValueError(f"got {len(classnames)} classnames for a classifier with {logits.shape[1]} classes")
    probs = logits.softmax(dim=-1)
    k = min(k, logits.shape[1])
    order = torch.sort(logits, dim=-1, descending=True, stable=True).indices[:, :k]
    labels = [[classnames[i] for i in row] for row in order.tolist()] if classnames is not None else None
    return ZeroShotPrediction(logits, probs, order, torch.gather(probs, 1, order), labels)


def multilabel_scores(
    image_embeds: torch.Tensor,
    classifier: torch.Tensor,
    score: MultiLabelScore = "cosine",
    logit_scale: float = 100.0,
    bias: float = 0.0,
) -> torch.Tensor:
    """Per-class scores for multi-label zero-shot prediction.

    Args:
        image_embeds: `(batch, dim)`.
        classifier: `(num_classes, dim)`.
        score: `"cosine"`: raw cosine similarity in [-1, 1] (rank-equivalent per class to the others, so it
            gives the same per-class AP as `"sigmoid"`); `"softmax"`: probabilities over classes (compete,
            sum to 1); `"sigmoid"`: `sigmoid(logit_scale * cosine + bias)` (independent per class, SigLIP style).
        logit_scale: Temperature for `"softmax"` and `"sigmoid"`.
        bias: Additive logit bias for `"sigmoid"`.

    Returns:
        Scores `(batch, num_classes)`.
    """
    img, clf = _check_embeds(image_embeds, classifier)
    cosine = img @ clf.T
    if score == "cosine":
        return cosine
    if score == "softmax":
        return (logit_scale * cosine).softmax(dim=-1)
    if score == "sigmoid":
        return torch.sigmoid(logit_scale * cosine + bias)
    raise ValueError(f"score must be 'cosine', 'softmax' or 'sigmoid', got {score!r}")


def predict_multilabel(scores: torch.Tensor, threshold: float | None = None, top_k: int | None = None) -> torch.Tensor:
    """Turns per-class scores into a multi-hot prediction.

    Args:
        scores: `(batch, num_classes)`.
        threshold: Predict every class with `score >= threshold`.
        top_k: Also predict each image's `top_k` highest-scoring classes (useful when no threshold is calibrated).
            At least one of `threshold` and `top_k` is required; with both, their union is predicted.

    Returns:
        bool `(batch, num_classes)`.
    """
    if threshold is None and top_k is None:
        raise ValueError("pass threshold=..., top_k=..., or both")
    pred = torch.zeros_like(scores, dtype=torch.bool)
    if threshold is not None:
        pred |= scores >= threshold
    if top_k is not None:
        if top_k <= 0:
            raise ValueError(f"top_k must be positive, got {top_k}")
        order = torch.sort(scores, dim=-1, descending=True, stable=True).indices[:, : min(top_k, scores.shape[1])]
        pred.scatter_(1, order, True)
    return pred


@dataclass
class ZeroShotClassifier:
    """Class weights together with the names and templates that produced them.

    Attributes:
        weights: `(num_classes, dim)` unit-norm class embeddings.
        classnames: One name per class.
        templates: The prompt templates that were ensembled.
        logit_scale: Temperature multiplier for the logits.
    """

    weights: torch.Tensor
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    logit_scale: float = 100.0

    def __post_init__(self) -> None:
        if self.weights.ndim != 2 or self.weights.shape[0] != len(self.classnames):
            raise ValueError(
                f"weights {tuple(self.weights.shape)} do not match {len(self.classnames)} classnames; "
                "expected (num_classes, dim)"
            )

    @classmethod
    def from_encoder(
        cls,
        encode_text: EncodeText,
        classnames: str | Sequence[str],
        templates: str | Sequence[str] = "satellite",
        batch_size: int = 256,
        logit_scale: float = 100.0,
    ) -> ZeroShotClassifier:
        """Builds the classifier with :func:`build_zero_shot_classifier` (same arguments)."""
        names, temps = get_classnames(classnames), get_templates(templates)
        return cls(build_zero_shot_classifier(encode_text, names, temps, batch_size), names, temps, logit_scale)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Scaled cosine logits `(batch, num_classes)`."""
        return zero_shot_logits(image_embeds, self.weights, self.logit_scale)

    def classify(self, image_embeds: torch.Tensor, k: int = 5) -> ZeroShotPrediction:
        """Top-k classes and probabilities, with class names."""
        return classify(image_embeds, self.weights, k, self.logit_scale, self.classnames)

    def evaluate(
        self, image_embeds: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)
    ) -> ClassificationMetrics:
        """Single-label evaluation: top-k accuracy, per-class accuracy and confusion matrix.

        Args:
            image_embeds: `(num_images, dim)`.
            labels: Class ids `(num_images,)` in the order of `classnames`.
            ks: Top-k cut-offs.
        """
        return classification_metrics(self.logits(image_embeds), labels, ks, self.classnames)

    def multilabel_scores(
        self, image_embeds: torch.Tensor, score: MultiLabelScore = "cosine", bias: float = 0.0
    ) -> torch.Tensor:
        """Per-class scores `(batch, num_classes)`; see :func:`multilabel_scores`."""
        return multilabel_scores(image_embeds, self.weights, score, self.logit_scale, bias)

    def evaluate_multilabel(
        self,
        image_embeds: torch.Tensor,
        targets: torch.Tensor,
        threshold: float,
        score: MultiLabelScore = "cosine",
        bias: float = 0.0,
    ) -> MultiLabelMetrics:
        """Multi-label evaluation: mAP over classes and micro/macro F1 at `threshold` on the chosen score.

        Args:
            image_embeds: `(num_images, dim)`.
            targets: Multi-hot `(num_images, num_classes)`.
            threshold: Decision threshold on the score (e.g. a cosine value for `"cosine"`, 0.5 for
                `"sigmoid"`).
            score: Score type; see :func:`multilabel_scores`.
            bias: Logit bias for `"sigmoid"`.
        """
        scores = self.multilabel_scores(image_embeds, score, bias)
        return multilabel_metrics(scores, targets, threshold, self.classnames)

    def evaluate_retrieval(
        self,
        image_embeds: torch.Tensor,
        labels: torch.Tensor,
        map_ks: Sequence[int] = (100, 20),
        recall_ks: Sequence[int] = (1, 5, 10),
    ) -> RetrievalMetrics:
        """Class-prompt text-to-image retrieval: each class's ensembled prompt embedding ranks all images.

        Args:
            image_embeds: `(num_images, dim)`.
            labels: Class ids `(num_images,)` or multi-hot `(num_images, num_classes)`.
            map_ks: Depths for mAP@k.
            recall_ks: Depths for recall@k.

        Returns:
            A :class:`RetrievalMetrics` with one query per class (`per_class()` is keyed by class name).
        """
        return class_retrieval_metrics(self.weights, image_embeds, labels, self.classnames, map_ks, recall_ks)
