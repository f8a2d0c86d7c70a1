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

import functools
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from datasets import ClassLabel, LargeList, List, load_dataset
from datasets import Dataset as HFDataset
from datasets import Image as ImageFeature
from datasets import Sequence as HFSequence
from huggingface_hub import is_offline_mode
from PIL import Image
from rasterio.enums import Resampling

from graft_hf.config import ConfigError
from graft_hf.evaluation.errors import (
    MissingPathError,
    UnavailableSourceError,
    check_local_or_hub,
    missing_folder_note,
)
from graft_hf.evaluation.images import read_image_rows
from graft_hf.evaluation.templates import EUROSAT_CLASSNAMES, EUROSAT_LABELS
from graft_hf.modeling import GraftImageProcessor

logger = logging.getLogger(__name__)

__all__ = [
    "DATASET_KINDS",
    "SAT4_CLASSNAMES",
    "SAT6_CLASSNAMES",
    "UCMERCED_CLASSNAMES",
    "EvalDataset",
    "find_image_column",
    "load_eval_dataset",
    "load_split",
    "readable_class_name",
    "to_rgb_image",
]


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
        image = read_image_rows(self.source, self.image_column, int(index), int(index) + 1)[0]
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
                images = read_image_rows(self.source, self.image_column, start, stop)
                yield [
                    im.convert("RGB") if isinstance(im, Image.Image) and im.mode not in ("RGB", "L") else im
                    for im in images
                ]

    def label_names(self, index: int) -> list[str]:
        """The class names of image `index` (one for single-label data)."""
        if self.multilabel:
            return [self.class_names[c] for c in np.flatnonzero(self.labels[index])]
        return [self.class_names[int(self.labels[index])]]


def to_rgb_image(image: Image.Image | np.ndarray | str, sensor: str = "rgb") -> Image.Image:
    """An RGB PIL image from a PIL image, a `(bands, H, W)` array or a raster file of a `SENSOR_PRESETS` sensor.

    A file is read by the sensor's `GraftImageProcessor`: its header is checked first and only red, green and
    blue are read.
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")

    processor = GraftImageProcessor(sensor=sensor, do_resize=False, do_normalize=False)
    pixels = image if isinstance(image, str) else np.asarray(image)
    rgb = processor(pixels, return_tensors=None, input_data_format="channels_first")["pixel_values"][0]
    return Image.fromarray((np.moveaxis(rgb, 0, -1) * 255.0 + 0.5).astype(np.uint8))


# -------------------------------------------------------------------------------------------------- BigEarthNet
def _bigearthnet_patches(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/*_labels_metadata.json"))


def _read_bigearthnet_patch(folder: Path) -> np.ndarray:
    """`(12, 120, 120)` uint16: every band resampled (bilinear) to the 10 m grid."""
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


def _load_bigearthnet(request: _Request) -> EvalDataset:
    """The `bigearthnet` kind: patch folders read into 12-band Sentinel-2 stacks, multi-label."""
    patches = _bigearthnet_patches(request.local) if request.local.is_dir() else []
    if not patches:
        raise ConfigError(
            "path",
            f"{request.text!r} is not a BigEarthNet folder: it holds no <patch>/<patch>_labels_metadata.json; pass "
            "the folder of patch folders, or another dataset kind",
        )
    per_patch = [json.loads((p / f"{p.name}_labels_metadata.json").read_text())["labels"] for p in patches]
    present = {label for labels in per_patch for label in labels}
    names = list(request.class_names) if request.class_names else sorted(present)
    unknown = sorted(present - set(names))
    if unknown:
        raise ConfigError(
            "class_names",
            f"BigEarthNet labels {unknown} are not among the given class names; pass the full nomenclature",
        )
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


def load_split(path: str, split: str, imagefolder: bool = False) -> HFDataset:
    """One split of a `datasets` folder, image folder or Hub dataset.

    Args:
        path: Local folder or Hub dataset id.
        split: The split; an image folder without splits gives all its images.
        imagefolder: Read `path` with `datasets`' ``imagefolder`` builder (one subfolder per class).

    Raises:
        FileNotFoundError: Nothing at `path`.
        RuntimeError: A Hub id that cannot be fetched (offline), naming how to use a local copy.
        ValueError: No such split.
    """
    try:
        splits = load_dataset("imagefolder", data_dir=path) if imagefolder else load_dataset(path)
    except FileNotFoundError as error:
        raise MissingPathError(
            "path", f"no dataset at {path!r}: pass an existing folder or a Hub dataset id ({error})"
        ) from error
    except (ConnectionError, OSError, ValueError) as error:
        hint = "the Hub cannot be reached (HF_HUB_OFFLINE is set); " if is_offline_mode() else ""
        raise UnavailableSourceError(
            "path",
            f"could not load dataset {path!r}: {missing_folder_note(path)}{hint}download it where the Hub is reachable "
            f"(`hf download {path} --repo-type dataset --local-dir DIR`) and pass path=DIR "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})",
        ) from error
    if split in splits:
        return splits[split]
    if imagefolder and len(splits) == 1:
        only = next(iter(splits))
        logger.info(
            "image folder %s has no %r split; evaluating all %d images (%r)", path, split, len(splits[only]), only
        )
        return splits[only]
    raise ConfigError("split", f"dataset {path!r} has no split {split!r}; use one of {sorted(splits)}")


def find_image_column(dataset: HFDataset, image_column: str | None = None) -> str:
    """`image_column` if the dataset has it, else its first `datasets.Image` feature (or `image`, `img`, ...)."""
    if image_column:
        if image_column not in dataset.column_names:
            raise ConfigError(
                "image_column", f"{image_column!r} is not among the dataset columns {dataset.column_names}"
            )
        return image_column
    for name, feature in dataset.features.items():
        if isinstance(feature, ImageFeature):
            return name
    for name in ("image", "img", "pixel_values"):
        if name in dataset.column_names:
            return name
    raise ConfigError("image_column", f"no image column found among {dataset.column_names}; name the one to use")


def _label_column(dataset: HFDataset, label_column: str | None) -> str:
    if label_column:
        if label_column not in dataset.column_names:
            raise ConfigError(
                "label_column", f"{label_column!r} is not among the dataset columns {dataset.column_names}"
            )
        return label_column
    for name in _LABEL_CANDIDATES:
        if name in dataset.column_names:
            return name
    raise ConfigError(
        "label_column",
        f"no label column found among {dataset.column_names} (looked for {list(_LABEL_CANDIDATES)}); name the one "
        "to use",
    )


def _list_inner(feature: Any) -> Any | None:
    if isinstance(feature, (List, LargeList, HFSequence)):
        return feature.feature
    return None


def _names_and_index(values: Iterable[str], class_names: Sequence[str] | None) -> tuple[list[str], dict[str, int]]:
    """Class names (given, or the sorted distinct labels) and their ids; refuses labels outside the given names."""
    present = set(values)
    names = list(class_names) if class_names else sorted(present)
    missing = sorted(present - set(names))
    if missing:
        raise ConfigError("class_names", f"labels {missing[:5]} are not among the given class names")
    return names, {n: i for i, n in enumerate(names)}


def _check_class_label(feature: ClassLabel, class_names: Sequence[str] | None) -> None:
    if class_names and len(class_names) != feature.num_classes:
        raise ConfigError(
            "class_names", f"got {len(class_names)} class names for a label with {feature.num_classes} classes"
        )


def _single_labels(values: list, feature: Any, class_names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    if isinstance(feature, ClassLabel):
        _check_class_label(feature, class_names)
        return np.asarray(values, dtype=np.int64), list(feature.names)
    if values and isinstance(values[0], str):
        names, index = _names_and_index(values, class_names)
        return np.asarray([index[v] for v in values], dtype=np.int64), names
    ids = np.asarray(values, dtype=np.int64)
    if not class_names:
        raise ConfigError(
            "class_names",
            "integer labels without names: pass the class names in label-id order (or kind='sat4'/'sat6')",
        )
    if ids.size and (ids.min() < 0 or ids.max() >= len(class_names)):
        raise ConfigError(
            "class_names", f"labels span [{ids.min()}, {ids.max()}] but {len(class_names)} class names were given"
        )
    return ids, list(class_names)


def _multi_labels(values: list, inner: Any, class_names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    if isinstance(inner, ClassLabel):
        _check_class_label(inner, class_names)
        names, rows = list(inner.names), [list(v) for v in values]
    elif any(isinstance(x, str) for v in values for x in v):
        names, index = _names_and_index((x for v in values for x in v), class_names)
        rows = [[index[x] for x in v] for v in values]
    elif not class_names:
        raise ConfigError("class_names", "integer multi-labels without names: pass the class names in label-id order")
    else:
        names, rows = list(class_names), [list(v) for v in values]
    targets = np.zeros((len(rows), len(names)), dtype=np.int8)
    for r, ids in enumerate(rows):
        if ids and (min(ids) < 0 or max(ids) >= len(names)):
            raise ValueError(f"row {r} has label ids {ids} outside [0, {len(names)})")
        targets[r, ids] = 1
    return targets, names


# -------------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class _Request:
    """What `load_eval_dataset` was asked for, handed to the loader of the dataset kind."""

    text: str
    local: Path
    split: str
    kind: str
    class_names: list[str] | None
    image_column: str | None
    label_column: str | None

    @property
    def source(self) -> str:
        return str(self.local) if self.local.exists() else self.text


@dataclass(frozen=True)
class _LabelledKind:
    """A dataset kind read through `datasets`: an image column plus a label column.

    Attributes:
        display_name: Report name (default: the folder name or Hub id).
        default_names: Class names of integer labels when none are given.
        labels: `"single"`, `"multi"` or `"any"` label values per image.
        imagefolder: Read with `datasets`' ``imagefolder`` builder.
    """

    display_name: str | None = None
    default_names: tuple[str, ...] | None = None
    labels: Literal["single", "multi", "any"] = "single"
    imagefolder: bool = False


_LABELLED_KINDS: dict[str, _LabelledKind] = {
    "eurosat": _LabelledKind("EuroSAT"),
    "sat4": _LabelledKind("SAT-4", SAT4_CLASSNAMES),
    "sat6": _LabelledKind("SAT-6", SAT6_CLASSNAMES),
    "imagefolder": _LabelledKind(imagefolder=True),
    "classification": _LabelledKind(),
    "multilabel": _LabelledKind(labels="multi"),
}


def _labels(data: HFDataset, request: _Request, spec: _LabelledKind) -> tuple[np.ndarray, list[str], bool]:
    """Labels, class names and whether the data is multi-label, checked against the kind."""
    label_col = _label_column(data, request.label_column)
    feature, values = data.features[label_col], data[label_col]
    inner = _list_inner(feature)
    names = request.class_names or (list(spec.default_names) if spec.default_names else None)
    if inner is not None:
        if spec.labels == "single":
            raise ConfigError(
                "kind", f"label column {label_col!r} holds lists (multi-label) but the dataset kind is {request.kind!r}"
            )
        return (*_multi_labels(values, inner, names), True)
    if spec.labels == "multi":
        raise ConfigError("kind", f"label column {label_col!r} holds one label per image; use a single-label kind")
    return (*_single_labels(values, feature, names), False)


def _resolved_kind(request: _Request, names: list[str], multilabel: bool, imagefolder: bool) -> str:
    if request.kind != "auto":
        return request.kind
    if multilabel:
        return "multilabel"
    if names == list(EUROSAT_LABELS):
        return "eurosat"
    return "imagefolder" if imagefolder else "classification"


def _prompt_names(request: _Request, kind: str, names: list[str]) -> list[str]:
    if request.class_names is not None:
        return list(request.class_names)
    if kind == "eurosat" and names == list(EUROSAT_LABELS):
        return list(EUROSAT_CLASSNAMES)
    return [readable_class_name(n) for n in names]


def _load_labelled(request: _Request, spec: _LabelledKind) -> EvalDataset:
    """A kind read through `datasets`; `spec` says how its labels and names are read."""
    imagefolder = spec.imagefolder or (
        request.kind == "auto" and request.local.is_dir() and _is_imagefolder(request.local)
    )
    data = load_split(request.source, request.split, imagefolder)
    image_col = find_image_column(data, request.image_column)
    labels, names, multilabel = _labels(data, request, spec)
    kind = _resolved_kind(request, names, multilabel, imagefolder)
    known = _LABELLED_KINDS[kind].display_name
    local = request.local.exists()
    return EvalDataset(
        name=known or (request.local.name if local else request.text),
        dataset_type=(kind if known else request.local.name) if local else request.text,
        split=request.split,
        kind=kind,
        class_names=names,
        prompt_names=_prompt_names(request, kind, names),
        labels=labels,
        source=data,
        image_column=image_col,
    )


def _load_auto(request: _Request) -> EvalDataset:
    """Detect the kind: BigEarthNet patch folders, else any labelled `datasets` layout."""
    if request.local.is_dir() and _bigearthnet_patches(request.local):
        return _load_bigearthnet(request)
    return _load_labelled(request, _LabelledKind(labels="any"))


#: Loader of each dataset kind.
_LOADERS: dict[str, Callable[[_Request], EvalDataset]] = {
    "auto": _load_auto,
    "bigearthnet": _load_bigearthnet,
    **{kind: functools.partial(_load_labelled, spec=spec) for kind, spec in _LABELLED_KINDS.items()},
}
DATASET_KINDS: tuple[str, ...] = tuple(_LOADERS)


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
        ValueError: Unknown kind, missing image/label column or split, or labels that do not match the names
            (a :class:`graft_hf.config.ConfigError` naming the parameter).
        RuntimeError: A Hub id that cannot be fetched (offline), naming how to pass a local copy.
    """
    if kind not in _LOADERS:
        raise ConfigError("kind", f"unknown dataset kind {kind!r}; use one of {', '.join(DATASET_KINDS)}")
    if limit is not None and limit <= 0:
        raise ConfigError("limit", f"must be positive, got {limit}")
    text = os.fspath(path)
    local = Path(text).expanduser()
    check_local_or_hub("path", text, "dataset folder")
    names = list(class_names) if class_names else None
    request = _Request(text, local, split, kind, names, image_column, label_column)
    return _subset(_LOADERS[kind](request), limit, seed)


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
