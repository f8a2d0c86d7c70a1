"""EuroSAT as GRAFT pairs: every training tile with its simulated ground observations, in the pair shard schema.

EuroSAT RGB (Helber et al. 2019) holds 64 x 64 Sentinel-2 tiles at 10 m/px with a land-cover label each. The
benchmark of ``graft quickstart`` never shows those labels to the model: each training tile instead gets 1 to 25
simulated ground observations (:class:`~graft_hf.quickstart.observations.ObservationSampler`) placed at random
pixels inside it, written as the ``photos`` of a pair shard row, exactly as ``graft pairs build`` writes real
geotagged photos. ``graft pairs embed --text`` and the training loader then treat them like any other pairs.

The release has no georeferencing, so ``crs``/``transform``/``center_lat``/``center_lon`` are null; ``gsd`` is 10.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from datasets import Image as ImageFeature
from datasets import IterableDataset, load_dataset
from PIL import Image, UnidentifiedImageError

from graft_hf.io import atomic_write, write_json
from graft_hf.quickstart.config import MissingInputError
from graft_hf.quickstart.observations import EUROSAT_LABELS, ObservationSampler
from graft_hf.quickstart.shards import (
    inputs_fingerprint,
    simulated_pairs_card,
    simulated_photo,
    write_resumable_shards,
)

__all__ = [
    "EuroSATSplit",
    "load_eurosat_split",
    "write_eurosat_pairs",
]

logger = logging.getLogger(__name__)


@dataclass
class EuroSATSplit:
    """One split of EuroSAT, images kept encoded.

    Attributes:
        images: Encoded image bytes (JPEG in the release), one per tile.
        labels: Label index per tile, shape ``(num_tiles,)``, in :data:`EUROSAT_LABELS` order.
        filenames: Original file name per tile (``AnnualCrop_1.jpg``); unique, used in tile ids.
        label_names: The dataset's label names (:data:`EUROSAT_LABELS`).
        skipped: Records dropped while loading, by reason.
    """

    images: list[bytes]
    labels: np.ndarray
    filenames: list[str]
    label_names: list[str]
    skipped: dict[str, int]

    def __len__(self) -> int:
        return len(self.images)

    def decode(self, index: int) -> Image.Image:
        """Tile ``index`` as an RGB ``PIL.Image``."""
        with Image.open(io.BytesIO(self.images[index])) as image:
            return image.convert("RGB")


def load_eurosat_split(data: str | os.PathLike, split: str, limit: int | None = None, seed: int = 0) -> EuroSATSplit:
    """Read a EuroSAT split (a local ``datasets`` folder such as the eurosat-rgb release, or a Hub id).

    Undecodable images are skipped and counted. With ``limit``, a class-stratified random subset of that size is
    kept (the same for a given seed), so reduced runs still see every class.

    Args:
        data: Folder or Hub dataset id with an ``image`` column and a ``label`` ClassLabel column.
        split: ``train`` or ``test``.
        limit: Keep at most this many tiles.
        seed: Seed of the subset.

    Returns:
        The split.

    Raises:
        MissingInputError: No such folder, or no such split (a ``FileNotFoundError`` whose ``key`` is ``data``).
        ValueError: The columns or label names are not EuroSAT's.
    """
    source = str(data)
    images, labels, filenames, skipped = _read_rows(_open_eurosat(source, split), split)
    if skipped:
        logger.warning("EuroSAT %s: skipped %s", split, skipped)
    if not images:
        raise ValueError(f"split {split!r} of {source!r} has no readable images")
    label_array = np.asarray(labels, dtype=np.int64)
    if limit is not None and limit < len(images):
        keep = _stratified_subset(label_array, limit, seed)
        images = [images[i] for i in keep]
        filenames = [filenames[i] for i in keep]
        label_array = label_array[keep]
    return EuroSATSplit(images, label_array, filenames, list(EUROSAT_LABELS), skipped)


def _open_eurosat(source: str, split: str) -> IterableDataset:
    """The split as a stream of undecoded images and labels, after checking it is EuroSAT."""
    if not Path(source).exists() and (source.startswith((".", "/")) or os.sep in source.rstrip("/").split("/", 1)[0]):
        raise MissingInputError(
            "data",
            f"EuroSAT data not found at {source!r}: pass the eurosat-rgb folder (parquet files and README) or a Hub "
            "dataset id",
        )
    try:
        stream = load_dataset(source, split=split, streaming=True)
    except (FileNotFoundError, ValueError) as error:
        raise MissingInputError(
            "data",
            f"could not open split {split!r} of EuroSAT at {source!r}: {error}. Pass a folder holding "
            "train-*/test-* parquet files with a README configs block, or a Hub dataset id",
        ) from error
    features = stream.features or {}
    if "image" not in features or "label" not in features:
        raise ValueError(f"{source!r} has columns {sorted(features)}; EuroSAT needs an 'image' and a 'label' column")
    names = list(getattr(features["label"], "names", []) or [])
    if names != EUROSAT_LABELS:
        raise ValueError(
            f"the label names of {source!r} are {names}, expected EuroSAT's {EUROSAT_LABELS} in that order"
        )
    return stream.cast_column("image", ImageFeature(decode=False))


def _read_rows(stream: IterableDataset, split: str) -> tuple[list[bytes], list[int], list[str], dict[str, int]]:
    """Encoded images, labels and file names of the readable rows, and the count of skipped rows per reason."""
    images, labels, filenames = [], [], []
    skipped: dict[str, int] = {}
    for index, row in enumerate(stream):
        payload = row["image"] or {}
        data_bytes = payload.get("bytes")
        if not data_bytes:
            skipped["no image bytes"] = skipped.get("no image bytes", 0) + 1
            continue
        try:
            with Image.open(io.BytesIO(data_bytes)) as image:
                image.verify()
        except (UnidentifiedImageError, OSError, ValueError):
            skipped["undecodable image"] = skipped.get("undecodable image", 0) + 1
            continue
        images.append(data_bytes)
        labels.append(int(row["label"]))
        filenames.append(str(row.get("filename") or payload.get("path") or f"{split}_{index}"))
    return images, labels, filenames, skipped


def _stratified_subset(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Indices of ``limit`` items drawn round-robin over classes in a seeded random order (sorted)."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for members in per_class:
            if depth < len(members) and len(chosen) < limit:
                chosen.append(int(members[depth]))
        depth += 1
    return np.sort(np.asarray(chosen))


def _tile_rows(split: EuroSATSplit, indices: np.ndarray, sampler: ObservationSampler, name: str) -> Iterator[dict]:
    size = 64
    for index in indices:
        index = int(index)
        label = split.label_names[int(split.labels[index])]
        stem = Path(split.filenames[index]).stem
        tile_id = f"eurosat-{name}-{stem}"
        texts = sampler.sample(label, index)
        rng = np.random.default_rng([sampler.seed, index, 1])
        rows_cols = rng.uniform(0.0, size, size=(len(texts), 2))
        photos = [
            simulated_photo(f"{tile_id}-obs{j:02d}", r, c, text)
            for j, (text, (r, c)) in enumerate(zip(texts, rows_cols, strict=True))
        ]
        yield {
            "tile_id": tile_id,
            "image": {"bytes": split.images[index], "path": None},
            "bands": None,
            "band_names": ["red", "green", "blue"],
            "crs": None,
            "transform": None,
            "gsd": 10.0,
            "sensor": "sentinel2",
            "acquisition_date": None,
            "center_lat": None,
            "center_lon": None,
            "raster": split.filenames[index],
            "photos": photos,
        }


_CARD_DESCRIPTION = (
    "Written by `graft quickstart`: each EuroSAT training tile (64 x 64 px Sentinel-2, 10 m/px) with 1 to 25 "
    "simulated ground observations (short ground-level descriptions drawn from per-class pools, plus unrelated "
    "distractors) placed at random pixels, in the GRAFT pair shard schema. The tiles are not georeferenced in the "
    "EuroSAT release, so `crs`, `transform` and the coordinates are null."
)


def write_eurosat_pairs(
    split: EuroSATSplit,
    output_dir: str | os.PathLike,
    sampler: ObservationSampler,
    num_shards: int = 8,
    name: str = "train",
    progress: bool = True,
) -> dict:
    """Write the split's tiles with their simulated observations as pair shards (``data/train-*.parquet``).

    Shards are written atomically and recorded in a manifest: a rerun with the same inputs keeps the finished
    shards and writes the missing ones; different inputs (data, sampler) in the same folder are refused.

    Args:
        split: The EuroSAT split (usually the training split).
        output_dir: Pairs folder to create.
        sampler: Observation sampler (counts, distractor rate, seed).
        num_shards: Number of parquet shards (a multiple of processes x loader workers for training).
        name: Tag used in the tile ids.
        progress: Show a progress bar.

    Returns:
        A summary: tiles, observations, distractor rate, shards, digest.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    out = Path(output_dir)
    fingerprint = inputs_fingerprint(sampler, [name, num_shards, split.filenames, split.labels.tolist()])
    order = np.random.default_rng(sampler.seed).permutation(len(split))  # shards mix classes
    write_resumable_shards(
        out,
        np.array_split(order, num_shards),
        lambda part: _tile_rows(split, part, sampler, name),
        fingerprint,
        what="EuroSAT pairs",
        progress=progress,
    )
    counts = [len(sampler.sample(split.label_names[int(split.labels[i])], i)) for i in range(len(split))]
    photos = int(sum(counts))
    summary = {
        "tiles": len(split),
        "observations": photos,
        "observations_per_tile": {"min": int(min(counts)), "mean": round(photos / len(split), 2), "max": max(counts)},
        "sampler": asdict(sampler),
        "shards": num_shards,
        "fingerprint": fingerprint,
        "skipped_while_loading": split.skipped,
    }
    atomic_write(
        out / "README.md",
        simulated_pairs_card("EuroSAT GRAFT pairs with simulated ground observations", _CARD_DESCRIPTION, summary),
    )
    write_json(out / "build_report.json", summary)
    return summary
