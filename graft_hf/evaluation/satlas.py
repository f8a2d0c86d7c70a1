"""SatlasPretrain land-cover segmentation (GRAFT Table 3) in the dataset's own layout, NAIP and Sentinel-2 variants.

SatlasPretrain (Bastani et al., ICCV 2023; https://github.com/allenai/satlas, ``SatlasPretrain.md``) stores images
and labels on the Web-Mercator tile grid:

* ``metadata/test_highres.json`` / ``metadata/test_lowres.json`` (any ``metadata/<split>.json``): a JSON list of
  ``[col, row]`` zoom-13 tiles;
* ``static/<col>_<row>/land_cover.png``: a greyscale 512x512 label of that zoom-13 tile, 0 = invalid, 1..11 = the
  classes of :data:`LAND_COVER_CLASSES` (tiles without the file were not annotated);
* ``sentinel2/<image>/tci/<col>_<row>.png``: a 512x512 true-colour Sentinel-2 image of the same zoom-13 tile;
* ``naip/<image>/tci/<col>_<row>.png``: 512x512 NAIP images at zoom 17, so a zoom-13 label covers 16x16 NAIP tiles
  and each NAIP image's label is the 32x32 window of the zoom-13 label (1/16 of the image), as in the authors'
  ``satlas/cmd/to_dataset/raster.py``. :func:`~graft_hf.tasks.segmentation.evaluate_segmentation` scores it on
  that grid.

Where a tile has several images (times), the most recent is used (``metadata/image_times.json`` when present, else
the last image folder by name): slow-changing labels describe the latest image. Crops whose label is all invalid
are skipped, as the authors do.

The paper evaluates the classes present in its test labels; :func:`load_satlas_segmentation` computes them from
the labels it reads (classes with at least `min_pixels` labelled cells) instead of hard-coding a list, and maps
the rest to `ignore_index`.
"""

import json
import logging
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from graft_hf.config import ConfigError
from graft_hf.evaluation.errors import MissingPathError

logger = logging.getLogger(__name__)

__all__ = [
    "LAND_COVER_CLASSES",
    "SATLAS_VARIANTS",
    "SatlasSample",
    "SatlasSegmentation",
    "SatlasVariant",
    "load_satlas_segmentation",
]

#: SatlasPretrain's land-cover categories; the label value of class `i` is `i + 1` (0 is invalid).
LAND_COVER_CLASSES: tuple[str, ...] = (
    "water", "developed", "tree", "shrub", "grass", "crop", "bare", "snow", "wetland", "mangroves", "moss",
)  # fmt: skip
#: Label size (pixels) of one zoom-13 tile.
TILE_PIXELS = 512
#: Label value of invalid pixels in SatlasPretrain's PNGs.
SATLAS_INVALID = 0


@dataclass(frozen=True)
class SatlasVariant:
    """One image modality of SatlasPretrain.

    Attributes:
        name: `"naip"` or `"sentinel2"`.
        image_dir: Folder of the images under the dataset root.
        factor: Image tiles per zoom-13 tile along each axis (16 for NAIP's zoom 17, 1 for Sentinel-2).
        default_split: The test split of the variant's image mode.
        sensor: The `graft_hf.modeling.SENSORS` name of the imagery.
    """

    name: str
    image_dir: str
    factor: int
    default_split: str
    sensor: str


SATLAS_VARIANTS: dict[str, SatlasVariant] = {
    "naip": SatlasVariant("naip", "naip", 16, "test_highres", "naip"),
    "sentinel2": SatlasVariant("sentinel2", "sentinel2", 1, "test_lowres", "sentinel2"),
}


@dataclass(frozen=True)
class SatlasSample:
    """One image and its label window.

    Attributes:
        tile: `(col, row)` of the image at the variant's zoom.
        image_path: The image's ``tci`` PNG.
        label_path: The zoom-13 ``land_cover.png``.
        window: `(top, left, size)` of the image's label cells inside the 512x512 label.
    """

    tile: tuple[int, int]
    image_path: Path
    label_path: Path
    window: tuple[int, int, int]


def _read_label_window(sample: SatlasSample) -> np.ndarray:
    """uint8 `(size, size)` SatlasPretrain label values of one sample."""
    with Image.open(sample.label_path) as label:
        values = np.asarray(label)
    if values.ndim != 2 or values.shape != (TILE_PIXELS, TILE_PIXELS):
        raise ValueError(
            f"{sample.label_path}: a SatlasPretrain label is a {TILE_PIXELS}x{TILE_PIXELS} greyscale PNG, got shape "
            f"{values.shape}"
        )
    top, left, size = sample.window
    return values[top : top + size, left : left + size]


@dataclass
class SatlasSegmentation:
    """SatlasPretrain land-cover test samples, iterable as `(image, mask)` pairs for `evaluate_segmentation`.

    Attributes:
        root: The dataset root.
        variant: The image modality.
        split: The split read.
        samples: The images and their label windows.
        class_values: Label values (1..11) evaluated, in class order.
        class_names: Their names (prompts are built from them).
        ignore_index: Mask value of invalid cells and of classes not evaluated.
        pixel_counts: Labelled cells per land-cover class over all samples (every class of `LAND_COVER_CLASSES`).
        skipped: Reasons -> counts of tiles or images left out.
    """

    root: Path
    variant: SatlasVariant
    split: str
    samples: list[SatlasSample]
    class_values: list[int]
    class_names: list[str]
    ignore_index: int = 255
    pixel_counts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, index: int) -> Image.Image:
        """The RGB true-colour image of sample `index` (512x512)."""
        with Image.open(self.samples[index].image_path) as image:
            return image.convert("RGB")

    def mask(self, index: int) -> np.ndarray:
        """int64 `(size, size)` class ids (positions in `class_names`); `ignore_index` elsewhere."""
        values = _read_label_window(self.samples[index])
        lookup = np.full(256, self.ignore_index, dtype=np.int64)
        lookup[self.class_values] = np.arange(len(self.class_values))
        return lookup[values]

    def __iter__(self) -> Iterator[tuple[Image.Image, np.ndarray]]:
        for index in range(len(self)):
            yield self.image(index), self.mask(index)


def _read_tiles(path: Path) -> list[tuple[int, int]]:
    try:
        entries = json.loads(path.read_text())
        return [(int(entry[0]), int(entry[1])) for entry in entries]
    except (ValueError, TypeError, IndexError, KeyError) as error:
        raise ValueError(f"{path}: a SatlasPretrain split is a JSON list of [col, row] pairs ({error})") from error


def _image_index(image_root: Path) -> dict[str, list[Path]]:
    """``<col>_<row>`` -> the image folders with a ``tci/<col>_<row>.png`` (one listing per image folder)."""
    index: dict[str, list[Path]] = {}
    for folder in sorted(p for p in image_root.iterdir() if (p / "tci").is_dir()):
        for png in (folder / "tci").glob("*.png"):
            index.setdefault(png.stem, []).append(folder)
    return index


def _latest(folders: list[Path], image_times: dict[str, str]) -> Path:
    """The most recent image folder (by ``image_times.json``, else by name)."""
    return max(folders, key=lambda folder: (image_times.get(folder.name, ""), folder.name))


def _tile_samples(
    tile: tuple[int, int], label_path: Path, variant: SatlasVariant, images: dict[str, list[Path]], times: dict
) -> Iterator[SatlasSample]:
    """The samples of one zoom-13 label tile: its own image, or NAIP's 16x16 sub-tiles that have images."""
    size = TILE_PIXELS // variant.factor
    for off_row in range(variant.factor):
        for off_col in range(variant.factor):
            sub = (tile[0] * variant.factor + off_col, tile[1] * variant.factor + off_row)
            folders = images.get(f"{sub[0]}_{sub[1]}")
            if folders:
                image = _latest(folders, times) / "tci" / f"{sub[0]}_{sub[1]}.png"
                yield SatlasSample(sub, image, label_path, (off_row * size, off_col * size, size))


def _collect_samples(
    root: Path, variant: SatlasVariant, tiles: list[tuple[int, int]]
) -> tuple[list[SatlasSample], dict[str, int]]:
    image_root = root / variant.image_dir
    if not image_root.is_dir():
        raise MissingPathError(
            "path", f"{root} has no {variant.image_dir}/ image folder; extract the {variant.name} tarballs there"
        )
    images = _image_index(image_root)
    times_path = root / "metadata" / "image_times.json"
    times = json.loads(times_path.read_text()) if times_path.is_file() else {}
    samples: list[SatlasSample] = []
    skipped = {"tile without land_cover.png": 0, "tile without images": 0}
    for tile in tiles:
        label_path = root / "static" / f"{tile[0]}_{tile[1]}" / "land_cover.png"
        if not label_path.is_file():
            skipped["tile without land_cover.png"] += 1
            continue
        found = list(_tile_samples(tile, label_path, variant, images, times))
        skipped["tile without images"] += not found
        samples += found
    return samples, skipped


def _count_classes(samples: list[SatlasSample]) -> tuple[list[SatlasSample], np.ndarray, int]:
    """Samples with any valid label cell, labelled cells per label value `(256,)`, and the all-invalid count."""
    counts = np.zeros(256, dtype=np.int64)
    kept = []
    for sample in samples:
        values = _read_label_window(sample)
        if values.max() == SATLAS_INVALID:
            continue
        counts += np.bincount(values.ravel(), minlength=256)
        kept.append(sample)
    return kept, counts, len(samples) - len(kept)


def load_satlas_segmentation(
    path: str | os.PathLike,
    variant: Literal["naip", "sentinel2"] = "naip",
    *,
    split: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    min_pixels: int = 1,
    class_names: Sequence[str] | None = None,
    ignore_index: int = 255,
) -> SatlasSegmentation:
    """SatlasPretrain land-cover samples of one split, with the classes present in their labels.

    Args:
        path: The dataset root (holding ``metadata/``, ``static/`` and ``naip/`` or ``sentinel2/``).
        variant: `"naip"` (high-resolution mode: zoom-17 images, labels at 1/16) or `"sentinel2"` (low-resolution).
        split: Split file name in ``metadata/`` (default: ``test_highres`` for NAIP, ``test_lowres`` for
            Sentinel-2).
        limit: Keep a seeded random subset of this many images (classes are counted on the subset).
        seed: Seed of the subset.
        min_pixels: A class is evaluated when at least this many labelled cells of it are present.
        class_names: Evaluate these classes (names from `LAND_COVER_CLASSES`) instead of the present ones.
        ignore_index: Mask value of invalid cells and of classes not evaluated.

    Raises:
        FileNotFoundError: No split file or image folder.
        ValueError: Unknown variant or class, or no labelled image in the split.
    """
    if variant not in SATLAS_VARIANTS:
        raise ConfigError(
            "variant", f"unknown SatlasPretrain variant {variant!r}; use one of {sorted(SATLAS_VARIANTS)}"
        )
    spec = SATLAS_VARIANTS[variant]
    root = Path(path)
    split = split or spec.default_split
    split_path = root / "metadata" / f"{split}.json"
    if not split_path.is_file():
        raise MissingPathError(
            "path",
            f"{split_path} not found; pass the SatlasPretrain root (with metadata/{split}.json) or another split",
        )
    samples, skipped = _collect_samples(root, spec, _read_tiles(split_path))
    if limit is not None and limit < len(samples):
        samples = sorted(random.Random(seed).sample(samples, limit), key=lambda s: s.tile)
    samples, counts, invalid = _count_classes(samples)
    skipped["image whose label is all invalid"] = invalid
    if not samples:
        raise ValueError(f"{root} ({split}, {variant}): no image with a valid land-cover label; skipped {skipped}")
    pixel_counts = {name: int(counts[i + 1]) for i, name in enumerate(LAND_COVER_CLASSES)}
    if class_names is not None:
        unknown = sorted(set(class_names) - set(LAND_COVER_CLASSES))
        if unknown:
            raise ConfigError(
                "class_names", f"{unknown} are not SatlasPretrain land-cover classes {LAND_COVER_CLASSES}"
            )
        names = [n for n in LAND_COVER_CLASSES if n in set(class_names)]
    else:
        names = [name for name, count in pixel_counts.items() if count >= min_pixels]
    logger.info(
        "SatlasPretrain %s %s: %d images, classes present %s, skipped %s", variant, split, len(samples), names, skipped
    )
    return SatlasSegmentation(
        root=root,
        variant=spec,
        split=split,
        samples=samples,
        class_values=[LAND_COVER_CLASSES.index(n) + 1 for n in names],
        class_names=names,
        ignore_index=ignore_index,
        pixel_counts=pixel_counts,
        skipped={k: v for k, v in skipped.items() if v},
    )
