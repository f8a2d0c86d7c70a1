"""The demo out of the box after `graft quickstart`: its model and a small gallery of EuroSAT test tiles.

`graft demo` with no arguments serves the model `graft quickstart` trained (`runs/quickstart/train/model`) with
the gallery :func:`quickstart_gallery` builds on first use next to it (`runs/quickstart/demo-gallery`): a seeded
sample of the EuroSAT test split (tiles the model never trained on), embedded once, with each tile's class as its
label. EuroSAT's RGB tiles carry no coordinates, so results are listed with their class and score, without a map.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from graft_hf.demo.gallery import GALLERY_FILE, build_gallery
from graft_hf.evaluation.datasets import load_split
from graft_hf.tasks.map_setup import load_map_model

logger = logging.getLogger(__name__)

__all__ = ["QUICKSTART_RUN", "quickstart_gallery", "quickstart_model", "records_from_classification"]

#: Where `graft quickstart` writes its run by default.
QUICKSTART_RUN = Path("runs/quickstart")
_GALLERY_TILES = 1000


def quickstart_model(run_dir: str | Path = QUICKSTART_RUN) -> Path | None:
    """The model folder a `graft quickstart` run in `run_dir` saved, or None when there is none."""
    model = Path(run_dir) / "train" / "model"
    return model if (model / "config.json").is_file() else None


def records_from_classification(
    path: str, split: str = "test", limit: int | None = None, seed: int = 0
) -> Iterator[dict[str, Any]]:
    """Gallery records from an image-classification dataset (an `image` and a `label` ClassLabel column).

    Args:
        path: Dataset folder or Hub id (only `split` is read).
        split: The split.
        limit: Keep a seeded random sample of this many images.
        seed: Seed of the sample.

    Yields:
        `{"image", "tile_id", "label"}` per image (label as its class name).
    """
    data = load_split(path, split)
    if limit is not None and limit < len(data):
        data = data.shuffle(seed=seed).select(range(limit))
    names = data.features["label"].names
    for position, row in enumerate(data):
        yield {"image": row["image"], "tile_id": str(row.get("filename") or position), "label": names[row["label"]]}


def quickstart_gallery(
    data: str, run_dir: str | Path = QUICKSTART_RUN, tiles: int | None = None, device: str = "cpu"
) -> Path:
    """The quickstart run's demo gallery, built on first use from `tiles` EuroSAT test images.

    Args:
        data: The EuroSAT dataset `graft quickstart` used (folder or Hub id).
        run_dir: The quickstart run folder (holds `train/model`).
        tiles: Gallery size (default 1,000).
        device: Where the model embeds the tiles.

    Returns:
        `run_dir/demo-gallery`.

    Raises:
        FileNotFoundError: No quickstart model in `run_dir`.
    """
    model_dir = quickstart_model(run_dir)
    if model_dir is None:
        raise FileNotFoundError(f"no quickstart model in {Path(run_dir) / 'train' / 'model'}: run graft quickstart")
    gallery = Path(run_dir) / "demo-gallery"
    if (gallery / GALLERY_FILE).is_file():
        return gallery
    tiles = tiles or _GALLERY_TILES
    logger.info("building the demo gallery: %d EuroSAT %s tiles embedded by %s", tiles, "test", model_dir)
    partial = gallery.with_name(gallery.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model, image_processor, _ = load_map_model(str(model_dir), device)
    records = records_from_classification(data, "test", tiles)
    total = min(tiles, len(load_split(data, "test")))
    build_gallery(model, records, partial, image_processor=image_processor, model_name=str(model_dir), total=total)
    partial.rename(gallery)  # complete or absent: an interrupted build is redone
    return gallery
