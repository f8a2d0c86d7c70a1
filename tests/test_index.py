"""EmbeddingIndex: exact search against brute force, approximate recall, persistence, errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from datasets import Dataset

from graft_hf.index import ApproximateIndexConfig, EmbeddingIndex, SearchResult


def clustered(n: int, dim: int, num_clusters: int, seed: int, noise: float = 0.3) -> np.ndarray:
    """Unit vectors around random cluster centres (a stand-in for real embedding archives)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_clusters, dim))
    x = centres[rng.integers(0, num_clusters, n)] / np.sqrt(dim) + noise * rng.standard_normal((n, dim)) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(gallery: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 cosine, stable sort by score desc then row."""
    g = gallery.astype(np.float64) / np.linalg.norm(gallery, axis=1, keepdims=True)
    q = queries.astype(np.float64) / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = q @ g.T
    rows = np.stack([sorted(range(len(g)), key=lambda j, s=s: (-s[j], j))[:k] for s in scores])
    return np.take_along_axis(scores, rows, 1), rows


def make_index(n: int = 50, dim: int = 8, seed: int = 0, **kwargs) -> tuple[EmbeddingIndex, np.ndarray]:
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, dim)).astype(np.float32) * 3  # not normalised on purpose
    index = EmbeddingIndex.from_embeddings(
        emb,
        tile_id=[f"t{i}" for i in range(n)],
        lat=np.linspace(40, 50, n),
        lon=np.linspace(-100, -90, n),
        date=[f"2020-01-{1 + i % 28:02d}" for i in range(n)],
        metadata={"sensor": ["naip"] * n, "gsd": [1.0] * n},
        **kwargs,
    )
    return index, emb


@pytest.mark.parametrize("chunk_size", [7, 10, 50, 1000])
@pytest.mark.parametrize("k", [1, 10, 50])
def test_exact_search_equals_brute_force(chunk_size, k):
    index, emb = make_index(chunk_size=chunk_size)
    queries = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    scores, rows = index.search_arrays(queries, k=k)
    ref_scores, ref_rows = brute_force(emb, queries, k)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    assert scores.dtype == np.float32 and rows.dtype == np.int64


def test_exact_search_chunk_and_query_blocks_large_batch():
    # 1100 queries cross the 1024-query block and the score-buffer bound shrinks the gallery chunk
    data = clustered(4100, 16, 20, seed=2)
    gallery, queries = data[:3000], data[3000:]
    index = EmbeddingIndex.from_embeddings(gallery, chunk_size=1000)
    scores, rows = index.search_arrays(torch.from_numpy(queries), k=5)
    full = torch.from_numpy(queries) @ torch.from_numpy(gallery).T
    ref = torch.topk(full, 5, dim=1)
    np.testing.assert_array_equal(rows, ref.indices.numpy())
    np.testing.assert_allclose(scores, ref.values.numpy(), atol=1e-5)


def test_ties_are_ordered_by_row():
    emb = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (6, 1))
    index = EmbeddingIndex.from_embeddings(emb, chunk_size=4)
    _, rows = index.search_arrays(np.array([1.0, 0.0]), k=6)
    assert rows.tolist() == [[0, 1, 2, 3, 4, 5]]


def test_results_carry_metadata():
    index, emb = make_index()
    hits = index.search(emb[7], k=3)  # a 1-D query gives one list
    assert isinstance(hits, list) and isinstance(hits[0], SearchResult)
    top = hits[0]
    assert (top.row, top.tile_id) == (7, "t7")
    assert top.score == pytest.approx(1.0, abs=1e-5)
    assert top.lat == pytest.approx(np.linspace(40, 50, 50)[7]) and top.lon == pytest.approx(
        np.linspace(-100, -90, 50)[7]
    )
    assert top.date == "2020-01-08" and top.extra == {"sensor": "naip", "gsd": 1.0}
    batch = index.search(emb[[3, 4]], k=2)
    assert [h[0].tile_id for h in batch] == ["t3", "t4"]


def test_from_dataset_normalises_and_maps_pairs_columns():
    rng = np.random.default_rng(4)
    emb = rng.standard_normal((20, 6)) * 5
    ds = Dataset.from_dict(
        {
            "vec": emb.tolist(),  # variable-length float64 lists
            "tile_id": [f"x{i}" for i in range(20)],
            "center_lat": rng.uniform(-10, 10, 20).tolist(),
            "center_lon": rng.uniform(-10, 10, 20).tolist(),
            "acquisition_date": ["2014-06-01"] * 20,
        }
    ).select(range(19, -1, -1))  # an index-mapped (reversed) view
    index = EmbeddingIndex.from_dataset(ds, embedding_column="vec")
    np.testing.assert_allclose(index.embeddings.norm(dim=1).numpy(), 1.0, atol=1e-6)
    hit = index.search(emb[19], k=1)[0]
    assert (hit.row, hit.tile_id, hit.date) == (0, "x19", "2014-06-01")
    assert hit.lat == pytest.approx(ds[0]["center_lat"])
    assert index.to_dataset().features["vec"].length == 6


def test_save_load_round_trip(tmp_path):
    index, emb = make_index()
    index.save_to_disk(tmp_path / "idx")
    loaded = EmbeddingIndex.load_from_disk(tmp_path / "idx")
    assert len(loaded) == 50 and loaded.dim == 8 and not loaded.has_approximate_index
    torch.testing.assert_close(loaded.embeddings, index.embeddings)
    assert loaded.search(emb[:2], k=4) == index.search(emb[:2], k=4)
    assert loaded.to_dataset().column_names == index.to_dataset().column_names


def test_approximate_save_load_round_trip(tmp_path):
    pytest.importorskip("faiss")
    data = clustered(2010, 16, 10, seed=5)
    gallery, q = data[:2000], data[2000:]
    index = EmbeddingIndex.from_embeddings(gallery, tile_id=[str(i) for i in range(2000)])
    index.build_approximate(ApproximateIndexConfig(nlist=16, nprobe=4))
    index.save_to_disk(tmp_path / "idx")
    assert (tmp_path / "idx" / "faiss.index").is_file()
    loaded = EmbeddingIndex.load_from_disk(tmp_path / "idx")
    assert loaded.has_approximate_index and loaded.approximate_config == index.approximate_config
    for a, b in zip(loaded.search_approximate_arrays(q, k=5), index.search_approximate_arrays(q, k=5)):
        np.testing.assert_array_equal(a, b)
    assert loaded.search_approximate(q[0], k=2)[0].tile_id == index.search_approximate(q[0], k=2)[0].tile_id
    # saving without an approximate index removes a stale one
    EmbeddingIndex.load_from_disk(tmp_path / "idx", load_approximate=False).save_to_disk(tmp_path / "idx")
    assert not (tmp_path / "idx" / "faiss.index").exists()


def recall_at_10(approx_rows: np.ndarray, exact_rows: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / b.size for a, b in zip(approx_rows, exact_rows)]))


@pytest.mark.parametrize(
    "config", [ApproximateIndexConfig(kind="ivf_flat", nprobe=8), ApproximateIndexConfig(kind="hnsw", hnsw_m=16)]
)
def test_approximate_recall_on_clustered_data(config):
    pytest.importorskip("faiss")
    data = clustered(20_100, 32, 50, seed=7)
    gallery, queries = data[:20_000], data[20_000:]  # queries from the same clusters, not in the gallery
    index = EmbeddingIndex.from_embeddings(gallery).build_approximate(config)
    _, exact = index.search_arrays(queries, k=10)
    scores, approx = index.search_approximate_arrays(queries, k=10)
    assert recall_at_10(approx, exact) >= 0.95
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    if config.kind == "ivf_flat":
        assert index.faiss_index.nlist == 256  # auto: next power of two above sqrt(20000) = 141
        assert index.faiss_index.ntotal == 20_000
        # visiting every list is exhaustive, hence exact
        _, full = index.search_approximate_arrays(queries, k=10, nprobe=128)
        assert recall_at_10(full, exact) == 1.0


def test_errors():
    index, _ = make_index(n=5)
    with pytest.raises(ValueError, match="exceeds the number of indexed items"):
        index.search(np.ones(8), k=6)
    with pytest.raises(ValueError, match="positive"):
        index.search(np.ones(8), k=0)
    with pytest.raises(ValueError, match=r"shape \(num_queries, 8\)"):
        index.search(np.ones(7), k=1)
    with pytest.raises(ValueError, match="non-empty"):
        EmbeddingIndex.from_embeddings(np.zeros((0, 8)))
    with pytest.raises(ValueError, match="non-zero"):
        EmbeddingIndex.from_embeddings(np.zeros((3, 8)))
    with pytest.raises(ValueError, match="has 2 values for 5"):
        EmbeddingIndex.from_embeddings(np.ones((5, 8)), tile_id=["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        EmbeddingIndex.from_dataset(Dataset.from_dict({"embedding": []}))
    with pytest.raises(ValueError, match="no embedding column"):
        EmbeddingIndex.from_dataset(Dataset.from_dict({"x": [[1.0]]}))
    with pytest.raises(ValueError, match="not L2-normalised"):
        EmbeddingIndex(Dataset.from_dict({"embedding": [[3.0, 4.0]]}))
    with pytest.raises(RuntimeError, match="build_approximate"):
        index.search_approximate(np.ones(8), k=1)
    with pytest.raises(FileNotFoundError, match="not a saved EmbeddingIndex"):
        EmbeddingIndex.load_from_disk("/nonexistent/index")
    with pytest.raises(ValueError, match="kind must be"):
        ApproximateIndexConfig(kind="lsh")


def test_missing_faiss_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # what an environment without faiss looks like to import
    index, _ = make_index(n=5)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        index.build_approximate()
