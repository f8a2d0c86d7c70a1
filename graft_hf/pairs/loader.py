"""Streaming training loader over pair shards: shuffled, split by node and by worker, augmented, packed.

Data flow::

    load_dataset(folder_or_repo, streaming=True)       # parquet shards, README ``configs:`` block
      -> .shuffle(seed, buffer_size)                   # shard order + example buffer (train only)
      -> split_dataset_by_node(rank, world_size)       # whole shards per node when they divide evenly
      -> PairsIterableDataset                          # DataLoader workers read distinct shards
           rows read as Arrow tables of ARROW_ROWS rows (precomputed targets), in the stream's order
           decode crop; draw a random rotated/translated 224 view (or the centre view); targets per photo
           geometry="batched" (default): keep the 8-bit crop and the view's parameters
           geometry="per_sample": resample the view with PIL, CLIP-normalise, photo (row, col) -> view coordinates
      -> collate_pairs                                 # ragged photo counts packed with masks; crops stacked
                                                       # channels-last, as decoded (one contiguous copy)
      -> render_batch_views (geometry="batched")       # on the training device: one grid_sample per batch

The batch (the contract between loader and training task): ``pixel_values (batch, 3, 224, 224)``, ``ground_embeds
(batch, max_photos, dim)``, ``ground_mask (batch, max_photos)``, ``ground_pixel_coords (batch, max_photos, 2)``,
``ground_in_view (batch, max_photos)``, ``tile_id``; ``ground_pixel_values (batch, max_photos, 3, H, W)`` replaces
``ground_embeds`` when targets are computed on the fly by a teacher, and ``ground_text_embeds (batch, max_photos,
dim)`` comes beside ``ground_embeds`` for the ``image+text`` target.

With ``geometry="batched"`` the collated batch carries ``crops (batch, 3, height, width)`` uint8, ``views (batch, 4)``
and ``ground_crop_coords (batch, max_photos, 2)`` instead of ``pixel_values``, ``ground_pixel_coords`` and
``ground_in_view``; :func:`render_batch_views` (called by the training task's ``batch_to_device``) turns them into the
contract above on whatever device the batch is on. Both paths draw the same views and give the same batch within
interpolation tolerance (tests/pairs/test_loader.py), so DataLoader workers only read, decode and collate.

Augmentation randomness is drawn from ``(seed, epoch, tile_id)``, so a tile gets the same view for a given seed
and epoch whichever node or worker reads it.

Configuration: :class:`PairsStreamOptions` holds how shards are streamed and augmented; :class:`LoaderConfig` adds
where they are and how one DataLoader batches them. A training run's ``data`` section
(:class:`graft_hf.training.sections.DataSection`) is the same :class:`PairsStreamOptions` plus its path and
validation split, and builds its :class:`LoaderConfig` from them.
"""

import dataclasses
import io
import logging
import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import IterableDataset, load_dataset
from datasets.distributed import split_dataset_by_node
from PIL import Image, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from graft_hf.config import config_dataclass, require
from graft_hf.pairs.augment import (
    center_view,
    extract_view_pil,
    random_view,
    view_points,
    view_vector,
)
from graft_hf.pairs.collate import collate_pairs, render_batch_views
from graft_hf.pairs.schema import photo_image_bytes
from graft_hf.workers import exit_with_parent

__all__ = [
    "ARROW_ROWS",
    "PRECOMPUTED_TARGETS",
    "LoaderConfig",
    "PairsIterableDataset",
    "PairsStreamOptions",
    "build_pairs_dataloader",
    "collate_pairs",
    "open_pairs_stream",
    "render_batch_views",
]

logger = logging.getLogger(__name__)

TargetKind = Literal["auto", "embedding", "text_embedding", "image+text", "pixels"]
Geometry = Literal["batched", "per_sample"]
#: A teacher's preprocessing: one RGB photo to a tensor of shape ``(3, height, width)``.
TeacherPreprocess = Callable[[Image.Image], torch.Tensor]
#: Targets read from the shards, per loader target: batch key -> photo column.
PRECOMPUTED_TARGETS: dict[str, dict[str, str]] = {
    "embedding": {"ground_embeds": "embedding"},
    "text_embedding": {"ground_embeds": "text_embedding"},
    "image+text": {"ground_embeds": "embedding", "ground_text_embeds": "text_embedding"},
}
#: Rows of an Arrow stream read as one table by :meth:`PairsIterableDataset.prepare_arrow_rows`.
ARROW_ROWS = 64
#: A kept photo: ``(row, col, targets)`` with one tensor per batch key of the target.
_Photo = tuple[float, float, tuple[torch.Tensor, ...]]


@config_dataclass
class PairsStreamOptions:
    """How pair shards are streamed and augmented (shared by :class:`LoaderConfig` and a training run's ``data``).

    Attributes:
        name: Dataset config name (``None``: the default config).
        split: Split to read (in a training run: the training split).
        num_workers: DataLoader worker processes (per process); each reads distinct shards.
        shuffle_buffer: Examples held in the streaming shuffle buffer (training only).
        interleave_shards: Shards read at once to fill the shuffle buffer (``datasets``'
            ``max_buffer_input_shards``; better mixing). Above 1, ``datasets`` waits a few seconds at the end of
            each pass for its reader threads (an Arrow workaround): use 1 for short runs such as tests.
        max_photos: Most photos kept per tile (a random subset in training, the first ones in evaluation).
        rotate: Rotate training views by a uniform angle in ``[0, 360)``.
        translate: Translate training views anywhere inside the crop.
        right_angles: Rotate by multiples of 90 degrees only (exact, axis-aligned views), for crops no larger than
            about ``view_size * sqrt(2)``, such as 64 px EuroSAT tiles seen whole.
        geometry: Where views are resampled and normalised: ``"batched"`` (default; the loader only decodes and
            collates 8-bit crops and :func:`render_batch_views` resamples the whole batch on the training device)
            or ``"per_sample"`` (PIL in the DataLoader workers; batches carry ``pixel_values`` directly).
    """

    name: str | None = None
    split: str = "train"
    num_workers: int = 2
    shuffle_buffer: int = 1000
    interleave_shards: int = 10
    max_photos: int = 25
    rotate: bool = True
    translate: bool = True
    right_angles: bool = False
    geometry: Geometry = "batched"

    def validate_counts(self) -> None:
        for key in ("shuffle_buffer", "interleave_shards", "max_photos"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        require(self.num_workers >= 0, "num_workers", f"must be >= 0, got {self.num_workers}")

    def stream_options(self) -> dict[str, Any]:
        """The :class:`PairsStreamOptions` fields of this config, as keyword arguments."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(PairsStreamOptions)}


@config_dataclass
class LoaderConfig(PairsStreamOptions):
    """How to stream, augment and batch pair shards: :class:`PairsStreamOptions` plus the following.

    Attributes:
        data: Local folder of parquet shards (with a README ``configs:`` block or a ``data/`` layout) or a Hub
            dataset repo id (keyword only, required).
        train: Training mode (shuffle, random rotation and translation); ``False`` gives the evaluation mode
            (shard order, no rotation, centre view).
        target: Per-photo target: ``"embedding"`` (precomputed teacher image embedding), ``"text_embedding"``
            (precomputed text embedding, the alt-text ablation; returned as ``ground_embeds``), ``"image+text"``
            (both: ``ground_embeds`` and ``ground_text_embeds``; photos lacking either are dropped), ``"pixels"``
            (decode the photo and apply a teacher preprocess, giving ``ground_pixel_values``), or ``"auto"``
            (``"embedding"`` when the first tile carries embeddings, else ``"pixels"``).
        batch_size: Tiles per batch.
        seed: Seed for the shard order, the buffer and the augmentation.
        view_size: Side of the student's view in pixels (native resolution).
        rank: This node's rank; ``None`` reads ``torch.distributed`` or the ``RANK`` variable (default 0).
        world_size: Number of nodes; ``None`` reads ``torch.distributed`` or ``WORLD_SIZE`` (default 1).
        drop_last: Drop the last incomplete batch.
        pin_memory: Pin batches (for GPU training).
        image_mean: Per-channel mean for normalisation (CLIP's by default).
        image_std: Per-channel std for normalisation (CLIP's by default).
    """

    data: str = field(kw_only=True)
    train: bool = True
    target: TargetKind = "auto"
    batch_size: int = 32
    seed: int = 0
    view_size: int = 224
    rank: int | None = None
    world_size: int | None = None
    drop_last: bool = False
    pin_memory: bool = False
    image_mean: tuple[float, float, float] = tuple(OPENAI_CLIP_MEAN)
    image_std: tuple[float, float, float] = tuple(OPENAI_CLIP_STD)

    def validate_sizes(self) -> None:
        for key in ("batch_size", "view_size"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")

    def resolved_rank_world(self) -> tuple[int, int]:
        """The ``(rank, world_size)`` to split by: explicit values, else ``torch.distributed``, else env vars."""
        if self.rank is not None or self.world_size is not None:
            rank, world = self.rank or 0, self.world_size or 1
        elif torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        if not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world}")
        return rank, world


def _load_stream(config: LoaderConfig) -> IterableDataset:
    try:
        return load_dataset(config.data, config.name, split=config.split, streaming=True)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"no pair shards found at {config.data!r} (split {config.split!r}): pass the folder written by "
            f"`graft pairs build` or a Hub dataset repo id ({error})"
        ) from error


def open_pairs_stream(config: LoaderConfig, arrow: bool = False) -> IterableDataset:
    """Open the shards as a streaming ``datasets.IterableDataset``, shuffled (train) and split for this node.

    Nothing is decoded by ``datasets`` (``decode(False)``): the loader decodes the crop once, in its worker, and the
    ground photos only for on-the-fly targets.

    Args:
        config: Loader configuration.
        arrow: Yield each row as a one-row ``pyarrow.Table`` instead of a Python dict. Precomputed targets are
            then read straight from Arrow buffers (:meth:`PairsIterableDataset.prepare_arrow`), skipping the
            conversion of every float of every photo embedding to a Python object (the loader's main cost on
            small tiles).

    Returns:
        The node's ``datasets.IterableDataset`` of raw rows.
    """
    # Nothing decoded by datasets: the crop is decoded once, in the worker, and ground photos only for on-the-fly
    # targets (both come as {"bytes", "path"} dicts; photo images of older shards as plain bytes).
    stream = _load_stream(config).decode(False)
    if arrow:
        # Before shuffle/split: those keep the format, while with_format() on a shuffled stream drops its
        # per-epoch reshuffling.
        stream = stream.with_format("arrow")
    if config.train:
        stream = stream.shuffle(
            seed=config.seed, buffer_size=config.shuffle_buffer, max_buffer_input_shards=config.interleave_shards
        )
    rank, world = config.resolved_rank_world()
    num_shards = stream.num_shards
    if world > 1:
        if num_shards % world != 0:
            logger.warning(
                "%d shards do not divide among %d nodes: every node will read every shard and keep 1 tile in %d "
                "(correct but %d times the I/O). Rebuild the pairs with a shard count that is a multiple of "
                "world_size x num_workers (e.g. %d).",
                num_shards,
                world,
                world,
                world,
                world * max(config.num_workers, 1),
            )
        stream = split_dataset_by_node(stream, rank=rank, world_size=world)
    per_node = num_shards // world if num_shards % world == 0 else num_shards
    if config.num_workers > 1 and per_node % config.num_workers != 0:
        logger.warning(
            "%d shards per node over %d DataLoader workers: %s. Use a shard count that is a multiple of "
            "world_size x num_workers (%d).",
            per_node,
            config.num_workers,
            "some workers will have nothing to read" if per_node < config.num_workers else "workers are unbalanced",
            world * config.num_workers,
        )
    return stream


def _tile_rng(seed: int, epoch: int, tile_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, zlib.crc32(tile_id.encode("utf-8"))])


def _decode_rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def _decode_crop(image: Any, as_tensor: bool) -> Image.Image | torch.Tensor:
    """Decode the crop (an ``Image`` dict of bytes, or a PIL image): RGB PIL image, or uint8 ``(3, height, width)``.

    The tensor comes straight from ``torchvision.io.decode_image`` (libjpeg-turbo / libpng, no intermediate copy);
    formats it cannot read go through PIL.
    """
    if isinstance(image, Image.Image):
        rgb = image.convert("RGB")
        return torch.from_numpy(np.array(rgb)).permute(2, 0, 1) if as_tensor else rgb
    data = image["bytes"]
    if as_tensor:
        try:
            return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
        except RuntimeError:
            pass  # not a format torchvision reads: PIL below raises for bytes that are no image at all
    rgb = _decode_rgb(data)
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1) if as_tensor else rgb


class PairsIterableDataset(torch.utils.data.IterableDataset):
    """Turns raw shard rows into training samples (one per tile with at least one valid target).

    Each sample is a dict: ``pixel_values (3, view, view)``, ``ground_pixel_coords (n, 2)``, ``ground_in_view
    (n,)``, ``tile_id``, and ``ground_embeds (n, dim)`` (plus ``ground_text_embeds (n, dim)`` for ``image+text``)
    or ``ground_pixel_values (n, 3, H, W)``.

    Inside DataLoader workers the wrapped ``datasets`` stream hands each worker distinct shards. Counters of
    skipped tiles and dropped photos are kept in :attr:`stats` (per process) and logged when a pass ends.

    Args:
        stream: The node's ``datasets.IterableDataset`` (see :func:`open_pairs_stream`); ``None`` for a dataset
            used only to :meth:`prepare` rows.
        config: Loader configuration; ``target`` must be resolved (not ``"auto"``).
        teacher_preprocess: Required for ``target="pixels"``: photo to ``(3, H, W)`` tensor.
    """

    def __init__(
        self, stream: IterableDataset | None, config: LoaderConfig, teacher_preprocess: TeacherPreprocess | None = None
    ) -> None:
        super().__init__()
        if config.target == "auto":
            raise ValueError("resolve target='auto' before building the dataset (build_pairs_dataloader does)")
        if config.target == "pixels" and teacher_preprocess is None:
            raise ValueError(
                "target='pixels' decodes ground photos on the fly and needs a teacher preprocess callable; pass "
                "teacher_preprocess, or precompute embeddings with `graft pairs embed` and use target='embedding'"
            )
        self.stream = stream
        self.config = config
        self.teacher_preprocess = teacher_preprocess
        self.epoch = 0
        self.stats: Counter[str] = Counter()
        self._columns = PRECOMPUTED_TARGETS.get(config.target)  # None: decoded photos
        self._target_keys = tuple(self._columns) if self._columns else ("ground_pixel_values",)
        self._missing_stat = "photos_without_" + "_and_".join(self._columns.values()) if self._columns else ""
        # (x / 255 - mean) / std as one multiply-add per pixel.
        std = np.asarray(config.image_std, dtype=np.float32)
        self._scale = 1.0 / (255.0 * std)
        self._shift = -np.asarray(config.image_mean, dtype=np.float32) / std

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle shards and buffer and redraw augmentations for ``epoch`` (call before iterating)."""
        self.epoch = epoch
        self.stream.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.stats = Counter()
        for sample in self._stream_samples():
            if sample is not None:
                yield sample
        worker = torch.utils.data.get_worker_info()
        where = f"worker {worker.id}" if worker is not None else "main process"
        skipped = {key: value for key, value in self.stats.items() if key != "tiles_yielded"}
        logger.info(
            "pairs pass done (%s, epoch %d): %d tiles, %s", where, self.epoch, self.stats["tiles_yielded"], skipped
        )

    def _targets(self, photo: dict[str, Any]) -> tuple[torch.Tensor, ...] | None:
        """The photo's targets, one tensor per batch key, or ``None`` (counted) when it lacks one."""
        if self._columns is not None:
            values = [photo.get(column) for column in self._columns.values()]
            if not all(values):
                self.stats[self._missing_stat] += 1
                return None
            return tuple(torch.from_numpy(np.asarray(v, dtype=np.float32)) for v in values)
        data = photo_image_bytes(photo.get("image"))
        if data is None:
            self.stats["photos_without_image_bytes"] += 1
            return None
        try:
            image = _decode_rgb(data)
        except (UnidentifiedImageError, OSError, ValueError):
            self.stats["photos_undecodable"] += 1
            return None
        assert self.teacher_preprocess is not None
        return (self.teacher_preprocess(image),)

    def prepare(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """Build one sample from a raw shard row, or ``None`` (counted in :attr:`stats`) when it has no target.

        Args:
            row: A shard row; ``image`` as ``{"bytes": ..., "path": ...}`` or a ``PIL.Image``.

        Returns:
            The sample dict described in the class docstring, or ``None``.
        """
        kept: list[_Photo] = []
        for photo in row.get("photos") or []:
            targets = self._targets(photo)
            if targets is not None:
                kept.append((float(photo["row"]), float(photo["col"]), targets))
        return self._sample(str(row["tile_id"]), row["image"], kept)

    def _stream_samples(self) -> Iterator[dict[str, Any] | None]:
        """Samples (``None`` for a skipped tile) of the stream's rows, in the stream's order.

        One-row tables (a stream opened with ``arrow=True``) are gathered :data:`ARROW_ROWS` at a time and read as
        one table by :meth:`prepare_arrow_rows`, which pays the Arrow calls per group instead of per row. The
        stream, its order, its shuffle buffer and its sharding are untouched: the samples are those of the
        one-row path, in its order.
        """
        pending: list[pa.Table] = []
        for row in self.stream:
            if not isinstance(row, pa.Table):
                yield self.prepare(row)
                continue
            pending.append(row)
            if len(pending) == ARROW_ROWS:
                yield from self.prepare_arrow_rows(pa.concat_tables(pending))
                pending = []
        if pending:
            yield from self.prepare_arrow_rows(pa.concat_tables(pending))

    def prepare_arrow(self, table: pa.Table) -> dict[str, Any] | None:
        """:meth:`prepare` for a one-row ``pyarrow.Table`` (a stream opened with ``arrow=True``).

        Args:
            table: One shard row as a table.

        Returns:
            The sample dict (identical to the one :meth:`prepare` builds), or ``None``.
        """
        return self.prepare_arrow_rows(table)[0]

    def prepare_arrow_rows(self, table: pa.Table) -> list[dict[str, Any] | None]:
        """:meth:`prepare` for each row of a ``pyarrow.Table`` of shard rows, in order.

        Precomputed targets are read from the Arrow buffers as one array per column for the whole table; decoded
        photos go through :meth:`prepare`. Each sample is identical to the one :meth:`prepare` builds.

        Args:
            table: Shard rows (any number).

        Returns:
            One sample dict, or ``None`` (counted in :attr:`stats`), per row.
        """
        if self._columns is None:
            return [self.prepare(row) for row in table.to_pylist()]
        photos = table.column("photos").combine_chunks()  # (rows,) list of photo structs
        counts = pc.fill_null(pc.list_value_length(photos), 0).to_numpy(zero_copy_only=False)
        structs = photos.flatten()  # (photos of all rows,) struct array; null lists contribute none
        per_photo = self._arrow_targets(structs) if len(structs) else []
        bounds = np.concatenate([[0], np.cumsum(counts)])
        tile_ids = table.column("tile_id").to_pylist()
        images = table.column("image").to_pylist()
        return [
            self._sample(
                str(tile_ids[i]), images[i], [p for p in per_photo[bounds[i] : bounds[i + 1]] if p is not None]
            )
            for i in range(table.num_rows)
        ]

    def _arrow_targets(self, structs: pa.StructArray) -> list[_Photo | None]:
        """Per photo of a struct array of photos: the photo with its targets, or ``None`` (counted) when it lacks
        one of the target columns."""
        assert self._columns is not None
        usable = np.asarray(structs.is_valid(), dtype=bool)
        columns = []  # per target column: (all values, start offset of each photo)
        for column in self._columns.values():
            vectors = structs.field(column)
            lengths = pc.fill_null(pc.list_value_length(vectors), 0).to_numpy(zero_copy_only=False)
            usable &= lengths > 0
            values = np.asarray(vectors.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
            columns.append((values, np.concatenate([[0], np.cumsum(lengths)])))  # null lists contribute no values
        missing = int((~usable).sum())
        if missing:
            self.stats[self._missing_stat] += missing
        rows = structs.field("row").to_numpy(zero_copy_only=False)
        cols = structs.field("col").to_numpy(zero_copy_only=False)
        return [
            (
                float(rows[i]),
                float(cols[i]),
                # Views into the table's own float32 arrays: _sample stacks them once.
                tuple(torch.from_numpy(values[starts[i] : starts[i + 1]]) for values, starts in columns),
            )
            if usable[i]
            else None
            for i in range(len(structs))
        ]

    def _sample(self, tile_id: str, image: Any, kept: list[_Photo]) -> dict[str, Any] | None:
        """Subsample photos, decode the crop, draw the view and move the photo positions into it."""
        config = self.config
        rng = _tile_rng(config.seed, self.epoch, tile_id)
        if len(kept) > config.max_photos:
            self.stats["photos_over_max"] += len(kept) - config.max_photos
            if config.train:
                chosen = np.sort(rng.choice(len(kept), size=config.max_photos, replace=False))
                kept = [kept[int(i)] for i in chosen]
            else:
                kept = kept[: config.max_photos]
        if not kept:
            self.stats["tiles_skipped_no_target"] += 1
            return None
        batched = config.geometry == "batched"
        try:
            crop = _decode_crop(image, as_tensor=batched)
        except (UnidentifiedImageError, OSError, ValueError, TypeError):
            self.stats["tiles_skipped_bad_image"] += 1
            return None
        height, width = (crop.shape[1], crop.shape[2]) if batched else (crop.height, crop.width)
        if config.train:
            view = random_view(
                rng,
                height,
                width,
                config.view_size,
                rotate=config.rotate,
                translate=config.translate,
                right_angles=config.right_angles,
            )
        else:
            view = center_view(height, width, config.view_size)
        points = np.array([(r, c) for r, c, _ in kept], dtype=np.float64)
        sample: dict[str, Any] = {"tile_id": tile_id}
        if batched:
            sample["crop"] = crop  # (3, height, width) uint8
            sample["view"] = torch.from_numpy(view_vector(view))
            sample["ground_crop_coords"] = torch.from_numpy(points)
            sample["render"] = (config.view_size, tuple(config.image_mean), tuple(config.image_std))
        else:
            # Resample on uint8 with PIL and normalise in numpy: single-threaded C, cheap inside DataLoader workers.
            pixels = np.asarray(extract_view_pil(crop, view), dtype=np.float32)  # (view, view, 3) in [0, 255]
            pixels = pixels * self._scale + self._shift
            sample["pixel_values"] = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
            coords, in_view = view_points(points, view)
            sample["ground_pixel_coords"] = torch.from_numpy(coords.astype(np.float32))
            sample["ground_in_view"] = torch.from_numpy(in_view)
        per_key = zip(*(targets for _, _, targets in kept), strict=True)  # one tuple of photo targets per key
        for key, targets in zip(self._target_keys, per_key, strict=True):
            sample[key] = torch.stack(targets)
        self.stats["tiles_yielded"] += 1
        return sample


def _resolve_target(config: LoaderConfig, teacher_preprocess: TeacherPreprocess | None) -> str:
    if config.target != "auto":
        return config.target
    # Peek at the unshuffled stream: a shuffled one would fill its whole buffer first.
    for row in _load_stream(config).select_columns(["photos"]).decode(False).take(1):
        if any(photo.get("embedding") for photo in row.get("photos") or []):
            return "embedding"
    if teacher_preprocess is None:
        raise ValueError(
            f"the shards at {config.data!r} carry no precomputed photo embeddings and no teacher preprocess was "
            "given: run `graft pairs embed` on them, or pass teacher_preprocess for on-the-fly targets"
        )
    return "pixels"


def build_pairs_dataloader(
    config: LoaderConfig, teacher_preprocess: TeacherPreprocess | None = None
) -> torch.utils.data.DataLoader:
    """Build the streaming DataLoader; call ``loader.dataset.set_epoch(epoch)`` before each epoch.

    Args:
        config: Loader configuration.
        teacher_preprocess: Photo to ``(3, H, W)`` tensor, for ``target="pixels"`` (or ``"auto"`` on shards
            without embeddings).

    Returns:
        A DataLoader whose batches follow :func:`collate_pairs`; ``loader.dataset`` is the
        :class:`PairsIterableDataset`.
    """
    target = _resolve_target(config, teacher_preprocess)
    stream = open_pairs_stream(config, arrow=target in PRECOMPUTED_TARGETS)
    if target != config.target:
        logger.info("loader target resolved to %r", target)
        config = dataclasses.replace(config, target=target)
    dataset = PairsIterableDataset(stream, config, teacher_preprocess)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        collate_fn=collate_pairs,
        drop_last=config.drop_last,
        pin_memory=config.pin_memory,
        persistent_workers=False,
        worker_init_fn=exit_with_parent,  # a SIGKILLed trainer leaves no loader worker behind
    )
