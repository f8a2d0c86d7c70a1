"""k-shot classifiers on frozen features: support draws, the linear probe against scikit-learn, prototypes, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graft_hf.evaluation.fewshot import (
    few_shot_runs,
    fit_linear_probe,
    fit_prototypes,
    sample_support,
    summarise_runs,
)


def test_single_label_support_has_k_images_of_every_class_and_depends_on_the_seed():
    labels = np.repeat(np.arange(4), 10)
    rows = sample_support(labels, 3, seed=0)
    assert np.bincount(labels[rows], minlength=4).tolist() == [3, 3, 3, 3]
    assert np.array_equal(rows, sample_support(labels, 3, seed=0))
    assert not np.array_equal(rows, sample_support(labels, 3, seed=1))
    with pytest.raises(ValueError, match="class 4 has 0 training image"):
        sample_support(labels, 1, seed=0, num_classes=5)


def test_multilabel_support_gives_every_class_k_positives():
    rng = np.random.default_rng(0)
    labels = (rng.random((60, 5)) < 0.3).astype(np.int8)
    labels[:3, 4], labels[3:, 4] = 1, 0  # a rare class with exactly 3 images
    rows = sample_support(labels, 2, seed=3)
    assert (labels[rows].sum(axis=0) >= 2).all() and len(set(rows.tolist())) == len(rows)
    with pytest.raises(ValueError, match="class 4 has 3 training image"):
        sample_support(labels, 4, seed=0)


def _toy(num_classes=3, per_class=8, dim=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=generator)
    x = centres.repeat_interleave(per_class, 0) + 0.7 * torch.randn(num_classes * per_class, dim, generator=generator)
    return F.normalize(x.double(), dim=-1), torch.arange(num_classes).repeat_interleave(per_class)


def test_linear_probe_matches_scikit_learns_logistic_regression():
    linear_model = pytest.importorskip("sklearn.linear_model")
    x, y = _toy()
    probe = fit_linear_probe(x, y, 3, C=2.0)
    reference = linear_model.LogisticRegression(C=2.0, tol=1e-10, max_iter=10_000).fit(x.numpy(), y.numpy())
    ours = probe(x).softmax(-1).numpy()
    np.testing.assert_allclose(ours, reference.predict_proba(x.numpy()), atol=1e-5)


def test_multilabel_linear_probe_is_one_binary_regression_per_class():
    linear_model = pytest.importorskip("sklearn.linear_model")
    x, _ = _toy(per_class=10)
    targets = torch.stack([x[:, 0] > 0, x[:, 1] > 0.1], dim=1).long()
    probe = fit_linear_probe(x, targets, 2, C=0.5)
    for c in range(2):
        reference = linear_model.LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(x.numpy(), targets[:, c])
        np.testing.assert_allclose(
            probe(x)[:, c].sigmoid().numpy(), reference.predict_proba(x.numpy())[:, 1], atol=1e-5
        )


def test_prototypes_are_normalised_class_means_of_normalised_features():
    x, y = _toy()
    prototypes = fit_prototypes(3 * x, y, 3)
    for c in range(3):
        mean = x[y == c].mean(0)
        torch.testing.assert_close(prototypes[c], mean / mean.norm())


@pytest.mark.parametrize("classifier", ["linear", "prototype"])
def test_runs_per_shot_and_seed_with_mean_and_spread(classifier):
    train_x, train_y = _toy(per_class=20, seed=1)
    test_x, test_y = _toy(per_class=20, seed=1)
    runs = few_shot_runs(
        train_x, train_y.numpy(), test_x, test_y.numpy(), 3, shots=(1, 5), seeds=range(4), classifier=classifier
    )
    assert [(r.shots, r.seed) for r in runs] == [(k, s) for k in (1, 5) for s in range(4)]
    assert len({tuple(r.support) for r in runs if r.shots == 1}) > 1  # seeds draw different supports
    summary = summarise_runs(runs)
    five = np.array([r.score for r in runs if r.shots == 5])
    assert summary[5]["mean"] == pytest.approx(five.mean()) and summary[5]["std"] == pytest.approx(five.std(ddof=1))
    assert summary[5]["seeds"] == 4 and summary[5]["mean"] > 0.8  # separable clusters


def test_multilabel_runs_report_map():
    x, _ = _toy(per_class=20)
    targets = np.stack([(x[:, 0] > 0).numpy(), (x[:, 1] > 0).numpy()], axis=1).astype(np.int8)
    runs = few_shot_runs(x, targets, x, targets, 2, shots=(3,), seeds=range(2), classifier="prototype")
    assert all(0.0 <= r.score <= 1.0 for r in runs)
