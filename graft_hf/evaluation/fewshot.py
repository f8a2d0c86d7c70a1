"""The few-shot baselines of GRAFT's Tables 1-2: k-shot classifiers on frozen image features, over many seeds.

For every number of shots `k` and every seed, a support set of `k` training images per class is drawn, a
classifier is fitted on their frozen (L2-normalised) embeddings, and the whole test set is scored; the report gives
the mean and the spread (standard deviation, min, max) over the seeds (10 by default), as few-shot results are
noisy. Any encoder the harness loads works (GRAFT, a transformers CLIP, an open_clip checkpoint), so GRAFT's
zero-shot numbers can be set against the few-shot ones of the same or another backbone.

Classifiers:

* ``linear``: multinomial logistic regression (one-vs-rest binary for multi-label data) with an L2 penalty on the
  weights, fitted to convergence with L-BFGS; the objective is scikit-learn's ``LogisticRegression(C=C)``:
  ``sum of the losses + ||W||^2 / (2 C)``, the intercept unpenalised.
* ``prototype``: nearest class mean (cosine to the mean of each class's normalised support embeddings).

Support sets: single-label data draws `k` images of every class; multi-label data (BigEarthNet) draws, class by
class from the rarest, images holding the class until each class has `k` positives among the chosen images.
Scores: top-1 accuracy (single-label) or multi-label mAP.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from graft_hf.evaluation.metrics import multilabel_average_precision

logger = logging.getLogger(__name__)

__all__ = [
    "FewShotClassifier",
    "FewShotRun",
    "few_shot_runs",
    "fit_linear_probe",
    "fit_prototypes",
    "sample_support",
    "summarise_runs",
]

FewShotClassifier = Literal["linear", "prototype"]


def sample_support(labels: np.ndarray, shots: int, seed: int, num_classes: int | None = None) -> np.ndarray:
    """Rows of a `shots`-per-class support set, drawn with `seed`.

    Args:
        labels: int `(num_images,)` class ids, or multi-hot `(num_images, num_classes)`.
        shots: Images (positives, for multi-label data) per class.
        seed: Seed of the draw.
        num_classes: Number of classes of single-label data (default: the largest id + 1).

    Returns:
        int64 sorted row indices.

    Raises:
        ValueError: A class has fewer than `shots` images.
    """
    if shots <= 0:
        raise ValueError(f"shots must be positive, got {shots}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    if labels.ndim == 1:
        count = int(num_classes if num_classes is not None else labels.max() + 1)
        chosen = []
        for c in range(count):
            rows = np.flatnonzero(labels == c)
            if len(rows) < shots:
                raise ValueError(f"class {c} has {len(rows)} training image(s), fewer than {shots} shots")
            chosen.append(rng.choice(rows, size=shots, replace=False))
        return np.sort(np.concatenate(chosen))
    positives = labels.astype(bool)
    selected = np.zeros(len(labels), dtype=bool)
    for c in np.argsort(positives.sum(axis=0), kind="stable"):  # rarest classes first
        need = shots - int(positives[selected, c].sum())
        candidates = np.flatnonzero(positives[:, c] & ~selected)
        if need > len(candidates):
            raise ValueError(f"class {c} has {int(positives[:, c].sum())} training image(s), fewer than {shots} shots")
        if need > 0:
            selected[rng.choice(candidates, size=need, replace=False)] = True
    return np.flatnonzero(selected)


def fit_linear_probe(
    features: torch.Tensor, targets: torch.Tensor, num_classes: int, C: float = 1.0, max_iter: int = 500
) -> torch.nn.Linear:
    """L2-penalised logistic regression on features (scikit-learn's objective with `C`), fitted with L-BFGS.

    Args:
        features: `(num_images, dim)` features (used as given; normalise them first).
        targets: int64 `(num_images,)` class ids (multinomial) or multi-hot `(num_images, num_classes)` (one binary
            problem per class).
        num_classes: Number of classes.
        C: Inverse regularisation strength.
        max_iter: L-BFGS iterations.

    Returns:
        A float64 `nn.Linear(dim, num_classes)` whose outputs are the logits.
    """
    if C <= 0:
        raise ValueError(f"C must be positive, got {C}")
    x = features.double()
    probe = torch.nn.Linear(x.shape[1], num_classes, dtype=torch.float64)
    torch.nn.init.zeros_(probe.weight)
    torch.nn.init.zeros_(probe.bias)
    multilabel = targets.ndim == 2
    y = targets.double() if multilabel else targets.long()
    optimizer = torch.optim.LBFGS(
        probe.parameters(), lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = probe(x)
        if multilabel:
            loss = F.binary_cross_entropy_with_logits(logits, y, reduction="sum")
        else:
            loss = F.cross_entropy(logits, y, reduction="sum")
        loss = loss + probe.weight.pow(2).sum() / (2 * C)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return probe.requires_grad_(False)


def fit_prototypes(features: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Unit-norm class means `(num_classes, dim)` of unit-norm features (a class's positives, for multi-label)."""
    x = F.normalize(features.double(), dim=-1)
    onehot = targets.double() if targets.ndim == 2 else F.one_hot(targets.long(), num_classes).double()
    return F.normalize(onehot.T @ x, dim=-1)


@dataclass
class FewShotRun:
    """One (shots, seed) run.

    Attributes:
        shots: Support images per class.
        seed: Seed of the support draw.
        score: Top-1 accuracy (single-label) or mAP (multi-label) on the test set.
        support: Training rows of the support set.
    """

    shots: int
    seed: int
    score: float
    support: list[int]


def _score(logits: torch.Tensor, test_labels: np.ndarray) -> float:
    if test_labels.ndim == 2:
        return float(np.nanmean(multilabel_average_precision(logits.double(), test_labels)))
    return float((logits.argmax(dim=-1).numpy() == test_labels).mean())


def few_shot_runs(
    train_embeds: torch.Tensor,
    train_labels: np.ndarray,
    test_embeds: torch.Tensor,
    test_labels: np.ndarray,
    num_classes: int,
    *,
    shots: Sequence[int] = (1,),
    seeds: Iterable[int] = range(10),
    classifier: FewShotClassifier = "linear",
    C: float = 1.0,
    supports: dict[tuple[int, int], np.ndarray] | None = None,
) -> list[FewShotRun]:
    """Fit a k-shot classifier per (shots, seed) on frozen embeddings and score it on the test set.

    Args:
        train_embeds: `(num_train, dim)` embeddings of the training pool (or of the support rows only, with
            `supports` giving their positions in it).
        train_labels: Labels of the rows of `train_embeds`.
        test_embeds: `(num_test, dim)` test embeddings.
        test_labels: int `(num_test,)` class ids or multi-hot `(num_test, num_classes)`.
        num_classes: Number of classes.
        shots: Support sizes.
        seeds: Seeds of the support draws.
        classifier: `"linear"` or `"prototype"`.
        C: Inverse regularisation strength of the linear probe.
        supports: Precomputed support rows per (shots, seed) (default: :func:`sample_support`).

    Returns:
        One :class:`FewShotRun` per (shots, seed).
    """
    if classifier not in ("linear", "prototype"):
        raise ValueError(f"unknown classifier {classifier!r}; use linear or prototype")
    train = F.normalize(train_embeds.double(), dim=-1)
    test = F.normalize(test_embeds.double(), dim=-1)
    runs = []
    for k in shots:
        for seed in seeds:
            rows = (supports or {}).get((k, seed))
            if rows is None:
                rows = sample_support(train_labels, k, seed, num_classes)
            targets = torch.as_tensor(np.asarray(train_labels)[rows])
            if classifier == "linear":
                logits = fit_linear_probe(train[rows], targets, num_classes, C)(test)
            else:
                logits = test @ fit_prototypes(train[rows], targets, num_classes).T
            runs.append(FewShotRun(int(k), int(seed), _score(logits, np.asarray(test_labels)), rows.tolist()))
            logger.info("%d-shot seed %d: %.4f", k, seed, runs[-1].score)
    return runs


def summarise_runs(runs: Sequence[FewShotRun]) -> dict[int, dict[str, float | int]]:
    """Shots -> mean, std (over seeds, ddof 1; 0 for one seed), min, max and number of seeds."""
    out: dict[int, dict[str, float | int]] = {}
    for k in sorted({run.shots for run in runs}):
        scores = np.array([run.score for run in runs if run.shots == k])
        std = float(scores.std(ddof=1)) if len(scores) > 1 else 0.0
        out[k] = {"mean": float(scores.mean()), "std": std, "min": float(scores.min()), "max": float(scores.max()),
                  "seeds": len(scores)}  # fmt: skip
    return out
