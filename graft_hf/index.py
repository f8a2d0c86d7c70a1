"""A searchable archive of satellite embeddings with their metadata.

:class:`EmbeddingIndex` keeps L2-normalised float32 embeddings together with per-tile metadata (tile id,
latitude, longitude, date and any extra columns) in one ``datasets.Dataset``, so an archive is saved, loaded,
shared and inspected like any other dataset. Two searches run over it, both by cosine similarity (inner product
of unit vectors):

* exact: a batched matrix product over the gallery in chunks (memory bounded by the chunk size), top-k per
  chunk with ``torch.topk``, merged across chunks;
* approximate: a faiss index (IVF-Flat by default, HNSW optional) built on demand and saved next to the dataset.
  faiss is imported lazily; it comes with the ``search`` extra (``pip install 'graft-hf[search]'``).

Results come back as :class:`SearchResult` records carrying the score, the row and the tile's coordinates.

On-disk layout of ``save_to_disk(path)``::

    path/dataset/            the Dataset (Dataset.save_to_disk)
    path/index_config.json   embedding column, metadata column names, approximate-index settings
    path/faiss.index         the approximate index, when one was built
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import torch
from datasets import Dataset, List, Value

from graft_hf.extras import require
from graft_hf.io import atomic_path, atomic_write
from graft_hf.pairs.schema import COORDINATE_COLUMNS

logger = logging.getLogger(__name__)

__all__ = ["STANDARD_COLUMNS", "ApproximateIndexConfig", "EmbeddingIndex", "SearchResult"]

_CONFIG_FILE = "index_config.json"
_FAISS_FILE = "faiss.index"
_DATASET_DIR = "dataset"

#: Candidate column names of the standard metadata fields, first match wins (lat/lon: the pairs schema's list).
STANDARD_COLUMNS: dict[str, tuple[str, ...]] = {
    "tile_id": ("tile_id", "id", "filename"),
    "lat": COORDINATE_COLUMNS["lat"],
    "lon": COORDINATE_COLUMNS["lon"],
    "date": ("date", "acquisition_date"),
}


@dataclass
class SearchResult:
    """One hit of a search.

    Attributes:
        row: Row of the hit in the index's dataset.
        score: Cosine similarity to the query.
        tile_id: The tile's id, if the dataset has a tile-id column.
        lat: Latitude (degrees), if present.
        lon: Longitude (degrees), if present.
        date: Acquisition date, if present.
        extra: The other metadata columns of the row (the embedding excluded).
    """

    row: int
    score: float
    tile_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    date: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ApproximateIndexConfig:
    """Settings of the faiss index.

    Attributes:
        kind: `"ivf_flat"` (inverted lists of exact vectors; fast to build, good for millions) or `"hnsw"`
            (graph; no training, slower to build, very fast queries).
        nlist: IVF lists; None picks the power of two nearest above `sqrt(n)` (1024 for 1M), capped so each list
            gets at least 39 training points.
        nprobe: IVF lists visited per query (recall/latency trade-off).
        train_size: Vectors sampled to train the IVF centroids; None uses `min(n, 64 * nlist)`.
        hnsw_m: HNSW neighbours per node.
        ef_construction: HNSW build-time beam width.
        ef_search: HNSW query-time beam width (raised to `k` when smaller).
        seed: Seed of the training sample.
    """

    kind: Literal["ivf_flat", "hnsw"] = "ivf_flat"
    nlist: int | None = None
    nprobe: int = 8
    train_size: int | None = None
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("ivf_flat", "hnsw"):
            raise ValueError(f"kind must be 'ivf_flat' or 'hnsw', got {self.kind!r}")
        for name in ("nprobe", "hnsw_m", "ef_construction", "ef_search"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def resolved_nlist(self, n: int) -> int:
        if self.nlist is not None:
            return max(1, min(self.nlist, n))
        return max(1, min(2 ** math.ceil(math.log2(max(math.sqrt(n), 1))), n // 39))


def _import_faiss() -> ModuleType:
    return require(
        "faiss",
        "search",
        "approximate search (exact search, EmbeddingIndex.search, needs nothing)",
        package="faiss-cpu",
    )


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        bad = np.flatnonzero(~np.isfinite(norms[:, 0]) | (norms[:, 0] == 0))[:5].tolist()
        raise ValueError(f"embeddings must be finite and non-zero to be normalised; bad rows include {bad}")
    return (x / norms).astype(np.float32, copy=False)


def _embedding_matrix(dataset: Dataset, column: str) -> np.ndarray:
    """The embedding column as a `(num_rows, dim)` float32 array, zero-copy where Arrow allows."""
    if column not in dataset.column_names:
        raise ValueError(f"dataset has no embedding column {column!r}; its columns are {dataset.column_names}")
    if len(dataset) == 0:
        raise ValueError("the dataset is empty; an index needs at least one embedding")
    if dataset._indices is not None:  # a select()/shuffle() view: materialise the rows in order
        dataset = dataset.flatten_indices()
    chunked = dataset.data.table.column(column)
    arr = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
    if pa.types.is_fixed_size_list(arr.type):
        dim = arr.type.list_size
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lengths = np.asarray(arr.value_lengths())
        if lengths.min() != lengths.max():
            raise ValueError(f"embeddings in {column!r} have different lengths ({lengths.min()}..{lengths.max()})")
        dim = int(lengths[0])
    else:
        raise ValueError(f"column {column!r} must hold lists of floats, got Arrow type {arr.type}")
    if arr.null_count:
        raise ValueError(f"column {column!r} has {arr.null_count} missing embeddings; drop those rows first")
    values = arr.flatten()  # respects slicing offsets
    flat = values.to_numpy(zero_copy_only=False)
    return flat.reshape(len(arr), dim).astype(np.float32, copy=False)


def _dataset_from_table(table: pa.Table) -> Dataset:
    # A fresh random fingerprint: by default datasets fingerprints an in-memory table by pickling all of it
    # (about 80 s for 1M x 512 floats).
    return Dataset(table, fingerprint=uuid.uuid4().hex)


def _fixed_size_list(matrix: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(
        pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1)), matrix.shape[1]
    )


class EmbeddingIndex:
    """Satellite embeddings with metadata, searchable exactly or approximately by cosine similarity.

    Args:
        dataset: A Dataset with an embedding column (lists of floats, one per row, all the same length) whose
            rows are already L2-normalised; use :meth:`from_dataset` or :meth:`from_embeddings` to normalise.
        embedding_column: Name of the embedding column.
        columns: Optional mapping of the standard fields (`tile_id`, `lat`, `lon`, `date`) to column names;
            unmapped fields are looked up among common names (e.g. `center_lat`, `acquisition_date`).
        chunk_size: Gallery rows per matrix product in exact search (bounds the temporary score buffer).
    """

    def __init__(
        self,
        dataset: Dataset,
        embedding_column: str = "embedding",
        columns: Mapping[str, str] | None = None,
        chunk_size: int = 262_144,
    ):
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.dataset = dataset
        self.embedding_column = embedding_column
        self.chunk_size = chunk_size
        matrix = _embedding_matrix(dataset, embedding_column)
        norms = np.linalg.norm(matrix[: min(len(matrix), 1000)], axis=1)
        if not np.allclose(norms, 1.0, atol=1e-3):
            raise ValueError("embeddings are not L2-normalised; build the index with EmbeddingIndex.from_dataset()")
        self._matrix = _as_tensor(matrix)  # shares Arrow memory where possible (no copy of a large gallery)
        self.columns = self._resolve_columns(columns or {})
        meta = [c for c in dataset.column_names if c != embedding_column]
        self._metadata = dataset.select_columns(meta) if meta else None
        self._faiss_index = None
        self.approximate_config: ApproximateIndexConfig | None = None

    # ------------------------------------------------------------------------------------------------ construction

    @classmethod
    def from_embeddings(
        cls,
        embeddings: np.ndarray | torch.Tensor,
        tile_id: Sequence[str] | None = None,
        lat: Sequence[float] | np.ndarray | None = None,
        lon: Sequence[float] | np.ndarray | None = None,
        date: Sequence[str] | None = None,
        metadata: Mapping[str, Sequence[Any]] | None = None,
        chunk_size: int = 262_144,
    ) -> EmbeddingIndex:
        """Builds an index from an embedding matrix and metadata columns.

        Args:
            embeddings: `(num_tiles, dim)`; normalised here.
            tile_id: One id per tile.
            lat: Latitudes in degrees.
            lon: Longitudes in degrees.
            date: Acquisition dates (ISO 8601 strings).
            metadata: Extra columns, name -> values (one per tile).
            chunk_size: See the class docstring.
        """
        if isinstance(embeddings, torch.Tensor):
            embeddings = embeddings.detach().cpu().float().numpy()
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] == 0 or embeddings.shape[1] == 0:
            raise ValueError(f"embeddings must be a non-empty (num_tiles, dim) matrix, got shape {embeddings.shape}")
        n = embeddings.shape[0]
        columns: dict[str, Any] = {"embedding": _fixed_size_list(_normalize_rows(embeddings))}
        standard = {
            "tile_id": (tile_id, pa.string()),
            "lat": (lat, pa.float64()),
            "lon": (lon, pa.float64()),
            "date": (date, pa.string()),
        }
        for name, (values, typ) in standard.items():
            if values is not None:
                columns[name] = pa.array(np.asarray(values) if typ == pa.float64() else list(values), type=typ)
        for name, values in (metadata or {}).items():
            if name in columns:
                raise ValueError(f"metadata column {name!r} clashes with a standard column; rename it")
            columns[name] = pa.array(list(values))
        for name, arr in columns.items():
            if len(arr) != n:
                raise ValueError(f"column {name!r} has {len(arr)} values for {n} embeddings")
        return cls(_dataset_from_table(pa.table(columns)), "embedding", chunk_size=chunk_size)

    @classmethod
    def from_dataset(
        cls,
        dataset: Dataset,
        embedding_column: str = "embedding",
        columns: Mapping[str, str] | None = None,
        chunk_size: int = 262_144,
    ) -> EmbeddingIndex:
        """Wraps a Dataset, L2-normalising (a float32 copy of) its embedding column when needed."""
        matrix = _embedding_matrix(dataset, embedding_column)
        norms = np.linalg.norm(matrix, axis=1)
        needs_cast = dataset.features[embedding_column] != cls._fixed_feature(matrix.shape[1])
        if needs_cast or not np.allclose(norms, 1.0, atol=1e-4) or dataset._indices is not None:
            table = dataset.flatten_indices().data.table if dataset._indices is not None else dataset.data.table
            col = table.column_names.index(embedding_column)
            table = table.set_column(col, embedding_column, _fixed_size_list(_normalize_rows(matrix)))
            dataset = _dataset_from_table(table)
        return cls(dataset, embedding_column, columns, chunk_size)

    @staticmethod
    def _fixed_feature(dim: int):
        return List(Value("float32"), length=dim)

    def to_dataset(self) -> Dataset:
        """The backing Dataset (normalised embeddings plus metadata)."""
        return self.dataset

    def _resolve_columns(self, columns: Mapping[str, str]) -> dict[str, str | None]:
        unknown = set(columns) - set(STANDARD_COLUMNS)
        if unknown:
            raise ValueError(f"unknown standard fields {sorted(unknown)}; use {sorted(STANDARD_COLUMNS)}")
        names = self.dataset.column_names
        out: dict[str, str | None] = {}
        for key, candidates in STANDARD_COLUMNS.items():
            if key in columns:
                if columns[key] not in names:
                    raise ValueError(f"column {columns[key]!r} (for {key}) is not in the dataset columns {names}")
                out[key] = columns[key]
            else:
                out[key] = next((c for c in candidates if c in names), None)
        return out

    # ------------------------------------------------------------------------------------------------ properties

    def __len__(self) -> int:
        return int(self._matrix.shape[0])

    @property
    def dim(self) -> int:
        return int(self._matrix.shape[1])

    @property
    def embeddings(self) -> torch.Tensor:
        """The normalised gallery `(num_tiles, dim)` float32 (do not modify in place)."""
        return self._matrix

    @property
    def has_approximate_index(self) -> bool:
        return self._faiss_index is not None

    @property
    def faiss_index(self) -> Any:
        """The underlying faiss index (None until built or loaded), for inspection or tuning."""
        return self._faiss_index

    # ------------------------------------------------------------------------------------------------ exact search

    def _prepare_queries(self, queries: np.ndarray | torch.Tensor, k: int) -> tuple[torch.Tensor, bool]:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if k > len(self):
            raise ValueError(f"k={k} exceeds the number of indexed items ({len(self)}); pass k <= {len(self)}")
        q = queries.detach().cpu() if isinstance(queries, torch.Tensor) else torch.as_tensor(np.asarray(queries))
        single = q.ndim == 1
        q = q[None] if single else q
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(
                f"queries must have shape (num_queries, {self.dim}) or ({self.dim},), got {tuple(q.shape)}"
            )
        if q.shape[0] == 0:
            raise ValueError("no queries given")
        q = q.float()
        if not torch.isfinite(q).all():
            raise ValueError("queries contain NaN or inf")
        return torch.nn.functional.normalize(q, dim=-1), single

    def search_arrays(self, queries: np.ndarray | torch.Tensor, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k by cosine similarity.

        Args:
            queries: `(num_queries, dim)` or `(dim,)`; normalised here.
            k: Hits per query, `1 <= k <= len(self)`.

        Returns:
            `(scores, rows)`, float32 and int64 arrays `(num_queries, k)`, best first; equal scores are ordered by
            row (ties straddling the k-th place may resolve either way, as in any top-k).
        """
        q, _ = self._prepare_queries(queries, k)
        return self._exact(q, k)

    def _exact(self, q: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        gallery = self._matrix
        n = gallery.shape[0]
        query_block = 1024
        all_scores, all_rows = [], []
        for qs in range(0, q.shape[0], query_block):
            qb = q[qs : qs + query_block]
            # bound the (queries x chunk) score buffer to ~64 MiB whatever the batch size
            chunk = max(1024, min(self.chunk_size, (16 << 20) // qb.shape[0]))
            best_s = best_i = None
            for start in range(0, n, chunk):
                s = torch.nn.functional.linear(qb, gallery[start : start + chunk])  # (q, chunk)
                v, i = torch.topk(s, min(k, s.shape[1]), dim=1)
                i += start
                if best_s is None:
                    best_s, best_i = v, i
                else:
                    v, pos = torch.topk(torch.cat([best_s, v], dim=1), k, dim=1)
                    best_i = torch.gather(torch.cat([best_i, i], dim=1), 1, pos)
                    best_s = v
            all_scores.append(best_s)
            all_rows.append(best_i)
        scores, rows = torch.cat(all_scores), torch.cat(all_rows)
        return self._deterministic_order(scores.numpy(), rows.numpy())

    @staticmethod
    def _deterministic_order(scores: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.lexsort((rows, -scores.astype(np.float64)), axis=1)  # score desc, then row asc
        return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1).astype(np.int64)

    def search(self, queries: np.ndarray | torch.Tensor, k: int = 10) -> list[list[SearchResult]] | list[SearchResult]:
        """Exact search returning result records.

        Args:
            queries: `(num_queries, dim)`, or `(dim,)` for one query.
            k: Hits per query.

        Returns:
            One list of `k` :class:`SearchResult` per query (a single list for a 1-D query).
        """
        q, single = self._prepare_queries(queries, k)
        scores, rows = self._exact(q, k)
        return self._records(scores, rows, single)

    def _records(
        self, scores: np.ndarray, rows: np.ndarray, single: bool
    ) -> list[list[SearchResult]] | list[SearchResult]:
        flat = [int(r) for r in rows.reshape(-1) if r >= 0]
        meta = self._metadata[flat] if (self._metadata is not None and flat) else {}
        pos = 0
        out: list[list[SearchResult]] = []
        std = {v: k for k, v in self.columns.items() if v is not None}
        for srow, rrow in zip(scores, rows):
            hits = []
            for s, r in zip(srow, rrow):
                if r < 0:  # faiss pads with -1 when it finds fewer than k hits
                    continue
                fields = {name: values[pos] for name, values in meta.items()}
                pos += 1
                result = SearchResult(row=int(r), score=float(s))
                for name, value in fields.items():
                    if name in std:
                        setattr(result, std[name], value)
                    else:
                        result.extra[name] = value
                hits.append(result)
            out.append(hits)
        return out[0] if single else out

    # ------------------------------------------------------------------------------------------------ approximate

    def build_approximate(self, config: ApproximateIndexConfig | None = None) -> EmbeddingIndex:
        """Builds the faiss index over the normalised embeddings (inner product = cosine).

        Args:
            config: Index settings; defaults to IVF-Flat with automatic `nlist`.

        Returns:
            self, for chaining.
        """
        faiss = _import_faiss()
        config = config or ApproximateIndexConfig()
        n, d = len(self), self.dim
        data = self._matrix.numpy()
        t0 = time.perf_counter()
        if config.kind == "ivf_flat":
            nlist = config.resolved_nlist(n)
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            train_size = min(n, config.train_size or 64 * nlist)
            rng = np.random.default_rng(config.seed)
            sample = np.sort(rng.choice(n, size=train_size, replace=False)) if train_size < n else slice(None)
            index.cp.seed = config.seed
            index.train(np.ascontiguousarray(data[sample]))
            index.nprobe = min(config.nprobe, nlist)
            logger.info(
                "trained IVF-Flat (nlist=%d) on %d vectors in %.1fs", nlist, train_size, time.perf_counter() - t0
            )
        else:
            index = faiss.IndexHNSWFlat(d, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = config.ef_construction
            index.hnsw.efSearch = config.ef_search
        step = 100_000
        if config.kind == "ivf_flat":
            # Assign vectors to lists with torch's GEMM (several times faster than faiss's bundled BLAS here),
            # then hand faiss the precomputed assignment.
            centroids = torch.from_numpy(quantizer.reconstruct_n(0, index.nlist))  # (nlist, dim)
            for start in range(0, n, step):
                block = np.ascontiguousarray(data[start : start + step])
                lists = torch.nn.functional.linear(torch.from_numpy(block), centroids).argmax(dim=1)
                lists = np.ascontiguousarray(lists.numpy(), dtype=np.int64)
                index.add_core(len(block), faiss.swig_ptr(block), None, faiss.swig_ptr(lists))
        else:
            for start in range(0, n, step):
                index.add(np.ascontiguousarray(data[start : start + step]))
        logger.info("built %s index over %d vectors in %.1fs", config.kind, n, time.perf_counter() - t0)
        self._faiss_index = index
        self.approximate_config = config
        return self

    def search_approximate_arrays(
        self, queries: np.ndarray | torch.Tensor, k: int = 10, nprobe: int | None = None, ef_search: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k by cosine similarity with the faiss index.

        Args:
            queries: `(num_queries, dim)` or `(dim,)`.
            k: Hits per query.
            nprobe: IVF lists to visit (overrides the config for this call).
            ef_search: HNSW beam width (overrides the config for this call).

        Returns:
            `(scores, rows)` as in :meth:`search_arrays`; rows are -1 where fewer than `k` hits were found.
        """
        q, _ = self._prepare_queries(queries, k)
        return self._approximate(q, k, nprobe, ef_search)

    def _approximate(
        self, q: torch.Tensor, k: int, nprobe: int | None, ef_search: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self._faiss_index is None:
            raise RuntimeError("no approximate index; call build_approximate() first (or load one with load_from_disk)")
        index = self._faiss_index
        cfg = self.approximate_config
        if cfg.kind == "ivf_flat":
            index.nprobe = min(nprobe or cfg.nprobe, index.nlist)
        else:
            index.hnsw.efSearch = max(ef_search or cfg.ef_search, k)
        scores, rows = index.search(np.ascontiguousarray(q.numpy()), k)
        return scores, rows.astype(np.int64)

    def search_approximate(
        self, queries: np.ndarray | torch.Tensor, k: int = 10, nprobe: int | None = None, ef_search: int | None = None
    ) -> list[list[SearchResult]] | list[SearchResult]:
        """Approximate search returning result records (see :meth:`search`)."""
        q, single = self._prepare_queries(queries, k)
        scores, rows = self._approximate(q, k, nprobe, ef_search)
        return self._records(scores, rows, single)

    # ------------------------------------------------------------------------------------------------ persistence

    def save_to_disk(self, path: str | Path) -> None:
        """Saves the dataset, the settings and (if built) the faiss index under `path`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        target = (path / _DATASET_DIR).resolve()
        sources = {Path(f["filename"]).resolve().parent for f in self.dataset.cache_files}
        if sources == {target}:
            logger.info("dataset already stored at %s (it was loaded from there); not rewriting it", target)
        else:
            self.dataset.save_to_disk(str(target))
        config = {
            "embedding_column": self.embedding_column,
            "columns": self.columns,
            "chunk_size": self.chunk_size,
            "approximate": asdict(self.approximate_config) if self.approximate_config else None,
        }
        atomic_write(path / _CONFIG_FILE, json.dumps(config, indent=2))
        faiss_path = path / _FAISS_FILE
        if self._faiss_index is not None:
            with atomic_path(faiss_path) as tmp:
                _import_faiss().write_index(self._faiss_index, str(tmp))
        elif faiss_path.exists():
            faiss_path.unlink()  # a stale index from an earlier save would not match this dataset

    @classmethod
    def load_from_disk(cls, path: str | Path, load_approximate: bool = True) -> EmbeddingIndex:
        """Loads an index written by :meth:`save_to_disk` (the faiss index too, when present and requested)."""
        path = Path(path)
        if not (path / _CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"{path} is not a saved EmbeddingIndex (no {_CONFIG_FILE}); save one with save_to_disk"
            )
        config = json.loads((path / _CONFIG_FILE).read_text())
        columns = {k: v for k, v in config["columns"].items() if v is not None}
        index = cls(
            Dataset.load_from_disk(str(path / _DATASET_DIR)), config["embedding_column"], columns, config["chunk_size"]
        )
        if load_approximate and (path / _FAISS_FILE).is_file():
            index._faiss_index = _import_faiss().read_index(str(path / _FAISS_FILE))
            index.approximate_config = ApproximateIndexConfig(**config["approximate"])
            if index._faiss_index.ntotal != len(index):
                raise ValueError(
                    f"{path / _FAISS_FILE} holds {index._faiss_index.ntotal} vectors but the dataset has {len(index)} rows"
                )
        return index


def _as_tensor(matrix: np.ndarray) -> torch.Tensor:
    """A tensor over the array's memory; a read-only (Arrow) buffer is shared too, as the index never writes it."""
    if matrix.flags.writeable:
        return torch.from_numpy(matrix)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not writable.*")
        return torch.from_numpy(matrix)
