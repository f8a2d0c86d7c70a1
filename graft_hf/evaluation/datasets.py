"""Evaluation datasets in one form: images, labels (class ids or multi-hot) and class names.

`load_eval_dataset` reads a local folder or a Hub id through `datasets` and recognises:

* ``eurosat``: EuroSAT (parquet/Hub layout, `image` + ClassLabel `label`), single-label;
* ``sat4`` / ``sat6``: SAT-4 / SAT-6 (an image column and a label column; the class names are known);
* ``imagefolder``: UC Merced-style folders, one subfolder of images per class (`datasets`' ``imagefolder``);
* ``classification``: any other dataset with an image column and a ClassLabel/integer/string label column;
* ``multilabel``: a dataset whose label column holds lists of labels (names or ids);
* ``bigearthnet``: the BigEarthNet-S2 patch-folder layout (one folder per patch with per-band GeoTIFFs and
  ``<patch>_labels_metadata.json``), read into 12-band Sentinel-2 L2A stacks, multi-label.

RGB datasets yield PIL images; BigEarthNet yields `(12, 120, 120)` uint16 arrays in the order of
``SENSOR_PRESETS["sentinel2"]`` with ``sensor="sentinel2"``, so a `GraftImageProcessor` for that sensor (or
:func:`to_rgb_image` for RGB-only baselines) reads them.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from huggingface_hub import is_offline_mode
from PIL import Image

from graft_hf.evaluation.templates import EUROSAT_LABELS

logger = logging.getLogger(__name__)

__all__ = [
    "DATASET_KINDS",
    "SAT4_CLASSNAMES",
    "SAT6_CLASSNAMES",
    "UCMERCED_CLASSNAMES",
    "EvalDataset",
    "load_eval_dataset",
    "readable_class_name",
    "to_rgb_image",
]

DatasetKind = Literal["auto", "eurosat", "bigearthnet", "sat4", "sat6", "imagefolder", "classification", "multilabel"]
DATASET_KINDS: tuple[str, ...] = (
    "auto",
    "eurosat",
    "bigearthnet",
    "sat4",
    "sat6",
    "imagefolder",
    "classification",
    "multilabel",
)

#: SAT-4 (Basu et al. 2015) label order of the original one-hot vectors.
SAT4_CLASSNAMES: tuple[str, ...] = ("barren land", "trees", "grassland", "other")
#: SAT-6 label order of the original one-hot vectors.
SAT6_CLASSNAMES: tuple[str, ...] = ("buildings", "barren land", "trees", "grassland", "roads", "water bodies")
#: UC Merced Land Use folder names -> readable prompt names.
UCMERCED_CLASSNAMES: dict[str, str] = {
    "agricultural": "agricultural land",
    "airplane": "airplanes",
    "baseballdiamond": "baseball diamond",
    "beach": "beach",
    "buildings": "buildings",
    "chaparral": "chaparral",
    "denseresidential": "dense residential area",
    "forest": "forest",
    "freeway": "freeway",
    "golfcourse": "golf course",
    "harbor": "harbor",
    "intersection": "intersection",
    "mediumresidential": "medium residential area",
    "mobilehomepark": "mobile home park",
    "overpass": "overpass",
    "parkinglot": "parking lot",
    "river": "river",
    "runway": "runway",
    "sparseresidential": "sparse residential area",
    "storagetanks": "storage tanks",
    "tenniscourt": "tennis court",
}
# BigEarthNet band files, in SENSOR_PRESETS["sentinel2"] order (L2A has no B10).
_S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
_LABEL_CANDIDATES = ("label", "labels", "class", "category", "target", "multilabels", "land_cover")


def readable_class_name(name: str) -> str:
    """A label as prompt text: `"AnnualCrop"` -> `"annual crop"`, `"storage_tanks"` -> `"storage tanks"`."""
    if name in UCMERCED_CLASSNAMES:
        return UCMERCED_CLASSNAMES[name]
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ")
    return re.sub(r"\s+", " ", spaced).strip().lower()


def _eurosat_prompt_names() -> list[str]:
    from graft_hf.evaluation.templates import EUROSAT_CLASSNAMES

    return list(EUROSAT_CLASSNAMES)


@dataclass
class EvalDataset:
    """An evaluation set in the harness's uniform form.

    Attributes:
        name: Display name (e.g. `"EuroSAT"`), used in reports and the card.
        dataset_type: Hub id or short name recorded in the evaluation JSON.
        split: The split evaluated.
        kind: One of `DATASET_KINDS` (never `"auto"`).
        class_names: Label names as stored in the dataset, one per class.
        prompt_names: Readable names used to build prompts, one per class.
        labels: int64 `(num_images,)` class ids, or int8 multi-hot `(num_images, num_classes)` when `multilabel`.
        sensor: `"rgb"` for PIL images, else the `SENSOR_PRESETS` name of the arrays `image(i)` returns.
        source: The underlying `datasets.Dataset` (image column `image_column`) or a list of patch folders.
        image_column: Column holding the images when `source` is a Dataset.
    """

    name: str
    dataset_type: str
    split: str
    kind: str
    class_names: list[str]
    prompt_names: list[str]
    labels: np.ndarray
    sensor: str = "rgb"
    source: Any = field(default=None, repr=False)
    image_column: str = "image"

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.prompt_names):
            raise ValueError(f"{len(self.class_names)} class names but {len(self.prompt_names)} prompt names")
        expected = (len(self),) if not self.multilabel else (len(self), len(self.class_names))
        if self.labels.shape != expected:
            raise ValueError(f"labels have shape {self.labels.shape}, expected {expected}")

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim == 2

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def image(self, index: int) -> Image.Image | np.ndarray:
        """Image `index`: an RGB PIL image, or a `(bands, height, width)` array for multi-band sensors."""
        if isinstance(self.source, list):
            return _read_bigearthnet_patch(self.source[index])
        image = self.source[int(index)][self.image_column]
        if isinstance(image, Image.Image):
            return image if image.mode in ("RGB", "L") else image.convert("RGB")
        return np.asarray(image)

    def rgb_image(self, index: int) -> Image.Image:
        """Image `index` as an 8-bit RGB PIL image (for figures and RGB-only models)."""
        return to_rgb_image(self.image(index), self.sensor)

    def batches(self, batch_size: int) -> Iterator[list[Image.Image | np.ndarray]]:
        """Images in order, `batch_size` at a time."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        for start in range(0, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            if isinstance(self.source, list):
                yield [self.image(i) for i in range(start, stop)]
            else:
                images = self.source[start:stop][self.image_column]
                yield [
                    im.convert("RGB") if isinstance(im, Image.Image) and im.mode not in ("RGB", "L") else im
                    for im in images
                ]

    def label_names(self, index: int) -> list[str]:
        """The class names of image `index` (one for single-label data)."""
        if self.multilabel:
            return [self.class_names[c] for c in np.flatnonzero(self.labels[index])]
        return [self.class_names[int(self.labels[index])]]


def to_rgb_image(image: Image.Image | np.ndarray, sensor: str = "rgb") -> Image.Image:
    """An RGB PIL image from a PIL image or a `(bands, H, W)` array of a `SENSOR_PRESETS` sensor."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    from graft_hf.modeling import GraftImageProcessor

    processor = GraftImageProcessor(sensor=sensor, do_resize=False, do_normalize=False)
    rgb = processor(np.asarray(image), return_tensors=None, input_data_format="channels_first")["pixel_values"][0]
    return Image.fromarray((np.moveaxis(rgb, 0, -1) * 255.0 + 0.5).astype(np.uint8))


# -------------------------------------------------------------------------------------------------- BigEarthNet
def _bigearthnet_patches(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/*_labels_metadata.json"))


def _read_bigearthnet_patch(folder: Path) -> np.ndarray:
    """`(12, 120, 120)` uint16: every band resampled (bilinear) to the 10 m grid."""
    import rasterio
    from rasterio.enums import Resampling

    bands = []
    for band in _S2_BANDS:
        path = folder / f"{folder.name}_{band}.tif"
        if not path.is_file():
            raise FileNotFoundError(
                f"BigEarthNet patch {folder} has no band file {path.name}; every patch needs all 12 bands"
            )
        with rasterio.open(path) as src:
            bands.append(src.read(1, out_shape=(120, 120), resampling=Resampling.bilinear))
    return np.stack(bands).astype(np.uint16)


def _load_bigearthnet(root: Path, class_names: Sequence[str] | None) -> EvalDataset:
    patches = _bigearthnet_patches(root)
    if not patches:
        raise ValueError(
            f"{root} is not a BigEarthNet folder: it holds no <patch>/<patch>_labels_metadata.json; pass the folder "
            "of patch folders, or another --dataset-kind"
        )
    per_patch = [json.loads((p / f"{p.name}_labels_metadata.json").read_text())["labels"] for p in patches]
    names = list(class_names) if class_names else sorted({label for labels in per_patch for label in labels})
    unknown = sorted({label for labels in per_patch for label in labels} - set(names))
    if unknown:
        raise ValueError(f"BigEarthNet labels {unknown} are not in the given class names; pass the full nomenclature")
    index = {n: i for i, n in enumerate(names)}
    targets = np.zeros((len(patches), len(names)), dtype=np.int8)
    for row, labels in enumerate(per_patch):
        targets[row, [index[label] for label in labels]] = 1
    return EvalDataset(
        name="BigEarthNet-S2",
        dataset_type="bigearthnet",
        split="all",
        kind="bigearthnet",
        class_names=names,
        prompt_names=[n.lower() for n in names],
        labels=targets,
        sensor="sentinel2",
        source=patches,
    )


# -------------------------------------------------------------------------------------------------- datasets
def _is_imagefolder(root: Path) -> bool:
    if any(root.glob("*.parquet")) or (root / "data").is_dir() or (root / "README.md").is_file():
        return False
    subdirs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    split_dirs = [d for d in subdirs if d.name in ("train", "test", "validation", "val")]
    class_dirs = [c for s in split_dirs for c in s.iterdir() if c.is_dir()] if split_dirs else subdirs
    return bool(class_dirs) and any(f.suffix.lower() in _IMAGE_SUFFIXES for d in class_dirs for f in d.iterdir())


def _load_hf(path: str, split: str, imagefolder: bool) -> Any:
    from datasets import load_dataset

    try:
        if imagefolder:
            splits = load_dataset("imagefolder", data_dir=path)
        else:
            splits = load_dataset(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"no dataset at {path!r}: pass an existing folder or a Hub dataset id ({error})"
        ) from error
    except (ConnectionError, OSError, ValueError) as error:
        hint = "the Hub cannot be reached (HF_HUB_OFFLINE is set); " if is_offline_mode() else ""
        raise RuntimeError(
            f"could not load dataset {path!r}: {hint}download it where the Hub is reachable "
            f"(`hf download {path} --repo-type dataset --local-dir DIR`) and pass --data DIR "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        ) from error
    if split in splits:
        return splits[split]
    if imagefolder and len(splits) == 1:
        only = next(iter(splits))
        logger.info(
            "image folder %s has no %r split; evaluating all %d images (%r)", path, split, len(splits[only]), only
        )
        return splits[only]
    raise ValueError(f"dataset {path!r} has no split {split!r}; pass --split with one of {sorted(splits)}")


def _image_column(dataset: Any, image_column: str | None) -> str:
    from datasets import Image as ImageFeature

    if image_column:
        if image_column not in dataset.column_names:
            raise ValueError(f"image column {image_column!r} not in the dataset columns {dataset.column_names}")
        return image_column
    for name, feature in dataset.features.items():
        if isinstance(feature, ImageFeature):
            return name
    for name in ("image", "img", "pixel_values"):
        if name in dataset.column_names:
            return name
    raise ValueError(f"no image column found among {dataset.column_names}; pass --image-column NAME")


def _label_column(dataset: Any, label_column: str | None) -> str:
    if label_column:
        if label_column not in dataset.column_names:
            raise ValueError(f"label column {label_column!r} not in the dataset columns {dataset.column_names}")
        return label_column
    for name in _LABEL_CANDIDATES:
        if name in dataset.column_names:
            return name
    raise ValueError(
        f"no label column found among {dataset.column_names} (looked for {list(_LABEL_CANDIDATES)}); "
        "pass --label-column NAME"
    )


def _list_inner(feature: Any) -> Any | None:
    from datasets import LargeList, List, Sequence

    if isinstance(feature, (List, LargeList, Sequence)):
        return feature.feature
    return None


def _single_labels(values: list, feature: Any, class_names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    from datasets import ClassLabel

    if isinstance(feature, ClassLabel):
        if class_names and len(class_names) != feature.num_classes:
            raise ValueError(f"got {len(class_names)} class names for a label with {feature.num_classes} classes")
        return np.asarray(values, dtype=np.int64), list(feature.names)
    if values and isinstance(values[0], str):
        names = list(class_names) if class_names else sorted(set(values))
        index = {n: i for i, n in enumerate(names)}
        missing = sorted(set(values) - set(index))
        if missing:
            raise ValueError(f"labels {missing[:5]} are not in the given class names")
        return np.asarray([index[v] for v in values], dtype=np.int64), names
    ids = np.asarray(values, dtype=np.int64)
    if not class_names:
        raise ValueError("integer labels without names: pass --class-names (or use --dataset-kind sat4/sat6)")
    if ids.size and (ids.min() < 0 or ids.max() >= len(class_names)):
        raise ValueError(f"labels span [{ids.min()}, {ids.max()}] but {len(class_names)} class names were given")
    return ids, list(class_names)


def _multi_labels(values: list, inner: Any, class_names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    from datasets import ClassLabel

    if isinstance(inner, ClassLabel):
        if class_names and len(class_names) != inner.num_classes:
            raise ValueError(f"got {len(class_names)} class names for a label with {inner.num_classes} classes")
        names, rows = list(inner.names), [list(v) for v in values]
    elif any(isinstance(x, str) for v in values for x in v):
        names = list(class_names) if class_names else sorted({x for v in values for x in v})
        index = {n: i for i, n in enumerate(names)}
        missing = sorted({x for v in values for x in v} - set(index))
        if missing:
            raise ValueError(f"labels {missing[:5]} are not in the given class names")
        rows = [[index[x] for x in v] for v in values]
    else:
        if not class_names:
            raise ValueError("integer multi-labels without names: pass --class-names")
        names, rows = list(class_names), [list(v) for v in values]
    targets = np.zeros((len(rows), len(names)), dtype=np.int8)
    for r, ids in enumerate(rows):
        if ids and (min(ids) < 0 or max(ids) >= len(names)):
            raise ValueError(f"row {r} has label ids {ids} outside [0, {len(names)})")
        targets[r, ids] = 1
    return targets, names


def _detect_kind(class_names: list[str], multilabel: bool, imagefolder: bool) -> str:
    if multilabel:
        return "multilabel"
    if list(class_names) == list(EUROSAT_LABELS):
        return "eurosat"
    if imagefolder:
        return "imagefolder"
    return "classification"


def load_eval_dataset(
    path: str | os.PathLike,
    *,
    split: str = "test",
    kind: str = "auto",
    class_names: Sequence[str] | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> EvalDataset:
    """Load an evaluation dataset from a local folder or a Hub id.

    Args:
        path: Folder (parquet/Hub layout, image folder, or BigEarthNet patch folders) or Hub dataset id.
        split: Split to evaluate (an image folder without splits uses all its images).
        kind: One of `DATASET_KINDS`; `"auto"` detects it from the layout and the features.
        class_names: Class names in label-id order. With named labels (ClassLabel) they become the prompt names
            (the stored names stay the class names); with string labels they fix the class order; integer
            labels without names require them.
        image_column: Image column; default: the first `datasets.Image` feature.
        label_column: Label column; default: the first of `label`, `labels`, `class`, ...
        limit: Evaluate a seeded random subset of this many images (all classes represented in expectation).
        seed: Seed of the `limit` subset.

    Returns:
        An :class:`EvalDataset`.

    Raises:
        FileNotFoundError: The folder does not exist.
        ValueError: Unknown kind, missing image/label column or split, or labels that do not match the names.
        RuntimeError: A Hub id that cannot be fetched (offline), naming how to pass a local copy.
    """
    if kind not in DATASET_KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; use one of {', '.join(DATASET_KINDS)}")
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    text = os.fspath(path)
    local = Path(text).expanduser()
    looks_local = local.exists() or text.startswith((".", "/", "~")) or text.count("/") >= 2
    if looks_local and not local.exists():
        raise FileNotFoundError(
            f"dataset folder {text!r} does not exist; pass --data with an existing folder or a Hub id"
        )
    if local.is_dir() and (kind == "bigearthnet" or (kind == "auto" and _bigearthnet_patches(local))):
        dataset = _load_bigearthnet(local, class_names)
        return _subset(dataset, limit, seed)
    if kind == "bigearthnet":
        raise ValueError(f"{text!r} is not a BigEarthNet folder (<patch>/<patch>_labels_metadata.json)")
    imagefolder = kind == "imagefolder" or (kind == "auto" and local.is_dir() and _is_imagefolder(local))
    data = _load_hf(str(local) if local.exists() else text, split, imagefolder)
    image_col = _image_column(data, image_column)
    label_col = _label_column(data, label_column)
    feature = data.features[label_col]
    values = data[label_col]
    inner = _list_inner(feature)
    user_names = list(class_names) if class_names else None
    if kind in ("sat4", "sat6") and not class_names:
        class_names = SAT4_CLASSNAMES if kind == "sat4" else SAT6_CLASSNAMES
    if inner is not None:
        if kind not in ("auto", "multilabel", "bigearthnet"):
            raise ValueError(f"label column {label_col!r} holds lists (multi-label) but --dataset-kind is {kind!r}")
        labels, names = _multi_labels(values, inner, class_names)
    else:
        if kind == "multilabel":
            raise ValueError(f"label column {label_col!r} holds one label per image; drop --dataset-kind multilabel")
        labels, names = _single_labels(values, feature, class_names)
    resolved = kind if kind != "auto" else _detect_kind(names, inner is not None, imagefolder)
    if user_names is not None:
        prompt_names = user_names
    elif resolved == "eurosat" and names == list(EUROSAT_LABELS):
        prompt_names = _eurosat_prompt_names()
    else:
        prompt_names = [readable_class_name(n) for n in names]
    display = {"eurosat": "EuroSAT", "sat4": "SAT-4", "sat6": "SAT-6"}.get(
        resolved, local.name if local.exists() else text
    )
    dataset_type = (
        text if not local.exists() else {"eurosat": "eurosat", "sat4": "sat4", "sat6": "sat6"}.get(resolved, local.name)
    )
    dataset = EvalDataset(
        name=display,
        dataset_type=dataset_type,
        split=split,
        kind=resolved,
        class_names=names,
        prompt_names=prompt_names,
        labels=labels,
        sensor="rgb",
        source=data,
        image_column=image_col,
    )
    return _subset(dataset, limit, seed)


def _subset(dataset: EvalDataset, limit: int | None, seed: int) -> EvalDataset:
    if limit is None or limit >= len(dataset):
        return dataset
    rows = np.sort(np.random.default_rng(seed).choice(len(dataset), size=limit, replace=False))
    source = [dataset.source[i] for i in rows] if isinstance(dataset.source, list) else dataset.source.select(rows)
    return EvalDataset(
        name=dataset.name,
        dataset_type=dataset.dataset_type,
        split=dataset.split,
        kind=dataset.kind,
        class_names=dataset.class_names,
        prompt_names=dataset.prompt_names,
        labels=dataset.labels[rows],
        sensor=dataset.sensor,
        source=source,
        image_column=dataset.image_column,
    )
