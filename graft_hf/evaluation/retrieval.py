"""Ranking metrics: average precision, mAP@k and recall@k of text-to-image (or any) retrieval.

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
sort per query gives all of them at once, with the convention above.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

ArrayLike = np.ndarray | torch.Tensor

# Bound on (queries x gallery) float64 elements materialised at once (128 MiB).
_MAX_ELEMENTS = 1 << 24

__all__ = [
    "ArrayLike",
    "RetrievalMetrics",
    "average_precision",
    "class_retrieval_metrics",
    "rank_order",
    "recall_at_k",
    "retrieval_metrics",
    "single_positive_recall",
    "text_to_image_retrieval",
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
    if pos.numel() and (pos.min() < 0 or pos.max() >= s.shape[1]):
        raise ValueError(f"positives must lie in [0, {s.shape[1]}), got range [{int(pos.min())}, {int(pos.max())}]")
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
