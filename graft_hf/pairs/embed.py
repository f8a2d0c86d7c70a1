"""Precompute the frozen teacher's embeddings of every ground photo (or photo text) into the pair shards.

``graft pairs embed`` runs this once so training never decodes a ground photo again. For each shard it fills
``photos[*].embedding`` (image mode) or ``photos[*].text_embedding`` (text mode, for the alt-text ablation) with
L2-normalised fp16 vectors, rewrites the shard atomically (temp file + rename) and records the teacher in the
shard's parquet metadata under ``graft_embeddings`` (``{field: {"teacher": id, "dim": d, ...}}``), so a rerun
skips shards already embedded by the same teacher. Photos whose bytes do not decode (or that have no text) keep
a null embedding and are counted by reason in the :class:`EmbedReport`.

Teachers (:func:`load_teacher`):

* a transformers CLIP directory or Hub id -> ``CLIPModel.get_image_features`` / ``get_text_features``;
* an open_clip model name + checkpoint path -> ``open_clip.create_model_and_transforms(name, pretrained=path)``;
* a sentence-transformers-style text encoder directory (e.g. all-MiniLM-L6-v2) -> ``AutoModel`` + mean pooling,
  text only.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image, UnidentifiedImageError

__all__ = [
    "EMBED_METADATA_KEY",
    "EmbedConfig",
    "EmbedReport",
    "Teacher",
    "embed_pairs",
    "load_teacher",
    "shard_embedding_record",
]

logger = logging.getLogger(__name__)

#: Parquet schema-metadata key holding ``{field: {"teacher": ..., "dim": ..., "dtype": "float16", ...}}``.
EMBED_METADATA_KEY = b"graft_embeddings"
TMP_SUFFIX = ".embed-tmp"

TeacherKind = Literal["auto", "clip", "open_clip", "sentence"]
EmbedField = Literal["embedding", "text_embedding"]


class Teacher:
    """A frozen encoder of photos and/or texts.

    Attributes:
        teacher_id: Identity recorded in the shards (resume skips shards with the same id and dim).
        dim: Embedding size.
        device: Where the model runs.
    """

    teacher_id: str
    dim: int
    device: torch.device

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One RGB photo to the teacher's input, shape ``(3, height, width)`` (the loader's on-the-fly path)."""
        raise ValueError(f"teacher {self.teacher_id!r} has no image tower; embed text with --text instead")

    def embed_pixel_values(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image embeddings, ``(batch, 3, H, W)`` -> ``(batch, dim)``, not normalised."""
        raise ValueError(f"teacher {self.teacher_id!r} has no image tower; embed text with --text instead")

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Text embeddings, ``batch`` strings -> ``(batch, dim)``, not normalised."""
        raise ValueError(f"teacher {self.teacher_id!r} has no text tower; pass a CLIP or text encoder as --teacher")

    @torch.inference_mode()
    def embed_images(self, images: list[Image.Image]) -> torch.Tensor:
        """Image embeddings of RGB photos, ``(batch, dim)`` float32 on the CPU, not normalised."""
        pixel_values = torch.stack([self.preprocess(image) for image in images]).to(self.device)
        return self.embed_pixel_values(pixel_values).float().cpu()


def _features(output: torch.Tensor | object) -> torch.Tensor:
    # transformers 5 returns a ModelOutput whose pooler_output is the projected embedding.
    return output if isinstance(output, torch.Tensor) else output.pooler_output  # type: ignore[attr-defined]


class ClipTeacher(Teacher):
    """transformers ``CLIPModel`` (directory or Hub id) with its image processor and tokenizer."""

    def __init__(self, spec: str, device: torch.device, teacher_id: str):
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        self.spec, self.device, self.teacher_id = spec, device, teacher_id
        self.model = CLIPModel.from_pretrained(spec).eval()
        self.model.to(device)  # type: ignore[arg-type]
        self.dim = int(self.model.config.projection_dim)
        self._processor_cls, self._tokenizer_cls = AutoImageProcessor, AutoTokenizer
        self._processor: Any = None
        self._tokenizer: Any = None

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        if self._processor is None:
            try:
                self._processor = self._processor_cls.from_pretrained(self.spec)
            except (OSError, ValueError) as error:
                raise RuntimeError(
                    f"no image processor in {self.spec!r}: save one next to the model "
                    f"(CLIPImageProcessor().save_pretrained(dir)) ({error})"
                ) from error
        return self._processor(images=image, return_tensors="pt")["pixel_values"][0]

    def embed_pixel_values(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return _features(self.model.get_image_features(pixel_values=pixel_values))

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        if self._tokenizer is None:
            try:
                self._tokenizer = self._tokenizer_cls.from_pretrained(self.spec)
            except (OSError, ValueError) as error:
                raise RuntimeError(
                    f"no tokenizer in {self.spec!r}: save one next to the model (e.g. "
                    f"graft_hf.tokenizer.load_clip_tokenizer().save_pretrained(dir)) ({error})"
                ) from error
        max_length = int(self.model.config.text_config.max_position_embeddings)
        tokens = self._tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        tokens = {key: value.to(self.device) for key, value in tokens.items() if key in ("input_ids", "attention_mask")}
        return _features(self.model.get_text_features(**tokens)).float().cpu()


class OpenClipTeacher(Teacher):
    """An open_clip model built by name and loaded from a local checkpoint."""

    def __init__(self, name: str, pretrained: str | None, device: torch.device, teacher_id: str):
        import open_clip

        self.device, self.teacher_id = device, teacher_id
        try:
            model, _, self._transform = open_clip.create_model_and_transforms(name, pretrained=pretrained)
        except RuntimeError as error:
            raise RuntimeError(
                f"could not build open_clip model {name!r} with pretrained={pretrained!r}: pass --pretrained "
                f"/path/to/checkpoint (weights cannot be downloaded here) and, for a custom architecture, "
                f"--open-clip-config /path/to/config.json ({error})"
            ) from error
        self.model = model.to(device).eval()
        self._tokenizer = open_clip.get_tokenizer(name)
        config = open_clip.get_model_config(name) or {}
        self.dim = int(config.get("embed_dim") or self.model.text_projection.shape[-1])

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self._transform(image)

    def embed_pixel_values(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixel_values)

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self._tokenizer(texts).to(self.device)).float().cpu()


class SentenceTeacher(Teacher):
    """A sentence-transformers-style text encoder: ``AutoModel`` + attention-masked mean pooling."""

    def __init__(self, spec: str, device: torch.device, teacher_id: str):
        from transformers import AutoModel, AutoTokenizer

        self.device, self.teacher_id = device, teacher_id
        self.model = AutoModel.from_pretrained(spec).to(device).eval()
        self._tokenizer = AutoTokenizer.from_pretrained(spec)
        self.dim = int(self.model.config.hidden_size)
        self.max_length = 256
        st_config = Path(spec) / "sentence_bert_config.json"
        if st_config.is_file():
            self.max_length = int(json.loads(st_config.read_text()).get("max_seq_length", self.max_length))

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        tokens = self._tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        tokens = {key: value.to(self.device) for key, value in tokens.items()}
        hidden = self.model(**tokens).last_hidden_state  # (batch, seq, hidden)
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
        return ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).float().cpu()


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_teacher(
    teacher: str,
    kind: TeacherKind = "auto",
    pretrained: str | None = None,
    open_clip_config: str | None = None,
    device: str = "auto",
    teacher_id: str | None = None,
) -> Teacher:
    """Load a frozen teacher.

    Args:
        teacher: transformers CLIP or text-encoder directory / Hub id, or an open_clip model name.
        kind: ``"clip"``, ``"open_clip"``, ``"sentence"`` or ``"auto"`` (open_clip when ``pretrained`` or
            ``open_clip_config`` is given, else the ``model_type`` of the directory's ``config.json``).
        pretrained: open_clip checkpoint path.
        open_clip_config: JSON file (or folder of them) of custom open_clip model configs to register first.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        teacher_id: Identity recorded in the shards (default: kind + model reference).

    Returns:
        The teacher, in eval mode.

    Raises:
        RuntimeError: If the model cannot be loaded (e.g. a Hub id while offline), naming the flag to use.
    """
    torch_device = _resolve_device(device)
    if kind == "auto":
        kind = "open_clip" if pretrained or open_clip_config else _detect_kind(teacher)
    if kind == "open_clip":
        import open_clip

        if open_clip_config:
            open_clip.add_model_config(open_clip_config)
        if pretrained and not Path(pretrained).exists():
            raise FileNotFoundError(
                f"open_clip checkpoint {pretrained!r} not found: pass an existing --pretrained path"
            )
        reference = f"{teacher}:{Path(pretrained).resolve() if pretrained else 'random'}"
        return OpenClipTeacher(teacher, pretrained, torch_device, teacher_id or f"open_clip:{reference}")
    reference = str(Path(teacher).resolve()) if Path(teacher).exists() else teacher
    loaders: dict[str, Callable[..., Teacher]] = {"clip": ClipTeacher, "sentence": SentenceTeacher}
    if kind not in loaders:
        raise ValueError(f"unknown teacher kind {kind!r}: use auto, clip, open_clip or sentence")
    try:
        return loaders[kind](teacher, torch_device, teacher_id or f"{kind}:{reference}")
    except OSError as error:
        raise _load_error(teacher, error) from error


def _load_error(teacher: str, error: Exception) -> RuntimeError:
    return RuntimeError(
        f"could not load teacher {teacher!r} ({type(error).__name__}: {str(error).splitlines()[0]}). No model can be "
        "downloaded here (HF_HUB_OFFLINE): pass a local model directory with --teacher /path/to/clip (a saved "
        "CLIPModel or text encoder), or an open_clip model name with --pretrained /path/to/checkpoint"
    )


def _detect_kind(teacher: str) -> TeacherKind:
    from transformers import AutoConfig

    try:
        model_type = AutoConfig.from_pretrained(teacher).model_type
    except (OSError, ValueError) as error:
        raise _load_error(teacher, error) from error
    return "clip" if model_type == "clip" else "sentence"


@dataclass
class EmbedConfig:
    """What ``graft pairs embed`` does.

    Attributes:
        pairs: Folder of pair shards (searched recursively for ``*.parquet``) or one shard file.
        teacher: Teacher reference (see :func:`load_teacher`).
        teacher_kind: ``"auto"``, ``"clip"``, ``"open_clip"`` or ``"sentence"``.
        pretrained: open_clip checkpoint path.
        open_clip_config: Custom open_clip model config JSON to register.
        text: Embed photo text into ``text_embedding`` instead of photos into ``embedding``.
        batch_size: Photos (or texts) per teacher forward pass.
        rows_per_batch: Tiles read and written per parquet batch (bounds memory).
        device: Device for the teacher.
        overwrite: Re-embed shards already embedded by the same teacher.
        teacher_id: Override the recorded teacher identity.
        report: Optional path of a JSON report.
    """

    pairs: str
    teacher: str
    teacher_kind: TeacherKind = "auto"
    pretrained: str | None = None
    open_clip_config: str | None = None
    text: bool = False
    batch_size: int = 64
    rows_per_batch: int = 64
    device: str = "auto"
    overwrite: bool = False
    teacher_id: str | None = None
    report: str | None = None

    @property
    def field(self) -> EmbedField:
        return "text_embedding" if self.text else "embedding"


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
    for stale in root.rglob(f"*{TMP_SUFFIX}"):
        logger.warning("removing %s left by an interrupted run", stale)
        stale.unlink()
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

    def _inputs(self, photos: pa.StructArray) -> tuple[list[int], list[Image.Image | str]]:
        source = "text" if self.config.text else "image"
        values = photos.field(source).to_pylist()
        valid = photos.is_valid().to_pylist()
        indices, inputs = [], []
        for index, (value, is_valid) in enumerate(zip(values, valid, strict=True)):
            if not is_valid:
                continue
            if self.config.text:
                if not value or not value.strip():
                    self.skipped["no text"] += 1
                    continue
                indices.append(index)
                inputs.append(value)
                continue
            if not value:
                self.skipped["no image bytes"] += 1
                continue
            try:
                inputs.append(_decode(value))
            except (UnidentifiedImageError, OSError, ValueError) as error:
                self.skipped[f"undecodable image ({type(error).__name__})"] += 1
                continue
            indices.append(index)
        return indices, inputs

    def _embed_texts(self, indices: list[int], texts: list[str], vectors: np.ndarray, has_vector: np.ndarray) -> None:
        """Fill ``vectors[indices]`` with the texts' embeddings, running the teacher on unseen texts only."""
        cache, dim, size = self.text_cache, self.teacher.dim, self.config.batch_size
        unseen = [text for text in dict.fromkeys(texts) if text not in cache]
        fresh: dict[str, np.ndarray] = {}
        for begin in range(0, len(unseen), size):
            chunk = unseen[begin : begin + size]
            embeds = self.teacher.embed_texts(chunk)
            if embeds.shape != (len(chunk), dim):
                raise RuntimeError(f"teacher returned shape {tuple(embeds.shape)}, expected ({len(chunk)}, {dim})")
            fresh.update(zip(chunk, _normalised_fp16(embeds), strict=True))
        for row, text in zip(indices, texts, strict=True):
            vectors[row] = cache[text] if text in cache else fresh[text]
            has_vector[row] = True
        room = TEXT_CACHE_SIZE - len(cache)
        if room > 0:
            cache.update(list(fresh.items())[:room])

    def embed_column(self, column: pa.ListArray) -> tuple[pa.ListArray, int]:
        offsets = np.asarray(column.offsets)
        start, stop = int(offsets[0]), int(offsets[-1])
        photos: pa.StructArray = column.values.slice(start, stop - start)
        indices, inputs = self._inputs(photos)
        dim = self.teacher.dim
        vectors = np.zeros((len(photos), dim), dtype=np.float16)
        has_vector = np.zeros(len(photos), dtype=bool)
        size = self.config.batch_size
        if self.config.text:
            self._embed_texts(indices, inputs, vectors, has_vector)  # type: ignore[arg-type]
            inputs = []
        for begin in range(0, len(inputs), size):
            chunk = inputs[begin : begin + size]
            if self.config.text:
                embeds = self.teacher.embed_texts(chunk)  # type: ignore[arg-type]
            else:
                embeds = self.teacher.embed_images(chunk)  # type: ignore[arg-type]
            if embeds.shape != (len(chunk), dim):
                raise RuntimeError(f"teacher returned shape {tuple(embeds.shape)}, expected ({len(chunk)}, {dim})")
            rows = indices[begin : begin + size]
            vectors[rows] = _normalised_fp16(embeds)
            has_vector[rows] = True
        # list<float16> with null where no embedding: offsets advance by dim only for embedded photos.
        item_offsets = np.concatenate([[0], np.cumsum(has_vector * dim)]).astype(np.int32)
        embedding = pa.ListArray.from_arrays(
            pa.array(item_offsets), pa.array(vectors[has_vector].reshape(-1)), mask=pa.array(~has_vector)
        )
        struct_type = photos.type
        arrays = []
        for i in range(struct_type.num_fields):
            name = struct_type.field(i).name
            arrays.append(embedding.cast(struct_type.field(i).type) if name == self.config.field else photos.field(i))
        rebuilt = pa.StructArray.from_arrays(arrays, fields=list(struct_type), mask=photos.is_null())
        new_offsets = pa.array(offsets - start, type=pa.int32())
        result = pa.ListArray.from_arrays(new_offsets, rebuilt, type=column.type, mask=column.is_null())
        return result, len(indices)


def _check_schema(schema: pa.Schema, path: Path, field_name: str) -> None:
    if "photos" not in schema.names:
        raise ValueError(f"{path} has no 'photos' column: it is not a pair shard (rebuild with `graft pairs build`)")
    photo_type = schema.field("photos").type.value_type
    if not pa.types.is_struct(photo_type) or photo_type.get_field_index(field_name) < 0:
        raise ValueError(f"{path}: photos have no {field_name!r} field; rebuild the shard with `graft pairs build`")
    value_type = photo_type.field(field_name).type
    if not (pa.types.is_list(value_type) and pa.types.is_floating(value_type.value_type)):
        raise ValueError(f"{path}: photos.{field_name} is {value_type}, expected list<float16> (the pairs schema)")


def _embed_shard(
    path: Path,
    teacher: Teacher,
    config: EmbedConfig,
    report: EmbedReport,
    progress,
    text_cache: dict[str, np.ndarray] | None = None,
) -> None:
    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    _check_schema(schema, path, config.field)
    record = json.loads((schema.metadata or {}).get(EMBED_METADATA_KEY, b"{}"))
    record[config.field] = {
        "teacher": teacher.teacher_id,
        "dim": teacher.dim,
        "dtype": "float16",
        "normalized": True,
        "source": "text" if config.text else "image",
    }
    metadata = {**(schema.metadata or {}), EMBED_METADATA_KEY: json.dumps(record).encode()}
    out_schema = schema.with_metadata(metadata)
    photos_index = schema.get_field_index("photos")
    embedder = _ShardEmbedder(teacher, config, Counter(), text_cache)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        with pq.ParquetWriter(tmp, out_schema) as writer:
            for batch in parquet.iter_batches(batch_size=config.rows_per_batch):
                column, embedded = embedder.embed_column(batch.column(photos_index))
                columns = [column if i == photos_index else batch.column(i) for i in range(batch.num_columns)]
                writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=out_schema))
                report.photos_embedded += embedded
                report.tiles += batch.num_rows
                progress.update(batch.num_rows)
        tmp.replace(path)  # atomic on one filesystem: readers see the old or the new shard, never half
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for reason, count in embedder.skipped.items():
        report.photos_skipped[reason] = report.photos_skipped.get(reason, 0) + count


def embed_pairs(config: EmbedConfig, teacher: Teacher | None = None) -> EmbedReport:
    """Embed every shard of ``config.pairs`` that the teacher has not embedded yet.

    Args:
        config: What to embed and how.
        teacher: An already loaded teacher (default: loaded from ``config``).

    Returns:
        The report (also written to ``config.report`` when set).
    """
    from tqdm.auto import tqdm

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
    report = EmbedReport(teacher_id=teacher.teacher_id, dim=teacher.dim, field=config.field, shards_total=len(shards))
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
        Path(config.report).write_text(json.dumps(report.to_dict(), indent=2))
    return report
