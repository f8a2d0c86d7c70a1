"""The demo's retrieval gallery: image embeddings computed once, saved with coordinates and thumbnails.

A gallery is an :class:`~graft_hf.index.EmbeddingIndex` saved with `save_to_disk` whose metadata holds, per
tile, its latitude and longitude, an id, optional date and label, and a small PNG thumbnail (`thumbnail`
column, bytes) for the result grid, plus a `gallery.json` naming the model that embedded it. Retrieval then
runs only the text tower per query. An index saved by other tools loads too, as long as it has coordinates;
results without a thumbnail are shown as a grey tile.

Example:
    >>> records = [{"image": tile, "lat": 47.1, "lon": -99.2, "tile_id": "a"} for tile in tiles]
    >>> index = build_gallery(model, records, "gallery/")                 # embeds, thumbnails, saves
    >>> index, info = load_gallery("gallery/")
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sized
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq
import rasterio
import torch
from datasets import load_dataset
from huggingface_hub import snapshot_download
from PIL import Image
from rasterio.warp import transform
from tqdm.auto import tqdm

from graft_hf.index import EmbeddingIndex
from graft_hf.io import write_json
from graft_hf.modeling import GraftImageProcessor
from graft_hf.tasks.map_setup import load_map_model
from graft_hf.tasks.segmentation import prepare_image
from graft_hf.tasks.text import model_device

if TYPE_CHECKING:
    from graft_hf.demo.config import GalleryConfig
    from graft_hf.modeling import GraftModel

logger = logging.getLogger(__name__)

__all__ = [
    "GALLERY_FILE",
    "THUMBNAIL_COLUMN",
    "GalleryInfo",
    "build_gallery",
    "build_gallery_from_config",
    "load_gallery",
    "records_from_geotiffs",
    "records_from_pairs",
    "resolve_gallery",
]

GALLERY_FILE = "gallery.json"
THUMBNAIL_COLUMN = "thumbnail"
_STANDARD = ("image", "lat", "lon", "tile_id", "date")


@dataclass
class GalleryInfo:
    """What `gallery.json` records about a gallery.

    Attributes:
        num_items: Tiles in the gallery.
        projection_dim: Embedding size; must equal the demo model's `projection_dim`.
        model: Name or path of the model that embedded the tiles (informative).
        thumbnail_size: Longest side of the stored thumbnails in pixels (0: none stored).
        has_thumbnails: Whether the index has a thumbnail column.
    """

    num_items: int
    projection_dim: int
    model: str | None = None
    thumbnail_size: int = 0
    has_thumbnails: bool = False


def _thumbnail_png(rgb: np.ndarray, size: int) -> bytes:
    """uint8 `(height, width, 3)` -> PNG bytes, longest side `size` (upscaled with nearest for tiny tiles)."""
    image = Image.fromarray(rgb)
    scale = size / max(image.size)
    new_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    buffer = io.BytesIO()
    image.resize(new_size, resample).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _float(value: Any, name: str, position: int) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"record {position}: {name} must be a number of degrees, got {value!r}") from None
    limit = 90.0 if name == "lat" else 180.0
    if not math.isfinite(number) or abs(number) > limit:
        raise ValueError(f"record {position}: {name}={number} is outside [-{limit:g}, {limit:g}] degrees")
    return number


class _GalleryColumns:
    """Embeddings and metadata columns of the gallery, filled record by record (images embedded in batches)."""

    def __init__(self, model: GraftModel, image_processor: GraftImageProcessor, batch_size: int, thumbnail_size: int):
        self.model, self.image_processor = model, image_processor
        self.batch_size, self.thumbnail_size = batch_size, thumbnail_size
        self.device = model_device(model)
        self.embeds: list[torch.Tensor] = []
        self.pending: list[torch.Tensor] = []
        self.columns: dict[str, list[Any]] = {"tile_id": [], "lat": [], "lon": [], "date": [], THUMBNAIL_COLUMN: []}
        self.extra_names: list[str] | None = None
        self.located: bool | None = None  # whether the records carry coordinates (all of them, or none)

    def _extra_names(self, record: Mapping[str, Any], position: int) -> list[str]:
        if "image" not in record or record["image"] is None:
            raise ValueError(f"record {position} has no 'image'; every record needs an image")
        located = "lat" in record and "lon" in record
        if self.located is None:
            self.located = located
        elif located != self.located:
            have = "have" if self.located else "lack"
            raise ValueError(f"record {position}: the first records {have} 'lat'/'lon'; give them for all or none")
        names = sorted(k for k in record if k not in _STANDARD)
        if self.extra_names is None:
            self.extra_names = names
            self.columns.update({name: [] for name in names})
        elif names != self.extra_names:
            raise ValueError(f"record {position} has extra columns {names}, the first record had {self.extra_names}")
        return names

    def add(self, record: Mapping[str, Any], position: int) -> None:
        names = self._extra_names(record, position)
        pixel_values, rgb = prepare_image(record["image"], self.image_processor)  # (1, 3, size, size), (H, W, 3)
        self.pending.append(pixel_values)
        self.columns[THUMBNAIL_COLUMN].append(_thumbnail_png(rgb, self.thumbnail_size))
        if self.located:
            self.columns["lat"].append(_float(record["lat"], "lat", position))
            self.columns["lon"].append(_float(record["lon"], "lon", position))
        self.columns["tile_id"].append(str(record.get("tile_id", position)))
        date = record.get("date")
        self.columns["date"].append(None if date is None else str(date))
        for name in names:
            self.columns[name].append(record[name])
        if len(self.pending) == self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            pixel_values = torch.cat(self.pending).to(self.device)  # (batch, 3, size, size)
            self.embeds.append(self.model.get_image_features(pixel_values).float().cpu())  # (batch, projection_dim)
            self.pending.clear()

    def index(self) -> EmbeddingIndex:
        self.flush()
        if not self.embeds:
            raise ValueError("no gallery records given; pass at least one {'image', 'lat', 'lon'} mapping")
        columns = dict(self.columns)
        tile_ids, lats, lons, dates = (columns.pop(name) for name in ("tile_id", "lat", "lon", "date"))
        lats, lons = (lats, lons) if self.located else (None, None)
        return EmbeddingIndex.from_embeddings(
            torch.cat(self.embeds), tile_id=tile_ids, lat=lats, lon=lons, metadata=columns,
            date=None if all(d is None for d in dates) else dates,
        )  # fmt: skip


@torch.no_grad()
def build_gallery(
    model: GraftModel,
    images_with_metadata: Iterable[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    image_processor: GraftImageProcessor | None = None,
    batch_size: int = 32,
    thumbnail_size: int = 128,
    model_name: str | None = None,
    total: int | None = None,
) -> EmbeddingIndex:
    """Embeds gallery images with a GRAFT model and saves them as a searchable index with thumbnails.

    Args:
        model: A `GraftModel` (its image tower embeds the tiles).
        images_with_metadata: One mapping per tile with `image` (a PIL image, an HWC/CHW array or a GeoTIFF/image
            path, anything `GraftImageProcessor` reads), `lat` and `lon` in degrees (all records or none: without
            them the demo lists results without a map), and optionally `tile_id`, `date` (ISO 8601) and further
            scalar columns (e.g. `label`) kept as metadata.
        out_dir: Folder to save the index in (`EmbeddingIndex.save_to_disk` layout plus `gallery.json`).
        image_processor: A `GraftImageProcessor`; defaults to the one matching `model.config`.
        batch_size: Images per forward pass.
        thumbnail_size: Longest side of the stored PNG thumbnails, in pixels.
        model_name: Recorded in `gallery.json` (e.g. the model's directory or Hub id).
        total: Number of records, for the progress bar (default: `len(images_with_metadata)` when it has one).

    Returns:
        The saved :class:`~graft_hf.index.EmbeddingIndex`.

    Raises:
        ValueError: No records, a record without an image or coordinates, or inconsistent extra columns.
    """
    if batch_size <= 0 or thumbnail_size <= 0:
        raise ValueError(f"batch_size and thumbnail_size must be positive, got {batch_size} and {thumbnail_size}")
    if image_processor is None:
        image_processor = GraftImageProcessor.from_graft_config(model.config)
    columns = _GalleryColumns(model, image_processor, batch_size, thumbnail_size)
    if total is None and isinstance(images_with_metadata, Sized):
        total = len(images_with_metadata)
    bar = tqdm(images_with_metadata, total=total, desc="embedding gallery", unit="tile")
    for position, record in enumerate(bar):
        columns.add(record, position)
    index = columns.index()
    out_dir = Path(out_dir)
    index.save_to_disk(out_dir)
    write_json(out_dir / GALLERY_FILE, asdict(GalleryInfo(len(index), index.dim, model_name, thumbnail_size, True)))
    logger.info("saved a gallery of %d tiles (dim %d) to %s", len(index), index.dim, out_dir)
    return index


def build_gallery_from_config(config: GalleryConfig) -> EmbeddingIndex:
    """`graft demo-gallery`: load the model, read the tiles (pairs shards or GeoTIFFs) and build the gallery."""
    assert config.model is not None and config.output_dir is not None  # checked by the config's rules
    model, image_processor, _ = load_map_model(config.model, config.device)
    if config.pairs is not None:
        records, total = records_from_pairs(config.pairs, config.limit), _pairs_rows(config.pairs, config.limit)
    else:
        records, total = records_from_geotiffs(config.geotiffs or []), len(_geotiff_files(config.geotiffs or []))
    return build_gallery(
        model, records, config.output_dir, image_processor=image_processor, batch_size=config.batch_size,
        thumbnail_size=config.thumbnail_size, model_name=config.model, total=total,
    )  # fmt: skip


def _pairs_files(pairs: str | Path) -> list[str]:
    pairs = Path(pairs)
    files = sorted(str(p) for p in pairs.rglob("*.parquet")) if pairs.is_dir() else [str(pairs)]
    if not files:
        raise FileNotFoundError(f"no parquet shards under {pairs}; pass pairs shards written by `graft pairs`")
    return files


def _pairs_rows(pairs: str | Path, limit: int | None) -> int:
    """Tiles in the pairs shards (from the parquet footers), at most `limit`."""
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in _pairs_files(pairs))
    return rows if limit is None else min(rows, limit)


def _geotiff_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for item in map(Path, paths):
        files.extend(sorted([*item.rglob("*.tif"), *item.rglob("*.tiff")]) if item.is_dir() else [item])
    if not files:
        raise FileNotFoundError(f"no GeoTIFFs found in {list(map(str, paths))}")
    return files


def load_gallery(path: str | Path) -> tuple[EmbeddingIndex, GalleryInfo]:
    """Loads a gallery saved by :func:`build_gallery` (or any saved `EmbeddingIndex`; without coordinates the
    demo lists results without a map).

    Raises:
        FileNotFoundError: `path` is not a saved index.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"gallery folder not found: {path}; build one with graft_hf.demo.build_gallery")
    index = EmbeddingIndex.load_from_disk(path, load_approximate=False)
    if index.columns.get("lat") is None or index.columns.get("lon") is None:
        logger.info("the gallery in %s has no coordinates: results are listed without a map", path)
    has_thumbnails = THUMBNAIL_COLUMN in index.dataset.column_names
    meta_path = path / GALLERY_FILE
    if meta_path.is_file():
        saved = json.loads(meta_path.read_text())
        info = GalleryInfo(**{k: v for k, v in saved.items() if k in GalleryInfo.__dataclass_fields__})
        info.num_items, info.projection_dim, info.has_thumbnails = len(index), index.dim, has_thumbnails
    else:
        logger.info("%s has no %s: an index from another tool; results show without thumbnails", path, GALLERY_FILE)
        info = GalleryInfo(len(index), index.dim, None, 0, has_thumbnails)
    return index, info


def resolve_gallery(path_or_repo: str | Path) -> Path:
    """A local gallery folder: `path_or_repo` itself, or a Hub dataset repo (`owner/name`) downloaded to the cache.

    Raises:
        FileNotFoundError: Neither a folder nor a reachable dataset repo.
    """
    path = Path(path_or_repo)
    if path.is_dir():
        return path
    text = str(path_or_repo)
    if text.count("/") == 1 and not text.startswith((".", "/")):
        try:
            return Path(snapshot_download(text, repo_type="dataset"))
        except Exception as error:  # noqa: BLE001 - offline, missing repo, auth: one message with the fix
            raise FileNotFoundError(
                f"gallery {text!r} is not a local folder and could not be downloaded as a Hub dataset "
                f"({type(error).__name__}); pass a folder written by graft_hf.demo.build_gallery"
            ) from error
    raise FileNotFoundError(f"gallery folder not found: {path}; build one with `graft demo-gallery`")


def records_from_pairs(pairs: str | Path, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Gallery records from pairs shards (the `graft pairs` parquet schema): one per satellite tile.

    Args:
        pairs: A parquet file, a folder of parquet shards, or a glob pattern.
        limit: Stop after this many tiles.

    Yields:
        `{"image", "lat", "lon", "tile_id", "date", "sensor"}` per tile (the photos are not needed).
    """
    dataset = load_dataset("parquet", data_files=_pairs_files(pairs), split="train", streaming=True)
    dataset = dataset.select_columns(["tile_id", "image", "center_lat", "center_lon", "acquisition_date", "sensor"])
    for count, row in enumerate(dataset):
        if limit is not None and count >= limit:
            return
        yield {
            "image": row["image"],
            "lat": row["center_lat"],
            "lon": row["center_lon"],
            "tile_id": row["tile_id"],
            "date": row["acquisition_date"],
            "sensor": row["sensor"],
        }


def records_from_geotiffs(paths: Iterable[str | Path], max_pixels: int = 4096 * 4096) -> Iterator[dict[str, Any]]:
    """Gallery records from georeferenced tiles (one GeoTIFF per gallery item), centred at each file's centre.

    Args:
        paths: GeoTIFF files, or folders searched for `*.tif`/`*.tiff`.
        max_pixels: Refuse files larger than this (a gallery item is a tile, not a scene).

    Yields:
        `{"image": path, "lat", "lon", "tile_id": file stem}` per file.

    Raises:
        ValueError: A file without a CRS or larger than `max_pixels`.
    """
    for path in _geotiff_files(paths):
        with rasterio.open(path) as src:
            if src.crs is None:
                raise ValueError(f"{path} has no CRS, so its tile cannot be placed on the map; assign one first")
            if src.width * src.height > max_pixels:
                raise ValueError(
                    f"{path} is {src.width} x {src.height} px, more than max_pixels={max_pixels}; cut tiles"
                )
            x, y = src.xy(src.height / 2 - 0.5, src.width / 2 - 0.5)  # the centre of the raster
            lons, lats = transform(src.crs, "EPSG:4326", [x], [y])
        yield {"image": str(path), "lat": lats[0], "lon": lons[0], "tile_id": path.stem}
