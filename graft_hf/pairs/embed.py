"""Precompute the frozen teacher's embeddings of every ground photo (or photo text) into the pair shards.

``graft pairs embed`` runs this once so training never decodes a ground photo again. For each shard it fills
``photos[*].embedding`` (image mode) or ``photos[*].text_embedding`` (text mode, for the alt-text ablation) with
L2-normalised fp16 vectors of a frozen teacher (:mod:`graft_hf.pairs.teachers`), rewrites the shard atomically
(:func:`graft_hf.io.atomic_path`) and records the teacher in the shard's parquet metadata under ``graft_embeddings``
(``{field: {"teacher": id, "dim": d, ...}}``), so a rerun skips shards already embedded by the same teacher. Photos
whose bytes do not decode (or that have no text) keep a null embedding and are counted by reason in the
:class:`EmbedReport`.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from graft_hf.config import ConfigError
from graft_hf.io import atomic_path, write_json

from .config import EmbedConfig, EmbedField
from .schema import photo_image_bytes
from .teachers import Teacher, TeacherLoadError, load_teacher

__all__ = [
    "EMBED_METADATA_KEY",
    "EmbedConfig",
    "EmbedField",
    "EmbedReport",
    "Teacher",
    "TeacherLoadError",
    "embed_pairs",
    "load_teacher",
    "shard_embedding_record",
]

logger = logging.getLogger(__name__)

#: Parquet schema-metadata key holding ``{field: {"teacher": ..., "dim": ..., "dtype": "float16", ...}}``.
EMBED_METADATA_KEY = b"graft_embeddings"


@dataclass
class EmbedReport:
    """Outcome of an embedding run."""

    teacher_id: str
    dim: int
    field: str
    shards_total: int = 0
    shards_embedded: int = 0
    shards_skipped: int = 0
    tiles: int = 0
    photos_embedded: int = 0
    photos_skipped: dict[str, int] = dataclass_field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def shard_embedding_record(path: str | Path) -> dict:
    """The ``graft_embeddings`` metadata of a shard (``{}`` when nothing was embedded)."""
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata.get(EMBED_METADATA_KEY, b"{}"))


def _find_shards(pairs: str) -> list[Path]:
    root = Path(pairs)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"pairs folder {pairs!r} does not exist: pass the output folder of `graft pairs build`")
    shards = sorted(root.rglob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"no *.parquet shards under {pairs!r}: pass the output folder of `graft pairs build`")
    return shards


def _decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def _normalised_fp16(vectors: torch.Tensor) -> np.ndarray:
    # Normalise in float32 before the cast so the stored fp16 vectors have unit norm to fp16 precision.
    return torch.nn.functional.normalize(vectors.float(), dim=-1).numpy().astype(np.float16)


#: Most distinct texts whose embeddings are remembered during one run (about 1 KiB each at 512-d fp16).
TEXT_CACHE_SIZE = 200_000


class _ShardEmbedder:
    """Embeds the photos of one record batch and rebuilds its ``photos`` column.

    In text mode, repeated texts (captions reused across photos, simulated observations) are embedded once: their
    fp16 vectors are kept in ``text_cache`` (shared across shards, bounded by :data:`TEXT_CACHE_SIZE`).
    """

    def __init__(
        self,
        teacher: Teacher,
        config: EmbedConfig,
        skipped: Counter[str],
        text_cache: dict[str, np.ndarray] | None = None,
    ):
        self.teacher, self.config, self.skipped = teacher, config, skipped
        self.text_cache = text_cache if text_cache is not None else {}

    def _input(self, value: str | bytes | None) -> Image.Image | str | None:
        """A photo's text or decoded image; ``None`` (counted by reason) when it has none."""
        if self.config.text:
            if isinstance(value, str) and value.strip():
                return value
            self.skipped["no text"] += 1
            return None
        if not value:
            self.skipped["no image bytes"] += 1
            return None
        try:
            return _decode(value)  # type: ignore[arg-type]
        except (UnidentifiedImageError, OSError, ValueError) as error:
            self.skipped[f"undecodable image ({type(error).__name__})"] += 1
            return None

    def _inputs(self, photos: pa.StructArray) -> tuple[list[int], list[Image.Image | str]]:
        """Indices of the photos with something to embed, and those texts or decoded images."""
        values = photos.field("text" if self.config.text else "image").to_pylist()
        if not self.config.text:  # the Image feature's {bytes, path}; older shards hold plain binary
            values = [photo_image_bytes(value) for value in values]
        valid = photos.is_valid().to_pylist()
        indices, inputs = [], []
        for index, (value, is_valid) in enumerate(zip(values, valid, strict=True)):
            item = self._input(value) if is_valid else None
            if item is not None:
                indices.append(index)
                inputs.append(item)
        return indices, inputs

    def _embed_texts(self, indices: list[int], texts: list[str], vectors: np.ndarray, has_vector: np.ndarray) -> None:
        """Fill ``vectors[indices]`` with the texts' embeddings, running the teacher on unseen texts only."""
        cache, dim, size = self.text_cache, self.teacher.dim, self.config.batch_size
        unseen = [text for text in dict.fromkeys(texts) if text not in cache]
        fresh: dict[str, np.ndarray] = {}
        for begin in range(0, len(unseen), size):
            chunk = unseen[begin : begin + size]
            embeds = self.teacher.embed_texts(chunk)
            _check_shape(embeds, len(chunk), dim)
            fresh.update(zip(chunk, _normalised_fp16(embeds), strict=True))
        for row, text in zip(indices, texts, strict=True):
            vectors[row] = cache[text] if text in cache else fresh[text]
            has_vector[row] = True
        room = TEXT_CACHE_SIZE - len(cache)
        if room > 0:
            cache.update(list(fresh.items())[:room])

    def _embed_images(
        self, indices: list[int], images: list[Image.Image], vectors: np.ndarray, has_vector: np.ndarray
    ) -> None:
        """Fill ``vectors[indices]`` with the photos' embeddings, ``batch_size`` photos per forward pass."""
        size = self.config.batch_size
        for begin in range(0, len(images), size):
            chunk = images[begin : begin + size]
            embeds = self.teacher.embed_images(chunk)
            _check_shape(embeds, len(chunk), self.teacher.dim)
            rows = indices[begin : begin + size]
            vectors[rows] = _normalised_fp16(embeds)
            has_vector[rows] = True

    def _rebuild(self, photos: pa.StructArray, vectors: np.ndarray, has_vector: np.ndarray) -> pa.StructArray:
        """``photos`` with the embedded field replaced (null where no embedding)."""
        dim = self.teacher.dim
        # list<float16> with null where no embedding: offsets advance by dim only for embedded photos.
        item_offsets = np.concatenate([[0], np.cumsum(has_vector * dim)]).astype(np.int32)
        embedding = pa.ListArray.from_arrays(
            pa.array(item_offsets), pa.array(vectors[has_vector].reshape(-1)), mask=pa.array(~has_vector)
        )
        struct_type = photos.type
        arrays = [
            embedding.cast(field.type) if field.name == self.config.field else photos.field(i)
            for i, field in enumerate(struct_type)
        ]
        return pa.StructArray.from_arrays(arrays, fields=list(struct_type), mask=photos.is_null())

    def embed_column(self, column: pa.ListArray) -> tuple[pa.ListArray, int]:
        """Embed the photos of one batch's ``photos`` column; returns the new column and the photos embedded."""
        offsets = np.asarray(column.offsets)
        start, stop = int(offsets[0]), int(offsets[-1])
        photos: pa.StructArray = column.values.slice(start, stop - start)
        indices, inputs = self._inputs(photos)
        vectors = np.zeros((len(photos), self.teacher.dim), dtype=np.float16)
        has_vector = np.zeros(len(photos), dtype=bool)
        if self.config.text:
            self._embed_texts(indices, inputs, vectors, has_vector)  # type: ignore[arg-type]
        else:
            self._embed_images(indices, inputs, vectors, has_vector)  # type: ignore[arg-type]
        rebuilt = self._rebuild(photos, vectors, has_vector)
        new_offsets = pa.array(offsets - start, type=pa.int32())
        result = pa.ListArray.from_arrays(new_offsets, rebuilt, type=column.type, mask=column.is_null())
        return result, len(indices)


def _check_shape(embeds: torch.Tensor, count: int, dim: int) -> None:
    if embeds.shape != (count, dim):
        raise RuntimeError(f"teacher returned shape {tuple(embeds.shape)}, expected ({count}, {dim})")


def _check_schema(schema: pa.Schema, path: Path, field_name: str) -> None:
    if "photos" not in schema.names:
        raise ValueError(f"{path} has no 'photos' column: it is not a pair shard (rebuild with `graft pairs build`)")
    photo_type = schema.field("photos").type.value_type
    if not pa.types.is_struct(photo_type) or photo_type.get_field_index(field_name) < 0:
        raise ValueError(f"{path}: photos have no {field_name!r} field; rebuild the shard with `graft pairs build`")
    value_type = photo_type.field(field_name).type
    if not (pa.types.is_list(value_type) and pa.types.is_floating(value_type.value_type)):
        raise ValueError(f"{path}: photos.{field_name} is {value_type}, expected list<float16> (the pairs schema)")


def _shard_schema(schema: pa.Schema, teacher: Teacher, config: EmbedConfig) -> pa.Schema:
    """The shard's schema with this run's teacher recorded in the ``graft_embeddings`` metadata."""
    record = json.loads((schema.metadata or {}).get(EMBED_METADATA_KEY, b"{}"))
    record[config.field] = {
        "teacher": teacher.teacher_id,
        "dim": teacher.dim,
        "dtype": "float16",
        "normalized": True,
        "source": "text" if config.text else "image",
    }
    return schema.with_metadata({**(schema.metadata or {}), EMBED_METADATA_KEY: json.dumps(record).encode()})


def _embed_shard(
    path: Path,
    teacher: Teacher,
    config: EmbedConfig,
    report: EmbedReport,
    progress: tqdm,
    text_cache: dict[str, np.ndarray] | None = None,
) -> None:
    """Rewrite one shard with the embeddings filled in; readers see the old or the new shard, never half."""
    parquet = pq.ParquetFile(path)
    _check_schema(parquet.schema_arrow, path, config.field)
    out_schema = _shard_schema(parquet.schema_arrow, teacher, config)
    photos_index = out_schema.get_field_index("photos")
    embedder = _ShardEmbedder(teacher, config, Counter(), text_cache)
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, out_schema) as writer:
        for batch in parquet.iter_batches(batch_size=config.rows_per_batch):
            column, embedded = embedder.embed_column(batch.column(photos_index))
            columns = [column if i == photos_index else batch.column(i) for i in range(batch.num_columns)]
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=out_schema))
            report.photos_embedded += embedded
            report.tiles += batch.num_rows
            progress.update(batch.num_rows)
    for reason, count in embedder.skipped.items():
        report.photos_skipped[reason] = report.photos_skipped.get(reason, 0) + count


def _check_towers(teacher: Teacher, config: EmbedConfig) -> None:
    if not config.text and not teacher.has_image_tower:
        raise ConfigError(
            "text",
            f"teacher {teacher.teacher_id!r} has no image tower, so it cannot embed photos: embed the photos' text "
            "instead (text=True), or use a CLIP or open_clip teacher",
        )


def _shards_to_embed(shards: list[Path], teacher: Teacher, config: EmbedConfig, report: EmbedReport) -> list[Path]:
    """The shards not yet embedded by this teacher (all of them with ``overwrite``)."""
    todo = []
    for shard in shards:
        done = shard_embedding_record(shard).get(config.field, {})
        if not config.overwrite and done.get("teacher") == teacher.teacher_id and done.get("dim") == teacher.dim:
            report.shards_skipped += 1
            continue
        if done:
            logger.warning("%s: replacing %s by %s (dim %d)", shard, done, teacher.teacher_id, teacher.dim)
        todo.append(shard)
    logger.info(
        "embedding %d of %d shards (%d already done) with %s",
        len(todo),
        len(shards),
        report.shards_skipped,
        teacher.teacher_id,
    )
    return todo


def embed_pairs(config: EmbedConfig, teacher: Teacher | None = None) -> EmbedReport:
    """Embed every shard of ``config.pairs`` that the teacher has not embedded yet.

    Args:
        config: What to embed and how.
        teacher: An already loaded teacher (default: loaded from ``config``).

    Returns:
        The report (also written to ``config.report`` when set).

    Raises:
        ConfigError: (key ``text``) photos asked of a text-only teacher.
        TeacherLoadError: The teacher cannot be loaded.
    """
    started = time.perf_counter()
    shards = _find_shards(config.pairs)
    if teacher is None:
        teacher = load_teacher(
            config.teacher,
            config.teacher_kind,
            config.pretrained,
            config.open_clip_config,
            config.device,
            config.teacher_id,
        )
    _check_towers(teacher, config)
    report = EmbedReport(teacher_id=teacher.teacher_id, dim=teacher.dim, field=config.field, shards_total=len(shards))
    todo = _shards_to_embed(shards, teacher, config, report)
    total_rows = sum(pq.ParquetFile(shard).metadata.num_rows for shard in todo)
    text_cache: dict[str, np.ndarray] = {}
    with tqdm(total=total_rows, unit="tile", desc=f"embed {config.field}", disable=None) as progress:
        for shard in todo:
            _embed_shard(shard, teacher, config, report, progress, text_cache)
            report.shards_embedded += 1
    report.seconds = round(time.perf_counter() - started, 3)
    logger.info(
        "embedded %d photos in %d shards; skipped %s",
        report.photos_embedded,
        report.shards_embedded,
        report.photos_skipped,
    )
    if config.report:
        write_json(config.report, report.to_dict())
    return report
