"""Retrieval metrics (mAP, recall@k, text-to-image, class retrieval) against slow, obvious float64 references written
with Python loops, plus hand-made cases.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graft_hf.evaluation.retrieval import (
    average_precision,
    class_retrieval_metrics,
    rank_order,
    recall_at_k,
    retrieval_metrics,
    single_positive_recall,
    text_to_image_retrieval,
)
from tests.helpers.ranking import assert_close_nan, ref_ap, ref_order, ref_recall


def random_case(seed: int, q: int = 7, n: int = 53, ties: bool = False):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, (q, n)).astype(np.float64) if ties else rng.standard_normal((q, n))
    rel = (rng.random((q, n)) < 0.2).astype(np.int64)
    rel[0] = 0  # one query with no relevant item
    return scores, rel


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("k", [None, 1, 5, 20, 100])
def test_average_precision_matches_reference(seed, ties, k):
    scores, rel = random_case(seed, ties=ties)
    got = average_precision(scores, rel, k=k)
    want = [ref_ap(list(s), list(r), k) for s, r in zip(scores, rel)]
    assert_close_nan(got, want)
    assert math.isnan(got[0])


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("k", [1, 3, 10, 1000])
def test_recall_at_k_matches_reference(seed, ties, k):
    scores, rel = random_case(seed, ties=ties)
    got = recall_at_k(torch.from_numpy(scores), torch.from_numpy(rel).bool(), k)
    assert_close_nan(got, [ref_recall(list(s), list(r), k) for s, r in zip(scores, rel)])


def test_hand_made_average_precision():
    # ranking: rel, not, rel, not, rel -> AP = (1/1 + 2/3 + 3/5) / 3
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    rel = [1, 0, 1, 0, 1]
    assert average_precision(scores, rel) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # truncated at 2: only rank 1 contributes, normaliser min(R=3, k=2) = 2
    assert average_precision(scores, rel, k=2) == pytest.approx(0.5)
    # perfect and worst rankings
    assert average_precision([3.0, 2.0, 1.0, 0.0], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert average_precision([3.0, 2.0, 1.0, 0.0], [0, 0, 1, 1]) == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert average_precision([3.0, 2.0, 1.0, 0.0], [0, 0, 1, 1], k=2) == pytest.approx(0.0)
    # perfect top-k with more relevant items than k scores 1.0 thanks to the min(R, k) normaliser
    assert average_precision([5.0, 4.0, 3.0, 2.0, 1.0], [1, 1, 1, 1, 0], k=2) == pytest.approx(1.0)


def test_ties_are_broken_by_index():
    # all scores equal: the gallery order decides, so the relevant item at index 0 ranks first
    assert average_precision([1.0, 1.0, 1.0], [1, 0, 0]) == pytest.approx(1.0)
    assert average_precision([1.0, 1.0, 1.0], [0, 0, 1]) == pytest.approx(1 / 3)
    assert rank_order(torch.tensor([[0.5, 1.0, 0.5, 1.0]])).tolist() == [[1, 3, 0, 2]]


def test_retrieval_metrics_bundle_and_means():
    scores, rel = random_case(5, q=9, n=200)
    res = retrieval_metrics(scores, rel, map_ks=(100, 20), recall_ks=(1, 10), query_names=[f"q{i}" for i in range(9)])
    assert set(res.per_query) == {"mAP", "mAP@100", "mAP@20", "recall@1", "recall@10"}
    assert_close_nan(res.per_query["mAP@20"], average_precision(scores, rel, k=20))
    assert_close_nan(res.per_query["recall@10"], recall_at_k(scores, rel, 10))
    assert res.num_skipped == 1
    means = res.mean()
    assert means["mAP"] == pytest.approx(np.nanmean(average_precision(scores, rel)))
    assert res.per_class()["q3"]["mAP"] == pytest.approx(res.per_query["mAP"][3])
    assert res.num_relevant.tolist() == rel.sum(1).tolist()


def test_query_chunking_gives_same_result(monkeypatch):
    import graft_hf.evaluation.retrieval as m

    scores, rel = random_case(7, q=11, n=40)
    full = m.retrieval_metrics(scores, rel).per_query
    monkeypatch.setattr(m, "_MAX_ELEMENTS", 40 * 3)  # three queries per chunk
    chunked = m.retrieval_metrics(scores, rel).per_query
    for name in full:
        assert_close_nan(chunked[name], full[name])
    assert_close_nan(m.average_precision(scores, rel, k=5), average_precision(scores, rel, k=5))


def test_class_retrieval_protocol():
    # three classes along the axes, images near their class axis: perfect retrieval
    class_embeds = torch.eye(3, 4)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    image_embeds = torch.nn.functional.one_hot(labels, 4).float() + 0.01 * torch.randn(7, 4)
    res = class_retrieval_metrics(class_embeds, image_embeds, labels, classnames=["a", "b", "c"], map_ks=(2,))
    assert res.mean()["mAP"] == pytest.approx(1.0)
    assert res.per_class()["c"]["mAP@2"] == pytest.approx(1.0)
    assert res.num_relevant.tolist() == [2, 2, 3]
    # multi-hot labels give the same answer as ids
    multi = class_retrieval_metrics(class_embeds, image_embeds, torch.nn.functional.one_hot(labels, 3))
    assert_close_nan(multi.per_query["mAP"], res.per_query["mAP"])


def test_text_to_image_uses_cosine():
    text = torch.tensor([[1.0, 0.0]])
    # the second image has a larger dot product but smaller cosine
    images = torch.tensor([[1.0, 0.1], [5.0, 4.0]])
    res = text_to_image_retrieval(text, images, [[1, 0]], recall_ks=(1,))
    assert res.per_query["recall@1"][0] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scores": np.zeros((2, 0)), "relevance": np.zeros((2, 0))}, "empty"),
        ({"scores": np.zeros((2, 3)), "relevance": np.zeros((2, 4))}, "same shape"),
        ({"scores": np.array([[np.nan, 1.0]]), "relevance": np.array([[1, 0]])}, "NaN"),
        ({"scores": np.zeros((1, 2)), "relevance": np.array([[2, 0]])}, "binary"),
        ({"scores": np.zeros((1, 2)), "relevance": np.array([[1, 0]]), "k": 0}, "positive"),
    ],
)
def test_retrieval_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        average_precision(**kwargs)


def test_embedding_dim_mismatch_error():
    with pytest.raises(ValueError, match="dims differ"):
        text_to_image_retrieval(torch.zeros(2, 3), torch.zeros(5, 4), torch.zeros(2, 5))


def test_single_positive_recall_matches_reference_with_ties():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, (50, 12)).astype(np.float64)  # many ties
    positives = rng.integers(0, 12, 50)
    got = single_positive_recall(torch.from_numpy(scores), torch.from_numpy(positives), ks=(1, 3, 12))
    for k in (1, 3, 12):
        ref = np.mean([positives[q] in ref_order(list(scores[q]))[:k] for q in range(50)])
        assert got[f"recall@{k}"] == pytest.approx(ref)
        one_hot = np.eye(12)[positives]
        assert got[f"recall@{k}"] == pytest.approx(recall_at_k(scores, one_hot, k).mean())
    with pytest.raises(ValueError, match="lie in"):
        single_positive_recall(scores, np.full(50, 12))
    with pytest.raises(ValueError, match="one positive per query"):
        single_positive_recall(scores, positives[:3])
