"""Model-independent evaluation metrics: single-label and multi-label classification, and (re-exported from
:mod:`graft_hf.evaluation.retrieval`) the ranking metrics of retrieval.

Everything here works from scores and labels (``numpy`` arrays or ``torch`` tensors), so any model, teacher or
baseline is scored the same way. Computation runs in float64 on the CPU and results come back as ``numpy``. Top-k
accuracy and the arg-max prediction follow the ranking convention of :mod:`graft_hf.evaluation.retrieval` (ties:
the lower class index first), for the same reason: figures reproducible to the last digit, where sklearn's and
torchmetrics' tie handling is a threshold merge or unspecified. The confusion matrix here
(:func:`confusion_counts`) is also the one behind the segmentation metrics
(:mod:`graft_hf.evaluation.segmentation_metrics`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from graft_hf.evaluation.retrieval import (
    ArrayLike,
    RetrievalMetrics,
    _check_k,
    _to_tensor,
    average_precision,
    class_retrieval_metrics,
    rank_order,
    recall_at_k,
    retrieval_metrics,
    single_positive_recall,
    text_to_image_retrieval,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ArrayLike",
    "ClassificationMetrics",
    "MultiLabelMetrics",
    "RetrievalMetrics",
    "average_precision",
    "class_retrieval_metrics",
    "classification_metrics",
    "confusion_counts",
    "confusion_matrix",
    "multilabel_average_precision",
    "multilabel_f1",
    "multilabel_metrics",
    "per_class_accuracy",
    "rank_order",
    "recall_at_k",
    "retrieval_metrics",
    "single_positive_recall",
    "text_to_image_retrieval",
    "topk_accuracy",
]


# ----------------------------------------------------------------------------------------------------------------
# Single-label classification
# ----------------------------------------------------------------------------------------------------------------


def _class_ids(values: ArrayLike, name: str) -> torch.Tensor:
    """int64 CPU class ids of any shape; booleans count as 0/1, floats only when they hold whole numbers."""
    t = values.detach().cpu() if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    if t.is_floating_point() and not torch.equal(t, t.round()):
        raise ValueError(f"{name} must hold integer class ids, got non-integer values")
    return t.long()


def _check_class_range(ids: torch.Tensor, name: str, num_classes: int) -> None:
    if ids.numel() and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(
            f"{name} must lie in [0, {num_classes}), got range [{int(ids.min())}, {int(ids.max())}]; pass the right "
            "num_classes, or ignore_index for unlabelled values"
        )


def confusion_counts(
    predictions: ArrayLike,
    labels: ArrayLike,
    num_classes: int,
    ignore_index: int | None = None,
    names: tuple[str, str] = ("predictions", "labels"),
) -> torch.Tensor:
    """Counts of (true class, predicted class) pairs as an int64 tensor; see :func:`confusion_matrix`.

    Args:
        predictions: Predicted class ids, any shape.
        labels: True class ids, the same shape.
        num_classes: Number of classes.
        ignore_index: Label value of items to skip (e.g. 255 for unlabelled pixels).
        names: How the two inputs are called in error messages.
    """
    if num_classes <= 0:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    p, y = _class_ids(predictions, names[0]), _class_ids(labels, names[1])
    if p.shape != y.shape:
        raise ValueError(
            f"{names[0]} {tuple(p.shape)} and {names[1]} {tuple(y.shape)} must have the same shape (same length)"
        )
    p, y = p.reshape(-1), y.reshape(-1)
    if ignore_index is not None:
        keep = y != ignore_index
        p, y = p[keep], y[keep]
    _check_class_range(y, names[1], num_classes)
    _check_class_range(p, names[0], num_classes)
    counts = torch.bincount(y * num_classes + p, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes)


def confusion_matrix(
    predictions: ArrayLike, labels: ArrayLike, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        predictions: Predicted class ids `(num_samples,)` (any shape, e.g. a mask, as long as `labels` matches).
        labels: True class ids of the same shape.
        num_classes: Number of classes.
        ignore_index: Label value of samples to skip.

    Returns:
        int64 `(num_classes, num_classes)`; rows are true classes, columns predicted classes.
    """
    return confusion_counts(predictions, labels, num_classes, ignore_index).numpy()


def per_class_accuracy(predictions: ArrayLike, labels: ArrayLike, num_classes: int) -> np.ndarray:
    """Accuracy within each true class (per-class recall); NaN for classes with no samples.

    Returns:
        float64 `(num_classes,)`.
    """
    cm = confusion_matrix(predictions, labels, num_classes).astype(np.float64)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def topk_accuracy(logits: ArrayLike, labels: ArrayLike, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Fraction of samples whose true class is among the `k` highest-scoring classes.

    Ties rank the lower class index first. `k` larger than the number of classes is clipped to it.

    Args:
        logits: Scores `(num_samples, num_classes)`.
        labels: True class ids `(num_samples,)`.
        ks: Cut-offs.

    Returns:
        `{"top1": ..., "top5": ...}`.
    """
    s = _to_tensor(logits, torch.float64, "logits")
    if s.ndim != 2 or s.shape[0] == 0:
        raise ValueError(f"logits must have shape (num_samples>0, num_classes), got {tuple(s.shape)}")
    y = _class_ids(labels, "labels").reshape(-1)
    _check_class_range(y, "labels", s.shape[1])
    if y.shape[0] != s.shape[0]:
        raise ValueError(f"logits have {s.shape[0]} rows but labels has {y.shape[0]} entries")
    order = rank_order(s)
    hit_rank = (order == y[:, None]).to(torch.int64).argmax(dim=1)  # 0-based rank of the true class
    out = {}
    for k in ks:
        _check_k(k)
        out[f"top{k}"] = float((hit_rank < min(k, s.shape[1])).to(torch.float64).mean())
    return out


@dataclass
class ClassificationMetrics:
    """Single-label classification results.

    Attributes:
        top_k: `{"top1": ..., "top5": ...}` accuracies.
        per_class_accuracy: float64 `(num_classes,)`, NaN for classes without samples.
        mean_per_class_accuracy: Mean of `per_class_accuracy` over classes with samples (balanced accuracy).
        confusion_matrix: int64 `(num_classes, num_classes)`, rows true, columns predicted.
        classnames: Optional class names.
    """

    top_k: dict[str, float]
    per_class_accuracy: np.ndarray
    mean_per_class_accuracy: float
    confusion_matrix: np.ndarray
    classnames: list[str] | None = None

    def to_dict(self) -> dict[str, float]:
        """Flat summary, with per-class accuracies under `"acc/<classname>"`."""
        names = self.classnames or [str(i) for i in range(len(self.per_class_accuracy))]
        out = dict(self.top_k)
        out["mean_per_class_accuracy"] = self.mean_per_class_accuracy
        out.update({f"acc/{n}": float(a) for n, a in zip(names, self.per_class_accuracy)})
        return out


def classification_metrics(
    logits: ArrayLike, labels: ArrayLike, ks: Sequence[int] = (1, 5), classnames: Sequence[str] | None = None
) -> ClassificationMetrics:
    """Top-k accuracy, per-class accuracy and the confusion matrix from logits.

    Args:
        logits: Scores `(num_samples, num_classes)`; the prediction is the arg-max (lowest index on ties).
        labels: True class ids `(num_samples,)`.
        ks: Top-k cut-offs.
        classnames: Optional names, one per class.

    Returns:
        A :class:`ClassificationMetrics`.
    """
    s = _to_tensor(logits, torch.float64, "logits")
    num_classes = s.shape[-1]
    if classnames is not None and len(classnames) != num_classes:
        raise ValueError(f"got {len(classnames)} classnames for {num_classes} classes")
    top_k = topk_accuracy(s, labels, ks)
    preds = rank_order(s)[:, 0]
    pca = per_class_accuracy(preds, labels, num_classes)
    return ClassificationMetrics(
        top_k=top_k,
        per_class_accuracy=pca,
        mean_per_class_accuracy=float(np.nanmean(pca)) if np.isfinite(pca).any() else float("nan"),
        confusion_matrix=confusion_matrix(preds, labels, num_classes),
        classnames=list(classnames) if classnames is not None else None,
    )


# ----------------------------------------------------------------------------------------------------------------
# Multi-label classification
# ----------------------------------------------------------------------------------------------------------------


def multilabel_average_precision(scores: ArrayLike, targets: ArrayLike) -> np.ndarray:
    """Per-class average precision: each class ranks all samples by its score.

    Args:
        scores: Per-class scores `(num_samples, num_classes)`.
        targets: Multi-hot targets of the same shape.

    Returns:
        float64 `(num_classes,)`; NaN for classes without positives. mAP is the nan-mean of this.
    """
    s = _to_tensor(scores, torch.float64, "scores")
    t = _to_tensor(targets, torch.float64, "targets")
    if s.ndim != 2 or s.shape != t.shape:
        raise ValueError(
            f"scores {tuple(s.shape)} and targets {tuple(t.shape)} must both be (num_samples, num_classes)"
        )
    return average_precision(s.T, t.T)


def multilabel_f1(scores: ArrayLike, targets: ArrayLike, threshold: float = 0.5) -> dict[str, float | np.ndarray]:
    """Precision, recall and F1 of the predictions `scores >= threshold`.

    Micro averages pool all (sample, class) decisions. Macro F1 averages the per-class
    `F1 = 2 TP / (2 TP + FP + FN)` over classes where it is defined (a class with no positives and no positive
    predictions has NaN F1 and is left out).

    Args:
        scores: Per-class scores `(num_samples, num_classes)`.
        targets: Multi-hot targets of the same shape.
        threshold: Decision threshold on the scores.

    Returns:
        Dict with `micro_precision`, `micro_recall`, `micro_f1`, `macro_f1` (floats) and `per_class_f1`
        (float64 `(num_classes,)`).
    """
    s = _to_tensor(scores, torch.float64, "scores").numpy()
    t = _to_tensor(targets, torch.float64, "targets").numpy() > 0.5
    if s.ndim != 2 or s.shape != t.shape:
        raise ValueError(f"scores {s.shape} and targets {t.shape} must both be (num_samples, num_classes)")
    pred = s >= threshold
    tp = (pred & t).sum(axis=0).astype(np.float64)
    fp = (pred & ~t).sum(axis=0).astype(np.float64)
    fn = (~pred & t).sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    TP, FP, FN = tp.sum(), fp.sum(), fn.sum()
    return {
        "micro_precision": float(TP / (TP + FP)) if TP + FP > 0 else 0.0,
        "micro_recall": float(TP / (TP + FN)) if TP + FN > 0 else 0.0,
        "micro_f1": float(2 * TP / (2 * TP + FP + FN)) if 2 * TP + FP + FN > 0 else float("nan"),
        "macro_f1": float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan"),
        "per_class_f1": per_class,
    }


@dataclass
class MultiLabelMetrics:
    """Multi-label classification results.

    Attributes:
        per_class_ap: float64 `(num_classes,)`, NaN for classes without positives.
        mean_average_precision: Mean of `per_class_ap` over classes with positives (mAP over classes).
        threshold: Threshold used for the F1 figures.
        micro_f1: Micro-averaged F1 at `threshold`.
        macro_f1: Macro-averaged F1 at `threshold`.
        micro_precision: Micro precision at `threshold`.
        micro_recall: Micro recall at `threshold`.
        per_class_f1: float64 `(num_classes,)`.
        classnames: Optional class names.
    """

    per_class_ap: np.ndarray
    mean_average_precision: float
    threshold: float
    micro_f1: float
    macro_f1: float
    micro_precision: float
    micro_recall: float
    per_class_f1: np.ndarray = field(repr=False)
    classnames: list[str] | None = None

    def to_dict(self) -> dict[str, float]:
        """Flat summary, with per-class AP under `"ap/<classname>"`."""
        names = self.classnames or [str(i) for i in range(len(self.per_class_ap))]
        out = {
            "mAP": self.mean_average_precision,
            "micro_f1": self.micro_f1,
            "macro_f1": self.macro_f1,
            "micro_precision": self.micro_precision,
            "micro_recall": self.micro_recall,
        }
        out.update({f"ap/{n}": float(a) for n, a in zip(names, self.per_class_ap)})
        return out


def multilabel_metrics(
    scores: ArrayLike, targets: ArrayLike, threshold: float = 0.5, classnames: Sequence[str] | None = None
) -> MultiLabelMetrics:
    """mAP over classes plus micro/macro F1 at a threshold.

    Args:
        scores: Per-class scores `(num_samples, num_classes)`.
        targets: Multi-hot targets of the same shape.
        threshold: Decision threshold for the F1 figures (match it to the score type: e.g. 0.5 for
            sigmoid probabilities, a cosine value for raw similarities).
        classnames: Optional names, one per class.

    Returns:
        A :class:`MultiLabelMetrics`.
    """
    ap = multilabel_average_precision(scores, targets)
    if classnames is not None and len(classnames) != len(ap):
        raise ValueError(f"got {len(classnames)} classnames for {len(ap)} classes")
    f1 = multilabel_f1(scores, targets, threshold)
    return MultiLabelMetrics(
        per_class_ap=ap,
        mean_average_precision=float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan"),
        threshold=float(threshold),
        micro_f1=f1["micro_f1"],
        macro_f1=f1["macro_f1"],
        micro_precision=f1["micro_precision"],
        micro_recall=f1["micro_recall"],
        per_class_f1=f1["per_class_f1"],
        classnames=list(classnames) if classnames is not None else None,
    )
