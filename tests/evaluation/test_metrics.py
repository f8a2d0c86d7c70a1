"""Classification metrics (confusion matrix, top-k, multi-label AP and F1) against slow, obvious float64 references
written with Python loops, plus hand-made cases.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graft_hf.evaluation.metrics import (
    classification_metrics,
    confusion_matrix,
    multilabel_average_precision,
    multilabel_f1,
    multilabel_metrics,
    per_class_accuracy,
    topk_accuracy,
)
from tests.helpers.ranking import assert_close_nan, ref_ap, ref_order

# ---------------------------------------------------------------------------------------------------------------
# Single-label classification
# ---------------------------------------------------------------------------------------------------------------


def test_confusion_matrix_and_per_class_accuracy_match_reference():
    rng = np.random.default_rng(0)
    num_classes = 6
    labels = rng.integers(0, num_classes - 1, 300)  # the last class never occurs
    preds = rng.integers(0, num_classes, 300)
    cm = confusion_matrix(preds, labels, num_classes)
    ref = np.zeros((num_classes, num_classes), dtype=np.int64)
    for y, p in zip(labels, preds):
        ref[y, p] += 1
    np.testing.assert_array_equal(cm, ref)
    acc = per_class_accuracy(torch.from_numpy(preds), torch.from_numpy(labels), num_classes)
    for c in range(num_classes - 1):
        idx = [i for i in range(300) if labels[i] == c]
        assert acc[c] == pytest.approx(sum(preds[i] == c for i in idx) / len(idx))
    assert math.isnan(acc[-1])


def test_topk_accuracy_matches_reference_with_ties():
    rng = np.random.default_rng(1)
    logits = rng.integers(0, 3, (200, 8)).astype(np.float64)  # many ties
    labels = rng.integers(0, 8, 200)
    got = topk_accuracy(logits, labels, ks=(1, 3, 5, 50))
    for k in (1, 3, 5, 50):
        ref = np.mean([labels[i] in ref_order(list(logits[i]))[:k] for i in range(200)])
        assert got[f"top{k}"] == pytest.approx(ref)
    assert got["top50"] == 1.0


def test_classification_metrics_hand_made():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 2.0, 1.0], [1.0, 1.0, 0.0]])
    labels = torch.tensor([0, 1, 2, 1])
    res = classification_metrics(logits, labels, ks=(1, 2), classnames=["x", "y", "z"])
    assert res.top_k == {"top1": 0.5, "top2": 1.0}  # last row: tie -> class 0 predicted
    np.testing.assert_array_equal(res.confusion_matrix, [[1, 0, 0], [1, 1, 0], [0, 1, 0]])
    np.testing.assert_allclose(res.per_class_accuracy, [1.0, 0.5, 0.0])
    assert res.mean_per_class_accuracy == pytest.approx(0.5)
    assert res.to_dict()["acc/y"] == 0.5


def test_confusion_matrix_skips_ignore_index_and_refuses_fractions():
    cm = confusion_matrix([0, 1, 1, 0], [0, 1, 255, 1], 2, ignore_index=255)
    np.testing.assert_array_equal(cm, [[1, 0], [1, 1]])
    with pytest.raises(ValueError, match="integer class ids"):
        confusion_matrix(np.array([0.5, 1.0]), [0, 1], 2)


def test_classification_errors():
    with pytest.raises(ValueError, match="lie in"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="same length"):
        confusion_matrix([0, 1, 1], [0, 1], 3)
    with pytest.raises(ValueError, match="rows"):
        topk_accuracy(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))


# ---------------------------------------------------------------------------------------------------------------
# Multi-label classification
# ---------------------------------------------------------------------------------------------------------------


def test_multilabel_ap_and_f1_match_reference():
    rng = np.random.default_rng(2)
    scores = rng.random((60, 5))
    targets = (rng.random((60, 5)) < 0.3).astype(np.int64)
    targets[:, 4] = 0  # a class without positives
    ap = multilabel_average_precision(scores, targets)
    assert_close_nan(ap, [ref_ap(list(scores[:, c]), list(targets[:, c])) for c in range(5)])

    f1 = multilabel_f1(scores, targets, threshold=0.6)
    pred = scores >= 0.6
    tp = fp = fn = 0
    per_class = []
    for c in range(5):
        ctp = sum(bool(pred[i, c] and targets[i, c]) for i in range(60))
        cfp = sum(bool(pred[i, c] and not targets[i, c]) for i in range(60))
        cfn = sum(bool(not pred[i, c] and targets[i, c]) for i in range(60))
        tp, fp, fn = tp + ctp, fp + cfp, fn + cfn
        per_class.append(2 * ctp / (2 * ctp + cfp + cfn) if 2 * ctp + cfp + cfn else math.nan)
    assert f1["micro_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert f1["micro_precision"] == pytest.approx(tp / (tp + fp))
    assert f1["micro_recall"] == pytest.approx(tp / (tp + fn))
    assert f1["macro_f1"] == pytest.approx(np.nanmean(per_class))
    assert_close_nan(f1["per_class_f1"], per_class)


def test_multilabel_metrics_perfect():
    targets = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    scores = targets.float() * 0.9 + 0.05
    res = multilabel_metrics(scores, targets, threshold=0.5, classnames=["a", "b", "c"])
    assert res.mean_average_precision == pytest.approx(1.0)
    assert res.micro_f1 == pytest.approx(1.0) and res.macro_f1 == pytest.approx(1.0)
    assert res.to_dict()["ap/c"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="num_samples, num_classes"):
        multilabel_metrics(scores, targets[:, :2])
