#!/usr/bin/env python
"""Benchmark exact vs approximate search of an EmbeddingIndex.

Measures, for single queries asking for the top 10:
  * p50 latency of exact search (chunked matrix product + top-k),
  * p50 latency of approximate search (faiss IVF-Flat by default),
  * recall@10 of approximate against exact,
  * index build time, and the end-to-end latency with result records (metadata lookup).

The gallery is synthetic: random but clustered unit vectors built to resemble real CLIP-space embeddings, not
real embeddings. Each vector is `mu + a * super[s] + b * sub[c] + noise`, normalised, with one shared mean
direction `mu` (real CLIP embeddings share one: random pairs have cosine ~0.4), 64 super-clusters (land-cover
types), 20,000 sub-clusters (places), and isotropic noise. The script prints the resulting random-pair and
nearest-neighbour cosines so the difficulty is visible. Approximate-search recall depends on this structure.

Usage:
    python scripts/bench_search.py                 # 1M x 512
    python scripts/bench_search.py --quick         # 100k x 512
    python scripts/bench_search.py --n 250000 --nprobe 8 --json out.json
"""

import argparse
import json
import logging
import os
import platform
import time
from dataclasses import asdict
from typing import Literal

import numpy as np
import torch

from graft_hf.config import config_dataclass, require
from graft_hf.index import ApproximateIndexConfig, EmbeddingIndex


@config_dataclass
class BenchConfig:
    """What the search benchmark measures.

    Attributes:
        n: Gallery size.
        dim: Embedding dimension.
        k: Hits per query.
        num_queries: Queries drawn (from the gallery's distribution, not in it).
        num_timed: Single-query searches timed per figure.
        kind: Approximate index: `ivf_flat` or `hnsw`.
        nlist: IVF lists (default: next power of two above sqrt(n)).
        nprobe: IVF lists visited per query (see the sweep).
        hnsw_m: HNSW neighbours per node.
        ef_search: HNSW query-time beam width.
        num_super: Super-clusters (land-cover types) of the synthetic data.
        num_sub: Sub-clusters (places) of the synthetic data.
        weights: Weights of the super-cluster, sub-cluster and noise terms.
        seed: Seed of the synthetic data and the IVF training sample.
        json: Write the figures to this JSON file.
    """

    n: int = 1_000_000
    dim: int = 512
    k: int = 10
    num_queries: int = 200
    num_timed: int = 100
    kind: Literal["ivf_flat", "hnsw"] = "ivf_flat"
    nlist: int | None = None
    nprobe: int = 8
    hnsw_m: int = 32
    ef_search: int = 64
    num_super: int = 64
    num_sub: int = 20_000
    weights: tuple[float, float, float] = (0.8, 0.6, 0.8)
    seed: int = 0
    json: str | None = None

    def validate_sizes(self) -> None:
        for name in ("n", "dim", "k", "num_queries", "num_timed", "nprobe", "hnsw_m", "ef_search"):
            require(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        require(self.n > self.k, "n", f"the gallery must hold more than k={self.k} items, got {self.n}")


def clustered_embeddings(cfg: BenchConfig, m: int, rng: np.random.Generator, centres: dict) -> np.ndarray:
    """`m` unit vectors from the hierarchical mixture described in the module docstring."""
    w_super, w_sub, w_noise = cfg.weights
    sub = rng.integers(0, cfg.num_sub, m)
    x = rng.standard_normal((m, cfg.dim), dtype=np.float32)
    x *= w_noise / np.sqrt(cfg.dim)
    x += centres["mu"]
    x += w_super * centres["super"][centres["parent"][sub]]
    x += w_sub * centres["sub"][sub]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_data(cfg: BenchConfig) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(cfg.seed)

    def unit(a: np.ndarray) -> np.ndarray:
        return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)

    centres = {
        "mu": unit(rng.standard_normal(cfg.dim)),
        "super": unit(rng.standard_normal((cfg.num_super, cfg.dim))),
        "sub": unit(rng.standard_normal((cfg.num_sub, cfg.dim))),
        "parent": rng.integers(0, cfg.num_super, cfg.num_sub),
    }
    gallery = np.empty((cfg.n, cfg.dim), dtype=np.float32)
    step = 100_000
    for start in range(0, cfg.n, step):
        gallery[start : start + step] = clustered_embeddings(cfg, min(step, cfg.n - start), rng, centres)
    queries = clustered_embeddings(cfg, cfg.num_queries, rng, centres)  # same distribution, not in the gallery
    return gallery, queries


def p50_ms(fn, queries: np.ndarray, num_timed: int, warmup: int = 3) -> float:
    for i in range(warmup):
        fn(queries[i % len(queries)])
    times = []
    for i in range(num_timed):
        q = queries[i % len(queries)]
        t0 = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(e)) / len(e) for a, e in zip(approx, exact)]))


def _build_index(cfg: BenchConfig, out: dict) -> tuple[EmbeddingIndex, np.ndarray]:
    """The synthetic gallery as an EmbeddingIndex, and the queries."""
    t0 = time.perf_counter()
    gallery, queries = make_data(cfg)
    print(f"generated {cfg.n:,} x {cfg.dim} clustered float32 embeddings in {time.perf_counter() - t0:.1f}s")
    t0 = time.perf_counter()
    index = EmbeddingIndex.from_embeddings(
        gallery,
        tile_id=np.char.add("tile-", np.arange(cfg.n).astype(str)).tolist(),
        lat=np.random.default_rng(1).uniform(25, 49, cfg.n),
        lon=np.random.default_rng(2).uniform(-124, -67, cfg.n),
        date=["2020-06-01"] * cfg.n,
    )
    out["dataset_build_s"] = time.perf_counter() - t0
    gib = index.embeddings.nbytes / 2**30
    print(f"EmbeddingIndex (datasets.Dataset) built in {out['dataset_build_s']:.1f}s; gallery {gib:.2f} GiB")
    return index, queries


def _exact(index: EmbeddingIndex, queries: np.ndarray, cfg: BenchConfig, out: dict) -> np.ndarray:
    """How hard the data is (neighbour cosines) and exact-search latency; returns the exact top-k rows."""
    k = cfg.k
    exact_scores, exact_rows = index.search_arrays(queries, k=k + 1)
    sample = index.embeddings[:2000]
    out["random_pair_cosine"] = float((sample[:1000] @ sample[1000:].T).mean())
    out["nn1_cosine"] = float(exact_scores[:, 0].mean())
    out["nn10_cosine"] = float(exact_scores[:, k - 1].mean())
    out["gap_10th_11th"] = float((exact_scores[:, k - 1] - exact_scores[:, k]).mean())
    print(
        f"data: random-pair cosine {out['random_pair_cosine']:.3f}, query 1st/10th neighbour cosine "
        f"{out['nn1_cosine']:.3f}/{out['nn10_cosine']:.3f}, mean 10th-11th gap {out['gap_10th_11th']:.4f}"
    )
    out["exact_p50_ms"] = p50_ms(lambda q: index.search_arrays(q, k), queries, min(cfg.num_timed, 50))
    print(f"exact search, 1 query, top-{k}: p50 {out['exact_p50_ms']:.1f} ms")
    t0 = time.perf_counter()
    index.search_arrays(queries[:64], k)
    out["exact_batch64_ms_per_query"] = (time.perf_counter() - t0) * 1000 / 64
    print(f"exact search, batch of 64 queries: {out['exact_batch64_ms_per_query']:.2f} ms per query")
    return exact_rows[:, :k]


def _build_approximate(index: EmbeddingIndex, cfg: BenchConfig, out: dict) -> None:
    approx_cfg = ApproximateIndexConfig(
        kind=cfg.kind, nlist=cfg.nlist, nprobe=cfg.nprobe, hnsw_m=cfg.hnsw_m, ef_search=cfg.ef_search, seed=cfg.seed
    )
    t0 = time.perf_counter()
    index.build_approximate(approx_cfg)
    out["approx_build_s"] = time.perf_counter() - t0
    desc = (
        f"IVF-Flat nlist={index.faiss_index.nlist} nprobe={cfg.nprobe}"
        if cfg.kind == "ivf_flat"
        else f"HNSW M={cfg.hnsw_m} efSearch={cfg.ef_search}"
    )
    out["approx_index"] = desc
    print(f"approximate index ({desc}) built in {out['approx_build_s']:.1f}s")
    if cfg.kind == "ivf_flat":
        # >1 means queries land in larger-than-average lists (clustered data), so each probe scans more vectors
        out["ivf_imbalance_factor"] = float(index.faiss_index.invlists.imbalance_factor())
        print(f"IVF list imbalance factor {out['ivf_imbalance_factor']:.2f}")


def _approximate(
    index: EmbeddingIndex, queries: np.ndarray, exact_rows: np.ndarray, cfg: BenchConfig, out: dict
) -> None:
    """Approximate-search latency and recall against exact search (with an nprobe sweep for IVF)."""
    k = cfg.k
    out["approx_p50_ms"] = p50_ms(lambda q: index.search_approximate_arrays(q, k), queries, cfg.num_timed)
    _, approx_rows = index.search_approximate_arrays(queries, k)
    out["approx_recall_at_10"] = recall(approx_rows, exact_rows)
    print(
        f"approximate search, 1 query, top-{k}: p50 {out['approx_p50_ms']:.2f} ms, "
        f"recall@{k} {out['approx_recall_at_10']:.4f}"
    )
    out["approx_records_p50_ms"] = p50_ms(lambda q: index.search_approximate(q, k), queries, cfg.num_timed)
    print(
        "approximate search returning SearchResult records (tile_id, lat, lon, date): "
        f"p50 {out['approx_records_p50_ms']:.2f} ms"
    )
    if cfg.kind == "ivf_flat":
        sweep = {}
        for nprobe in (4, 8, 16, 32):
            lat = p50_ms(lambda q, p=nprobe: index.search_approximate_arrays(q, k, nprobe=p), queries, 50)
            _, rows = index.search_approximate_arrays(queries, k, nprobe=nprobe)
            sweep[nprobe] = {"p50_ms": lat, "recall_at_10": recall(rows, exact_rows)}
            print(f"  nprobe={nprobe:3d}: p50 {lat:.2f} ms, recall@{k} {sweep[nprobe]['recall_at_10']:.4f}")
        out["nprobe_sweep"] = sweep


def run(cfg: BenchConfig) -> dict:
    out: dict = {"config": asdict(cfg), "torch_threads": torch.get_num_threads(), "cpu": platform.processor()}
    out["load_average_start"] = os.getloadavg()[0]
    print(
        f"torch threads {out['torch_threads']}, 1-min load average {out['load_average_start']:.2f} "
        "(other jobs share the CPU)"
    )
    index, queries = _build_index(cfg, out)
    exact_rows = _exact(index, queries, cfg, out)
    _build_approximate(index, cfg, out)
    _approximate(index, queries, exact_rows, cfg, out)
    out["speedup_exact_over_approx"] = out["exact_p50_ms"] / out["approx_p50_ms"]
    print(f"speed-up of approximate over exact: {out['speedup_exact_over_approx']:.1f}x")
    goals = {
        "exact_p50 < 100 ms": out["exact_p50_ms"] < 100,
        "approx_p50 < 5 ms": out["approx_p50_ms"] < 5,
        "approx recall@10 >= 0.95": out["approx_recall_at_10"] >= 0.95,
    }
    out["goals"] = goals
    out["load_average_end"] = os.getloadavg()[0]
    print("goals (at n=1M, dim=512): " + ", ".join(f"{g}: {'met' if ok else 'MISSED'}" for g, ok in goals.items()))
    return out


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=None, help="gallery size (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="n=100,000 unless --n is given")
    parser.add_argument("--dim", type=int, default=BenchConfig.dim)
    parser.add_argument("--k", type=int, default=BenchConfig.k)
    parser.add_argument("--num-queries", type=int, default=BenchConfig.num_queries)
    parser.add_argument("--kind", choices=["ivf_flat", "hnsw"], default=BenchConfig.kind)
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default: next power of two above sqrt(n))")
    parser.add_argument("--nprobe", type=int, default=BenchConfig.nprobe, help="IVF lists visited per query")
    parser.add_argument("--hnsw-m", type=int, default=BenchConfig.hnsw_m)
    parser.add_argument("--ef-search", type=int, default=BenchConfig.ef_search)
    parser.add_argument("--seed", type=int, default=BenchConfig.seed)
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    n = args.n if args.n is not None else (100_000 if args.quick else BenchConfig.n)
    num_sub = max(10, min(20_000, n // 50))  # about 50 tiles per place at any scale
    return BenchConfig(
        n=n,
        dim=args.dim,
        k=args.k,
        num_queries=args.num_queries,
        kind=args.kind,
        nlist=args.nlist,
        nprobe=args.nprobe,
        hnsw_m=args.hnsw_m,
        ef_search=args.ef_search,
        num_sub=num_sub,
        seed=args.seed,
        json=args.json,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    cfg = parse_args(argv)
    out = run(cfg)
    if cfg.json:
        with open(cfg.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
