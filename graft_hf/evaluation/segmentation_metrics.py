"""Semantic-segmentation metrics: pixel accuracy, per-class accuracy and IoU from a confusion matrix.

GRAFT's Table 3 reports per-class accuracy (the recall of every class over its ground-truth pixels); mIoU is the
standard companion. Both come from one `(num_classes, num_classes)` confusion matrix, which is also what
:class:`SegmentationEvaluator` accumulates over a dataset, so a dataset-level score weighs every pixel equally
(not every image).

Example:
    >>> metrics = segmentation_metrics(pred_mask, true_mask, num_classes=3, classnames=["water", "road", "field"])
    >>> metrics.miou, metrics.per_class_accuracy
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from graft_hf.evaluation.metrics import ArrayLike, confusion_counts

__all__ = ["SegmentationEvaluator", "SegmentationMetrics", "confusion_matrix", "segmentation_metrics"]


def confusion_matrix(
    pred: ArrayLike, target: ArrayLike, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """Counts of (true class, predicted class) pixel pairs (:func:`graft_hf.evaluation.metrics.confusion_counts`).

    Args:
        pred: Predicted class ids, any shape (e.g. `(height, width)` or `(batch, height, width)`).
        target: True class ids, the same shape.
        num_classes: Number of classes; ids must lie in `[0, num_classes)` apart from `ignore_index`.
        ignore_index: Target value of pixels to skip (e.g. 255 for unlabelled).

    Returns:
        int64 `(num_classes, num_classes)`: rows are true classes, columns predicted classes.
    """
    return confusion_counts(pred, target, num_classes, ignore_index, names=("pred", "target"))


@dataclass
class SegmentationMetrics:
    """Metrics of a segmentation from its confusion matrix.

    Classes absent from the ground truth have NaN accuracy; classes absent from both ground truth and prediction
    have NaN IoU. Means are over the classes with a defined value.

    Attributes:
        confusion: int64 `(num_classes, num_classes)`, rows true, columns predicted.
        pixel_accuracy: Fraction of labelled pixels predicted correctly.
        per_class_accuracy: `(num_classes,)` float64 recall per class, `TP / (TP + FN)`.
        mean_accuracy: Mean of the defined per-class accuracies.
        per_class_iou: `(num_classes,)` float64 `TP / (TP + FP + FN)`.
        miou: Mean of the defined per-class IoUs.
        classnames: Names of the classes, if given.
    """

    confusion: torch.Tensor
    pixel_accuracy: float
    per_class_accuracy: torch.Tensor
    mean_accuracy: float
    per_class_iou: torch.Tensor
    miou: float
    classnames: tuple[str, ...] | None = None

    @classmethod
    def from_confusion(cls, confusion: torch.Tensor, classnames: Sequence[str] | None = None) -> SegmentationMetrics:
        """Computes every metric from a confusion matrix (rows true, columns predicted)."""
        cm = torch.as_tensor(confusion).to(torch.float64)
        if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
            raise ValueError(f"confusion must be square (num_classes, num_classes), got {tuple(cm.shape)}")
        if classnames is not None and len(classnames) != cm.shape[0]:
            raise ValueError(f"got {len(classnames)} classnames for {cm.shape[0]} classes")
        tp = cm.diagonal()
        support, predicted = cm.sum(dim=1), cm.sum(dim=0)
        nan = torch.full_like(tp, math.nan)
        accuracy = torch.where(support > 0, tp / support.clamp_min(1), nan)
        union = support + predicted - tp
        iou = torch.where(union > 0, tp / union.clamp_min(1), nan)
        total = cm.sum()
        return cls(
            confusion=torch.as_tensor(confusion).long(),
            pixel_accuracy=float(tp.sum() / total) if total > 0 else math.nan,
            per_class_accuracy=accuracy,
            mean_accuracy=_nanmean(accuracy),
            per_class_iou=iou,
            miou=_nanmean(iou),
            classnames=tuple(classnames) if classnames is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python summary (per-class values keyed by class name when names are known)."""
        names = self.classnames or tuple(str(i) for i in range(self.confusion.shape[0]))
        return {
            "pixel_accuracy": self.pixel_accuracy,
            "mean_accuracy": self.mean_accuracy,
            "miou": self.miou,
            "per_class_accuracy": dict(zip(names, self.per_class_accuracy.tolist())),
            "per_class_iou": dict(zip(names, self.per_class_iou.tolist())),
        }


def _nanmean(values: torch.Tensor) -> float:
    valid = values[~values.isnan()]
    return float(valid.mean()) if valid.numel() else math.nan


def segmentation_metrics(
    pred: ArrayLike,
    target: ArrayLike,
    num_classes: int,
    ignore_index: int | None = None,
    classnames: Sequence[str] | None = None,
) -> SegmentationMetrics:
    """Pixel accuracy, per-class accuracy, IoU and their means for one mask or a batch of masks.

    Args:
        pred: Predicted class ids, `(height, width)` or `(batch, height, width)`.
        target: True class ids, the same shape.
        num_classes: Number of classes.
        ignore_index: Target value of unlabelled pixels to skip.
        classnames: Optional class names, carried into the result.

    Returns:
        :class:`SegmentationMetrics`.
    """
    return SegmentationMetrics.from_confusion(confusion_matrix(pred, target, num_classes, ignore_index), classnames)


@dataclass
class SegmentationEvaluator:
    """Accumulates a confusion matrix over a dataset; every pixel counts once.

    Attributes:
        num_classes: Number of classes.
        ignore_index: Target value of unlabelled pixels.
        classnames: Optional class names.
    """

    num_classes: int
    ignore_index: int | None = None
    classnames: Sequence[str] | None = None
    confusion: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        if self.classnames is not None and len(self.classnames) != self.num_classes:
            raise ValueError(f"got {len(self.classnames)} classnames for num_classes={self.num_classes}")
        self.reset()

    def reset(self) -> None:
        """Forgets everything accumulated so far."""
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)

    def update(self, pred: ArrayLike, target: ArrayLike) -> None:
        """Adds one mask or a batch of masks (same shapes)."""
        self.confusion += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def compute(self) -> SegmentationMetrics:
        """Metrics over everything added since the last reset."""
        return SegmentationMetrics.from_confusion(self.confusion, self.classnames)
