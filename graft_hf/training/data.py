"""What the pair shards of a run hold, learnt before any compute.

:func:`inspect_pairs` opens the shards once (unshuffled, photos column only) to fail early on a missing or empty
dataset and to learn which targets the shards carry and their dimension; it counts the rows from the parquet
footers so an epoch has a length for the LR schedule. The loaders themselves are
:func:`graft_hf.pairs.loader.build_pairs_dataloader` over :meth:`DataSection.loader_config
<graft_hf.training.sections.DataSection.loader_config>`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import fsspec
import pyarrow.parquet as pq
from datasets import load_dataset, load_dataset_builder

if TYPE_CHECKING:
    from graft_hf.training.sections import DataSection

logger = logging.getLogger(__name__)

__all__ = ["PairsInfo", "count_rows", "inspect_pairs"]

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
