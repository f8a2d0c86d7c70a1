"""Model-independent evaluation metrics: retrieval, single-label and multi-label classification.

Everything here works from scores and labels (``numpy`` arrays or ``torch`` tensors), so any model, teacher or
baseline is scored the same way. Computation runs in float64 on the CPU and results come back as ``numpy``.

Ranking convention (used by every ranking metric): items are ordered by score, highest first, and items with
equal scores keep their gallery order (stable sort, lower index first). Results are therefore deterministic,
including for ties; note that this differs from ``sklearn.metrics.average_precision_score``, which treats tied
scores as one threshold.

Average precision. For a query with ``R`` relevant items among ``N`` gallery items ranked as above, with
``rel(i)`` = 1 when the item at rank ``i`` is relevant and ``P(i)`` the precision of the first ``i`` items:

* ``AP = (1 / R) * sum_{i=1..N} P(i) rel(i)`` (mAP: average over all gallery items);
* ``AP@k = (1 / min(R, k)) * sum_{i=1..k} P(i) rel(i)`` (mAP@k, as in GRAFT and the usual retrieval
  literature): the normaliser ``min(R, k)`` makes a perfect top-k list score 1.0 even when ``R > k``.

Queries with no relevant item (``R = 0``) have undefined AP and recall: they get NaN per query and are left
out of the means (the number of such queries is reported by :class:`RetrievalMetrics`).

Why these are written here rather than taken from a library: the figures must be reproducible to the last digit
(reports are compared across runs and models, and a model with collapsed or quantised embeddings produces many
ties). ``sklearn.metrics.average_precision_score`` merges tied scores into one threshold and has no AP@k;
``torchmetrics``' retrieval metrics rank ties by ``torch.topk``/``argsort``, whose order for equal values is
unspecified and differs between devices; neither normalises AP@k by ``min(R, k)`` as GRAFT does. One stable
sort per query gives all of them at once, with the convention above. The confusion matrix here is also the one
behind the segmentation metrics (:mod:`graft_hf.evaluation.segmentation_metrics`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

ArrayLike = np.ndarray | torch.Tensor

# Bound on (queries x gallery) float64 elements materialised at once (128 MiB).
_MAX_ELEMENTS = 1 << 24

__all__ = [
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


def _to_tensor(x: ArrayLike, dtype: torch.dtype, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=dtype)
    if isinstance(x, np.ndarray | list | tuple):
        return torch.as_tensor(np.asarray(x), dtype=dtype)
    raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")


def _scores_and_relevance(scores: ArrayLike, relevance: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, bool]:
    s = _to_tensor(scores, torch.float64, "scores")
    r = _to_tensor(relevance, torch.float64, "relevance")
    squeeze = s.ndim == 1
    if squeeze:
        s, r = s[None], r[None]
    if s.ndim != 2:
        raise ValueError(f"scores must have shape (num_queries, num_items) or (num_items,), got {tuple(s.shape)}")
    if s.shape != r.shape:
        raise ValueError(f"scores {tuple(s.shape)} and relevance {tuple(r.shape)} must have the same shape")
    if s.shape[1] == 0:
        raise ValueError("the gallery is empty (num_items == 0); nothing to rank")
    if torch.isnan(s).any():
        raise ValueError("scores contain NaN; ranking is undefined (check the embeddings for NaN/inf)")
    if not torch.all((r == 0) | (r == 1)):
        raise ValueError("relevance must be binary (0/1 or bool)")
    return s, r, squeeze


def rank_order(scores: ArrayLike) -> torch.Tensor:
    """Ranks items by score, highest first; ties keep the lower index first.

    Args:
        scores: Scores of shape `(num_queries, num_items)` or `(num_items,)`.

    Returns:
        int64 indices of the same shape: `order[q, i]` is the gallery index at rank `i` (0-based) for query `q`.
    """
    s = _to_tensor(scores, torch.float64, "scores")
    return torch.sort(s, dim=-1, descending=True, stable=True).indices


def _check_k(k: int, name: str = "k") -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")


def _sorted_relevance(s: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Relevance in rank order, shape `(num_queries, num_items)` float64."""
    order = torch.sort(s, dim=-1, descending=True, stable=True).indices
    return torch.gather(r, 1, order)


def _ap_from_sorted(rel_sorted: torch.Tensor, num_relevant: torch.Tensor, k: int | None) -> torch.Tensor:
    if k is not None:
        rel_sorted = rel_sorted[:, :k]
    ranks = torch.arange(1, rel_sorted.shape[1] + 1, dtype=torch.float64)
    precision = torch.cumsum(rel_sorted, dim=1) / ranks  # P(i) for i = 1..k
    total = (precision * rel_sorted).sum(dim=1)
    denom = num_relevant if k is None else torch.clamp(num_relevant, max=k)
    return torch.where(num_relevant > 0, total / denom.clamp(min=1), torch.full_like(total, float("nan")))


def _recall_from_sorted(rel_sorted: torch.Tensor, num_relevant: torch.Tensor, k: int) -> torch.Tensor:
    hits = rel_sorted[:, :k].sum(dim=1)
    return torch.where(num_relevant > 0, hits / num_relevant.clamp(min=1), torch.full_like(hits, float("nan")))


def _query_slices(num_queries: int, num_items: int) -> Iterator[slice]:
    """Blocks of queries whose `(queries, items)` float64 buffers stay under `_MAX_ELEMENTS`."""
    step = max(1, _MAX_ELEMENTS // max(num_items, 1))
    for start in range(0, num_queries, step):
        yield slice(start, start + step)


def _per_query(
    scores: ArrayLike, relevance: ArrayLike, metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> np.ndarray:
    """`metric(relevance in rank order, num_relevant)` for every query, block by block (0-d for 1-D input)."""
    s, r, squeeze = _scores_and_relevance(scores, relevance)
    out = torch.empty(s.shape[0], dtype=torch.float64)
    for sl in _query_slices(*s.shape):
        out[sl] = metric(_sorted_relevance(s[sl], r[sl]), r[sl].sum(dim=1))
    result = out.numpy()
    return result[0] if squeeze else result


def average_precision(scores: ArrayLike, relevance: ArrayLike, k: int | None = None) -> np.ndarray:
    """Average precision per query, over the whole ranking or truncated at `k`.

    `AP = (1/R) sum_i P(i) rel(i)`; `AP@k = (1/min(R, k)) sum_{i<=k} P(i) rel(i)` (see the module docstring).

    Args:
        scores: Similarities of shape `(num_queries, num_items)` (or `(num_items,)` for one query).
        relevance: Binary relevance of the same shape.
        k: Truncation depth; None for the full ranking. `k` larger than the gallery means the full ranking.

    Returns:
        float64 array `(num_queries,)` (a 0-d array for 1-D input); NaN for queries without relevant items.
    """
    if k is not None:
        _check_k(k)
    return _per_query(scores, relevance, lambda rel_sorted, num_relevant: _ap_from_sorted(rel_sorted, num_relevant, k))


def recall_at_k(scores: ArrayLike, relevance: ArrayLike, k: int) -> np.ndarray:
    """Fraction of a query's relevant items found in its top `k`: `|relevant in top-k| / R`.

    For queries with a single relevant item this equals the "hit rate" used in caption retrieval.

    Args:
        scores: Similarities of shape `(num_queries, num_items)` (or `(num_items,)`).
        relevance: Binary relevance of the same shape.
        k: Cut-off depth (positive).

    Returns:
        float64 array `(num_queries,)`; NaN for queries without relevant items.
    """
    _check_k(k)
    return _per_query(
        scores, relevance, lambda rel_sorted, num_relevant: _recall_from_sorted(rel_sorted, num_relevant, k)
    )


def single_positive_recall(scores: ArrayLike, positives: ArrayLike, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Mean recall@k of queries that each have exactly one relevant gallery item, given by its index.

    The positive's rank follows the ranking convention of this module: items scoring higher, and items scoring
    the same with a lower gallery index, come before it. The result equals the mean of :func:`recall_at_k` with
    one-hot relevance, without building the relevance matrix or sorting (one comparison per gallery item).

    Args:
        scores: Similarities `(num_queries, num_items)`, e.g. image embeddings against a bank of ground embeddings.
        positives: Gallery index of each query's relevant item, `(num_queries,)`.
        ks: Cut-off depths.

    Returns:
        `{"recall@1": ..., "recall@5": ...}` (NaN when there are no queries).
    """
    s = _to_tensor(scores, torch.float64, "scores")
    pos = _to_tensor(positives, torch.int64, "positives").reshape(-1)
    if s.ndim != 2 or pos.shape[0] != s.shape[0]:
        raise ValueError(
            f"scores must be (num_queries, num_items) with one positive per query, got scores {tuple(s.shape)} "
            f"and {pos.shape[0]} positives"
        )
    _check_class_range(pos, "positives", s.shape[1])
    if torch.isnan(s).any():
        raise ValueError("scores contain NaN; ranking is undefined (check the embeddings for NaN/inf)")
    for k in ks:
        _check_k(k)
    ranks = torch.empty(s.shape[0], dtype=torch.int64)
    columns = torch.arange(s.shape[1])
    for sl in _query_slices(*s.shape):
        target = s[sl].gather(1, pos[sl, None])  # (chunk, 1)
        before = (s[sl] > target) | ((s[sl] == target) & (columns[None, :] < pos[sl, None]))
        ranks[sl] = before.sum(dim=1)  # 0-based rank of the positive
    if not len(ranks):
        return {f"recall@{k}": float("nan") for k in ks}
    return {f"recall@{k}": float((ranks < k).to(torch.float64).mean()) for k in ks}


@dataclass
class RetrievalMetrics:
    """Per-query retrieval metrics and their means.

    Attributes:
        per_query: Metric name (`"mAP"`, `"mAP@100"`, `"recall@10"`, ...) -> float64 array `(num_queries,)`,
            NaN for queries without relevant items.
        num_relevant: Relevant items per query, int64 `(num_queries,)`.
        query_names: Optional names of the queries (class names in the class-prompt protocol).
    """

    per_query: dict[str, np.ndarray]
    num_relevant: np.ndarray
    query_names: list[str] | None = None

    @property
    def num_queries(self) -> int:
        return int(self.num_relevant.shape[0])

    @property
    def num_skipped(self) -> int:
        """Queries left out of the means because they have no relevant item."""
        return int((self.num_relevant == 0).sum())

    def mean(self) -> dict[str, float]:
        """Mean of each metric over the queries that have at least one relevant item."""
        valid = self.num_relevant > 0
        if not valid.any():
            return {name: float("nan") for name in self.per_query}
        return {name: float(values[valid].mean()) for name, values in self.per_query.items()}

    def per_class(self) -> dict[str, dict[str, float]]:
        """Query name -> {metric -> value}; queries are named `"0"`, `"1"`, ... when no names were given."""
        names = self.query_names or [str(i) for i in range(self.num_queries)]
        return {n: {m: float(v[i]) for m, v in self.per_query.items()} for i, n in enumerate(names)}


def retrieval_metrics(
    scores: ArrayLike,
    relevance: ArrayLike,
    map_ks: Sequence[int] = (100, 20),
    recall_ks: Sequence[int] = (1, 5, 10),
    query_names: Sequence[str] | None = None,
) -> RetrievalMetrics:
    """Computes mAP, mAP@k and recall@k for every query with a single sort per query.

    Args:
        scores: Similarities of shape `(num_queries, num_items)`.
        relevance: Binary relevance of the same shape.
        map_ks: Depths for truncated AP (`"mAP@k"`).
        recall_ks: Depths for recall (`"recall@k"`).
        query_names: Optional names, one per query.

    Returns:
        A :class:`RetrievalMetrics` with keys `"mAP"`, `"mAP@k"` for each `map_ks`, `"recall@k"` for each
        `recall_ks`.
    """
    for k in (*map_ks, *recall_ks):
        _check_k(k)
    s, r, _ = _scores_and_relevance(scores, relevance)
    if query_names is not None and len(query_names) != s.shape[0]:
        raise ValueError(f"got {len(query_names)} query_names for {s.shape[0]} queries")
    names = ["mAP", *(f"mAP@{k}" for k in map_ks), *(f"recall@{k}" for k in recall_ks)]
    per_query = {name: torch.empty(s.shape[0], dtype=torch.float64) for name in names}
    num_relevant = r.sum(dim=1)
    for sl in _query_slices(*s.shape):
        rel_sorted, n_rel = _sorted_relevance(s[sl], r[sl]), num_relevant[sl]
        per_query["mAP"][sl] = _ap_from_sorted(rel_sorted, n_rel, None)
        for k in map_ks:
            per_query[f"mAP@{k}"][sl] = _ap_from_sorted(rel_sorted, n_rel, k)
        for k in recall_ks:
            per_query[f"recall@{k}"][sl] = _recall_from_sorted(rel_sorted, n_rel, k)
    result = RetrievalMetrics(
        per_query={name: v.numpy() for name, v in per_query.items()},
        num_relevant=num_relevant.to(torch.int64).numpy(),
        query_names=list(query_names) if query_names is not None else None,
    )
    if result.num_skipped:
        logger.warning("%d of %d queries have no relevant item; left out of the means", result.num_skipped, len(s))
    return result


def _cosine_scores(query_embeds: ArrayLike, gallery_embeds: ArrayLike) -> torch.Tensor:
    q = _to_tensor(query_embeds, torch.float32, "query embeddings")
    g = _to_tensor(gallery_embeds, torch.float32, "gallery embeddings")
    if q.ndim != 2 or g.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (count, dim); got {tuple(q.shape)} and {tuple(g.shape)}")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"embedding dims differ: queries have dim {q.shape[1]}, gallery has dim {g.shape[1]}")
    return F.normalize(q, dim=-1) @ F.normalize(g, dim=-1).T


def text_to_image_retrieval(
    text_embeds: ArrayLike,
    image_embeds: ArrayLike,
    relevance: ArrayLike,
    map_ks: Sequence[int] = (100, 20),
    recall_ks: Sequence[int] = (1, 5, 10),
    query_names: Sequence[str] | None = None,
) -> RetrievalMetrics:
    """Ranks a gallery of image embeddings by cosine similarity to each text embedding and scores it.

    Args:
        text_embeds: Query embeddings `(num_queries, dim)` (need not be normalised).
        image_embeds: Gallery embeddings `(num_images, dim)` (need not be normalised).
        relevance: Binary `(num_queries, num_images)`.
        map_ks: Depths for truncated AP.
        recall_ks: Depths for recall.
        query_names: Optional names, one per query.

    Returns:
        A :class:`RetrievalMetrics`.
    """
    return retrieval_metrics(_cosine_scores(text_embeds, image_embeds), relevance, map_ks, recall_ks, query_names)


def class_retrieval_metrics(
    class_embeds: ArrayLike,
    image_embeds: ArrayLike,
    labels: ArrayLike,
    classnames: Sequence[str] | None = None,
    map_ks: Sequence[int] = (100, 20),
    recall_ks: Sequence[int] = (1, 5, 10),
) -> RetrievalMetrics:
    """Class-prompt retrieval: query = a class's text embedding, relevant = the images of that class.

    Args:
        class_embeds: One embedding per class `(num_classes, dim)`, e.g. a zero-shot classifier's weights.
        image_embeds: Gallery embeddings `(num_images, dim)`.
        labels: Integer class ids `(num_images,)` (single-label) or multi-hot `(num_images, num_classes)`.
        classnames: Optional class names for :meth:`RetrievalMetrics.per_class`.
        map_ks: Depths for truncated AP.
        recall_ks: Depths for recall.

    Returns:
        A :class:`RetrievalMetrics` with one query per class.
    """
    num_classes = int(class_embeds.shape[0])
    lab = _to_tensor(labels, torch.int64, "labels")
    if lab.ndim == 1:
        if lab.numel() and (lab.min() < 0 or lab.max() >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes}), got range [{lab.min()}, {lab.max()}]")
        relevance = F.one_hot(lab, num_classes).T
    elif lab.ndim == 2 and lab.shape[1] == num_classes:
        relevance = lab.T
    else:
        raise ValueError(
            f"labels must be (num_images,) ids or (num_images, {num_classes}) multi-hot, got {tuple(lab.shape)}"
        )
    return retrieval_metrics(_cosine_scores(class_embeds, image_embeds), relevance, map_ks, recall_ks, classnames)


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
