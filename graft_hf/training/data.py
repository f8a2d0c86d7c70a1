"""Training and validation loaders over pair shards, plus the checks that run before any compute.

Built on the streaming loader of :mod:`graft_hf.pairs.loader`. Two additions for training:

* :func:`inspect_pairs` opens the shards once (unshuffled, photos column only) to fail early on a missing or
  empty dataset and to learn which targets the shards carry and their dimension; it counts the rows from the
  parquet footers so an epoch has a length for the LR schedule.
* ``loss.target = "image+text"`` needs both the image and the text embedding of every photo: photos lacking
  either are dropped (counted in the loader's stats) and the batch carries ``ground_text_embeds`` beside
  ``ground_embeds``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch

from graft_hf.pairs.loader import LoaderConfig, PairsIterableDataset, collate_pairs, open_pairs_stream
from graft_hf.training.config import DataSection

logger = logging.getLogger(__name__)

__all__ = ["PairsInfo", "build_loader", "count_rows", "inspect_pairs"]

_PEEK_ROWS = 8


@dataclass
class PairsInfo:
    """What :func:`inspect_pairs` learnt about one split.

    Attributes:
        num_rows: Tiles in the split (from the parquet footers), ``None`` when they cannot be counted.
        embedding_dim: Dimension of the precomputed photo image embeddings, ``None`` when absent.
        text_embedding_dim: Dimension of the precomputed photo text embeddings, ``None`` when absent.
        has_photo_images: Whether photos carry encoded image bytes (for an on-the-fly teacher).
    """

    num_rows: int | None
    embedding_dim: int | None
    text_embedding_dim: int | None
    has_photo_images: bool


def count_rows(path: str, name: str | None, split: str) -> int | None:
    """Rows of a split summed from its parquet footers (no data read), or ``None`` when not possible."""
    import pyarrow.parquet as pq
    from datasets import load_dataset_builder

    try:
        builder = load_dataset_builder(path, name)
        files = (builder.config.data_files or {}).get(split)
    except Exception as err:  # noqa: BLE001 - any failure only means "unknown length"; reported below
        logger.info("could not list the data files of %s (%s): %s", path, split, err)
        return None
    if not files:
        return None
    total = 0
    for file in files:
        try:
            if "://" in str(file):
                import fsspec

                with fsspec.open(str(file), "rb") as handle:
                    total += pq.ParquetFile(handle).metadata.num_rows
            else:
                total += pq.read_metadata(str(file)).num_rows
        except Exception as err:  # noqa: BLE001 - e.g. a non-parquet file; the length stays unknown
            logger.info("could not read the parquet footer of %s: %s", file, err)
            return None
    return total


def inspect_pairs(data: DataSection, split: str) -> PairsInfo:
    """Open a split, check it exists and is not empty, and report the targets it carries.

    Raises:
        FileNotFoundError: The folder or repo holds no shards for ``split``.
        ValueError: The split is empty.
    """
    from datasets import load_dataset

    try:
        stream = load_dataset(data.path, data.name, split=split, streaming=True)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"no pair shards at {data.path!r}: set data.path to the folder written by `graft pairs build` or to a "
            f"Hub dataset repo id (with HF_HUB_OFFLINE=1 only local folders work). ({err})"
        ) from err
    except ValueError as err:
        if "split" in str(err).lower():
            raise ValueError(
                f"the pairs at {data.path!r} have no split {split!r}: set data.split / data.val_split to an existing "
                f"split (or data.val_split=null). ({err})"
            ) from err
        raise
    num_rows = count_rows(data.path, data.name, split)
    rows = list(stream.select_columns(["photos"]).take(_PEEK_ROWS)) if num_rows != 0 else []
    if not rows:
        raise ValueError(f"split {split!r} of {data.path!r} is empty: no tiles to train on; rebuild the pairs")
    embedding_dim = text_dim = None
    has_images = False
    for row in rows:
        for photo in row.get("photos") or []:
            if photo.get("embedding") and embedding_dim is None:
                embedding_dim = len(photo["embedding"])
            if photo.get("text_embedding") and text_dim is None:
                text_dim = len(photo["text_embedding"])
            has_images = has_images or bool(photo.get("image"))
    return PairsInfo(num_rows, embedding_dim, text_dim, has_images)


class ImageTextPairsDataset(PairsIterableDataset):
    """Pairs whose per-photo target is ``[embedding, text_embedding]`` concatenated (split again at collate)."""

    def _targets(self, photo: dict[str, Any]) -> torch.Tensor | None:
        image, text = photo.get("embedding"), photo.get("text_embedding")
        if not image or not text:
            self.stats["photos_without_embedding_and_text_embedding"] += 1
            return None
        return torch.tensor(list(image) + list(text), dtype=torch.float32)


class SplitTextCollate:
    """Collate, then split concatenated targets into ``ground_embeds`` and ``ground_text_embeds`` (picklable)."""

    def __init__(self, image_dim: int) -> None:
        self.image_dim = image_dim

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate_pairs(samples)
        both = batch.pop("ground_embeds")  # (batch, num_photos, image_dim + text_dim)
        batch["ground_embeds"] = both[..., : self.image_dim].contiguous()
        batch["ground_text_embeds"] = both[..., self.image_dim :].contiguous()
        return batch


def _loader_config(data: DataSection, **kwargs: Any) -> LoaderConfig:
    values = {
        "data": data.path,
        "name": data.name,
        "num_workers": data.num_workers,
        "shuffle_buffer": data.shuffle_buffer,
        "max_photos": data.max_photos,
        "rotate": data.rotate,
        "translate": data.translate,
        "right_angles": data.right_angles,
        "interleave_shards": data.interleave_shards,
        **kwargs,
    }
    known = {f.name for f in dataclasses.fields(LoaderConfig)}
    return LoaderConfig(**{k: v for k, v in values.items() if k in known})


def build_loader(
    data: DataSection,
    *,
    split: str,
    target: str,
    batch_size: int,
    train: bool,
    seed: int,
    rank: int,
    world_size: int,
    view_size: int,
    teacher_preprocess: Any | None = None,
    image_dim: int | None = None,
) -> torch.utils.data.DataLoader:
    """A DataLoader of training (or validation) batches for this process.

    Args:
        data: The data section of the run config.
        split: Split to read.
        target: ``embedding``, ``text_embedding``, ``pixels`` or ``image+text`` (both precomputed embeddings).
        batch_size: Per-process batch.
        train: Shuffle and augment (and drop the last incomplete batch).
        seed: Seed of shard order, buffer and augmentation.
        rank: Process rank; ranks read disjoint shards.
        world_size: Number of processes.
        view_size: Side of the student's input view.
        teacher_preprocess: Photo preprocessing for ``target="pixels"``.
        image_dim: Image-embedding dimension, for ``image+text``.

    Returns:
        The DataLoader; ``loader.dataset.set_epoch(epoch)`` reshuffles.
    """
    loader_target = "embedding" if target == "image+text" else target
    config = _loader_config(
        data,
        split=split,
        train=train,
        target=loader_target,
        batch_size=batch_size,
        seed=seed,
        rank=rank,
        world_size=world_size,
        view_size=view_size,
        drop_last=train,
    )
    stream = open_pairs_stream(config, arrow=target in ("embedding", "text_embedding"))
    collate: Any = collate_pairs
    if target == "image+text":
        if image_dim is None:
            raise ValueError("image+text targets need image_dim to split the concatenated embeddings")
        dataset: PairsIterableDataset = ImageTextPairsDataset(stream, config)
        collate = SplitTextCollate(image_dim)
    else:
        dataset = PairsIterableDataset(stream, config, teacher_preprocess)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        collate_fn=collate,
        drop_last=config.drop_last,
        pin_memory=torch.cuda.is_available(),
    )
