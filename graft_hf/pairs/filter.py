"""``graft pairs filter``: an optional stage between the photo table and ``graft pairs build`` that removes exact
duplicates (same photo id), indoor photos (an outdoor score below a threshold) and near-duplicate photos (same
perceptual hash, within a few bits).

It writes two tables:

* ``output``: the kept photos, every input column plus ``image_hash`` (pHash, 16 hex digits; see
  :mod:`graft_hf.pairs.phash`) and ``outdoor_score`` (float, null when no scorer was given); relative image paths
  are rewritten relative to the output's folder, the images themselves are neither copied nor re-encoded;
* ``<stem>.scored.parquet``: every input row with both columns and ``filter_reason`` (null for kept rows). Running
  the filter again on it with another threshold or distance reuses the stored scores and hashes: no teacher and no
  image reads are needed.

Filtering is opt-in: ``graft pairs build`` takes an unfiltered table (id, lat, lon, time, image) as it is.
Scorers: the CLIP teacher zero-shot (:class:`graft_hf.pairs.outdoor.ZeroShotOutdoorScorer`), a transformers
image classifier, or from Python any callable mapping photos to scores.

No ``from __future__ import annotations`` here: the config is a strict dataclass.
"""

import io
import logging
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from graft_hf.config import config_dataclass, require
from graft_hf.io import atomic_path, write_json

from .outdoor import ClassifierOutdoorScorer, OutdoorScorer, ZeroShotOutdoorScorer
from .phash import near_duplicates, phash
from .photos import _ALIASES, _read_table

__all__ = ["FilterConfig", "filter_photos", "scored_path"]

logger = logging.getLogger(__name__)

_URL_PREFIXES = ("http://", "https://", "s3://", "gs://")


@config_dataclass
class FilterConfig:
    """What ``graft pairs filter`` removes.

    Attributes:
        photos: Photo table (parquet or CSV) with an image column (paths relative to the table, or bytes).
        output: Filtered photo table to write (parquet).
        teacher: CLIP teacher for the zero-shot outdoor score: a transformers CLIP directory or an open_clip model
            name (with ``pretrained``); the same teacher as ``graft pairs embed``.
        teacher_kind: ``auto``, ``clip`` or ``open_clip``.
        pretrained: open_clip checkpoint path.
        classifier: A transformers image-classification model directory to score photos instead of the teacher.
        outdoor_labels: The classifier's labels whose probabilities add up to the outdoor score.
        outdoor_threshold: Photos scoring below this are removed as indoor (0.5: the teacher prefers the indoor
            prompts).
        max_hash_distance: Photos whose pHash differs from an earlier kept photo's in at most this many of the 64
            bits are removed as near duplicates; -1 keeps them.
        rescore: Recompute ``outdoor_score`` and ``image_hash`` even when the table has them.
        batch_size: Photos per scorer forward pass.
        threads: Threads decoding photos.
        device: Device of the teacher or classifier.
        image_column: Image column (default: the aliases ``graft pairs build`` knows).
        progress: Show a progress bar.
    """

    photos: str
    output: str
    teacher: str | None = None
    teacher_kind: Literal["auto", "clip", "open_clip"] = "auto"
    pretrained: str | None = None
    classifier: str | None = None
    outdoor_labels: tuple[str, ...] = ("outdoor",)
    outdoor_threshold: float = 0.5
    max_hash_distance: int = 4
    rescore: bool = False
    batch_size: int = 32
    threads: int = 4
    device: str = "auto"
    image_column: str | None = None
    progress: bool = True

    def validate_values(self) -> None:
        """One scorer at most; threshold, distance and sizes in range."""
        require(
            self.teacher is None or self.classifier is None,
            "classifier",
            "give either a teacher (zero-shot) or a classifier, not both",
        )
        require(
            0 <= self.outdoor_threshold <= 1, "outdoor_threshold", f"must be in [0, 1], got {self.outdoor_threshold}"
        )
        require(-1 <= self.max_hash_distance <= 32, "max_hash_distance", "must be in -1..32")
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        require(self.threads >= 1, "threads", f"must be >= 1, got {self.threads}")


def scored_path(output: str | os.PathLike) -> Path:
    """``<stem>.scored.parquet`` beside ``output``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.scored.parquet")


def _column(table: pa.Table, role: str, explicit: str | None, key: str) -> str:
    if explicit is not None:
        require(explicit in table.column_names, key, f"no column {explicit!r}; columns: {table.column_names}")
        return explicit
    names = {name.lower(): name for name in table.column_names}
    found = next((names[a] for a in _ALIASES[role] if a in names), None)
    require(found is not None, key, f"the photo table has no {role} column (one of {list(_ALIASES[role])})")
    return found  # type: ignore[return-value]


def _open(value: object, base: Path) -> Image.Image | None:
    """The RGB photo of an image cell (path relative to ``base`` or absolute, bytes, or a datasets Image struct)."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    try:
        if isinstance(value, (bytes, bytearray)):
            image = Image.open(io.BytesIO(value))
        elif isinstance(value, str) and value and not value.startswith(_URL_PREFIXES):
            path = Path(value) if Path(value).is_absolute() else base / value
            image = Image.open(path)
        else:
            return None
        image.load()
        return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return None


def _scorer(config: FilterConfig) -> OutdoorScorer | None:
    if config.classifier is not None:
        return ClassifierOutdoorScorer(config.classifier, config.outdoor_labels, config.device)
    if config.teacher is not None:
        from .teachers import load_teacher

        teacher = load_teacher(config.teacher, config.teacher_kind, config.pretrained, device=config.device)
        return ZeroShotOutdoorScorer(teacher)
    return None


def _hash_and_score(
    config: FilterConfig, images: list[object], base: Path, rows: np.ndarray, scorer: OutdoorScorer | None,
    hashes: list[str | None], scores: np.ndarray, unreadable: np.ndarray,
) -> None:  # fmt: skip
    """Fill ``hashes``/``scores`` (in place) for ``rows``; unreadable photos are flagged."""
    with (
        ThreadPoolExecutor(config.threads) as pool,
        tqdm(total=len(rows), desc="filter", unit=" photos", disable=not config.progress) as bar,
    ):
        for start in range(0, len(rows), config.batch_size):
            batch = rows[start : start + config.batch_size]
            opened = list(pool.map(lambda i: _open(images[i], base), batch))
            good = [(i, image) for i, image in zip(batch, opened) if image is not None]
            for i, image in zip(batch, opened):
                unreadable[i] = image is None
            for i, image in good:
                hashes[i] = phash(image)
            if scorer is not None and good:
                scores[[i for i, _ in good]] = np.asarray(scorer([image for _, image in good]), dtype=np.float64)
            bar.update(len(batch))


def _relocated(values: list[object], source: Path, target: Path) -> list[object]:
    """Relative image paths rewritten from the input table's folder to the output table's folder."""
    if source.resolve() == target.resolve():
        return values
    out = []
    for value in values:
        if isinstance(value, str) and value and not value.startswith(_URL_PREFIXES) and not Path(value).is_absolute():
            value = os.path.relpath(source / value, target)
        out.append(value)
    return out


def filter_photos(config: FilterConfig, scorer: OutdoorScorer | None = None) -> dict:
    """Filter a photo table (see the module docstring).

    Args:
        config: What to remove.
        scorer: A callable photos -> outdoor scores to use instead of ``config.teacher``/``classifier``.

    Returns:
        The report (also written as ``<stem>.report.json`` beside ``output``).
    """
    started = time.perf_counter()
    source = Path(config.photos)
    if not source.is_file():
        raise FileNotFoundError(f"photo table {source} not found")
    table = _read_table(source)
    id_column = _column(table, "photo_id", None, "photos")
    image_column = _column(table, "image", config.image_column, "image_column")
    n = table.num_rows
    ids = [str(v) for v in table.column(id_column).to_pylist()]
    reason: list[str | None] = [None] * n
    seen: set[str] = set()
    for i, photo_id in enumerate(ids):
        if photo_id in seen:
            reason[i] = "duplicate_photo_id"
        seen.add(photo_id)
    has = {name: name in table.column_names and not config.rescore for name in ("image_hash", "outdoor_score")}
    hashes = table.column("image_hash").to_pylist() if has["image_hash"] else [None] * n
    scores = (
        table.column("outdoor_score").to_numpy(zero_copy_only=False).astype(np.float64)
        if has["outdoor_score"] else np.full(n, np.nan)
    )  # fmt: skip
    scorer = scorer if scorer is not None else (None if has["outdoor_score"] else _scorer(config))
    candidates = np.array([i for i in range(n) if reason[i] is None], dtype=np.int64)
    todo = candidates if scorer is not None else candidates[[hashes[i] is None for i in candidates]]
    unreadable = np.zeros(n, dtype=bool)
    _hash_and_score(
        config, table.column(image_column).to_pylist(), source.parent, todo, scorer, hashes, scores, unreadable
    )
    scored = not np.isnan(scores[candidates]).all() if len(candidates) else scorer is not None
    for i in candidates:
        if unreadable[i]:
            reason[i] = "unreadable_image"
        elif scored and not scores[i] >= config.outdoor_threshold:
            reason[i] = "indoor"
    if config.max_hash_distance >= 0:
        alive = [i for i in range(n) if reason[i] is None]
        duplicate, _ = near_duplicates([hashes[i] for i in alive], config.max_hash_distance)
        for i in np.asarray(alive)[duplicate]:
            reason[i] = "near_duplicate"
    return _write(config, table, image_column, hashes, scores, reason, scored, time.perf_counter() - started)


def _write(
    config: FilterConfig, table: pa.Table, image_column: str, hashes: list, scores: np.ndarray, reason: list,
    scored: bool, seconds: float,
) -> dict:  # fmt: skip
    output = Path(config.output)
    images = _relocated(table.column(image_column).to_pylist(), Path(config.photos).parent, output.parent)
    ours = ("image_hash", "outdoor_score", "filter_reason")  # replaced when filtering a scored table again
    columns = {name: table.column(name) for name in table.column_names if name not in ours}
    columns[image_column] = pa.array(images, type=table.schema.field(image_column).type)
    columns["image_hash"] = pa.array(hashes, pa.string())
    columns["outdoor_score"] = pa.array(np.where(np.isnan(scores), None, scores).tolist(), pa.float64())
    full = pa.table(columns).append_column("filter_reason", pa.array(reason, pa.string()))
    kept = full.filter(pa.array([r is None for r in reason])).drop_columns("filter_reason")
    with atomic_path(scored_path(output)) as tmp:
        pq.write_table(full, tmp)
    with atomic_path(output) as tmp:
        pq.write_table(kept, tmp)
    report = {
        "photos_read": table.num_rows,
        "photos_kept": kept.num_rows,
        "removed": dict(sorted(Counter(r for r in reason if r is not None).items())),
        "outdoor_scored": bool(scored),
        "outdoor_threshold": config.outdoor_threshold if scored else None,
        "image_hash": "pHash (imagehash.phash): 32x32 Lanczos grayscale, 2-D DCT-II, 8x8 low block > median, hex",
        "max_hash_distance": config.max_hash_distance,
        "seconds": round(seconds, 3),
        "photos_per_second": round(table.num_rows / seconds, 2) if seconds > 0 else None,
        "output": str(output),
        "scored_table": str(scored_path(output)),
    }
    if not scored:
        logger.info("no outdoor scorer given (teacher or classifier): indoor photos were not removed")
    write_json(output.with_name(f"{output.stem}.report.json"), report)
    logger.info("kept %d of %d photos in %s; removed %s", kept.num_rows, table.num_rows, output, report["removed"])
    return report
