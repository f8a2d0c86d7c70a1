"""Segmentation metrics against slow per-pixel references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graft_hf.evaluation.segmentation_metrics import (
    SegmentationEvaluator,
    confusion_matrix,
    segmentation_metrics,
)


def _slow_reference(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore: int | None):
    """Per-class accuracy and IoU by counting pixels one at a time."""
    tp = [0] * num_classes
    fp = [0] * num_classes
    fn = [0] * num_classes
    correct = total = 0
    for p, t in zip(pred.ravel().tolist(), target.ravel().tolist()):
        if ignore is not None and t == ignore:
            continue
        total += 1
        if p == t:
            tp[t] += 1
            correct += 1
        else:
            fp[p] += 1
            fn[t] += 1
    acc = [tp[c] / (tp[c] + fn[c]) if tp[c] + fn[c] else math.nan for c in range(num_classes)]
    iou = [tp[c] / (tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else math.nan for c in range(num_classes)]
    return correct / total, acc, iou


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_slow_reference(seed):
    rng = np.random.default_rng(seed)
    num_classes = 5
    target = rng.integers(0, num_classes, size=(3, 17, 13))
    target[target == 4] = 255  # class 4 never appears in the ground truth
    target[0, :2] = 255
    pred = np.where(
        rng.random(target.shape) < 0.6, np.where(target == 255, 0, target), rng.integers(0, 5, target.shape)
    )
    metrics = segmentation_metrics(torch.from_numpy(pred), target, num_classes, ignore_index=255)
    pixel_acc, acc, iou = _slow_reference(pred, target, num_classes, 255)
    assert metrics.pixel_accuracy == pytest.approx(pixel_acc)
    np.testing.assert_allclose(metrics.per_class_accuracy.numpy(), acc, equal_nan=True)
    np.testing.assert_allclose(metrics.per_class_iou.numpy(), iou, equal_nan=True)
    assert math.isnan(acc[4]) and not math.isnan(iou[4])  # predicted but never true: IoU 0, accuracy undefined
    assert metrics.mean_accuracy == pytest.approx(np.nanmean(acc))
    assert metrics.miou == pytest.approx(np.nanmean(iou))


def test_hand_made_mask():
    target = torch.tensor([[0, 0, 1], [1, 1, 2]])
    pred = torch.tensor([[0, 1, 1], [1, 2, 2]])
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    m = segmentation_metrics(pred, target, 3, classnames=["a", "b", "c"])
    assert m.per_class_accuracy.tolist() == pytest.approx([0.5, 2 / 3, 1.0])
    assert m.per_class_iou.tolist() == pytest.approx([0.5, 0.5, 0.5])
    assert m.to_dict()["per_class_iou"]["c"] == pytest.approx(0.5)
    assert m.pixel_accuracy == pytest.approx(4 / 6)


def test_evaluator_accumulates_pixels_not_images():
    ev = SegmentationEvaluator(num_classes=2)
    ev.update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long))  # 4 correct
    ev.update(torch.zeros(1, 1, dtype=torch.long), torch.ones(1, 1, dtype=torch.long))  # 1 wrong
    assert ev.compute().pixel_accuracy == pytest.approx(4 / 5)
    ev.reset()
    assert int(ev.confusion.sum()) == 0


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="ignore_index"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 255]), num_classes=2)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(torch.zeros(2, 2), torch.zeros(3, 2), num_classes=2)
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix(torch.tensor([0.5]), torch.tensor([0]), num_classes=2)
