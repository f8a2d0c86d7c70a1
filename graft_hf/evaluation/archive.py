"""Index an archive of satellite images with a model and search it with text (`graft index`, `graft search`).

`build_index` embeds images from

* pair shards or any `datasets` folder / Hub id with an image column (metadata from the tile-id, latitude,
  longitude and date columns of `graft_hf.index.STANDARD_COLUMNS` when present), or
* a folder of image files (GeoTIFFs included; their centre is converted to lat/lon, and the model's processor
  reads their bands with its sensor settings),

into a `graft_hf.index.EmbeddingIndex` saved under the output folder, next to ``graft_index.json`` recording the
model and where the images came from, so `search_index` can embed queries with the same model and draw a
retrieval grid of the hits.
"""

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import rasterio
import torch
from datasets import Image as ImageFeature
from PIL import Image
from rasterio.warp import transform
from tqdm.auto import tqdm

from graft_hf.config import ConfigError, config_dataclass, require
from graft_hf.evaluation.datasets import find_image_column, load_split, to_rgb_image
from graft_hf.evaluation.encoders import Encoder, load_encoder
from graft_hf.evaluation.errors import check_local_or_hub, renamed_parameters
from graft_hf.evaluation.images import decode_image, read_image_rows
from graft_hf.index import STANDARD_COLUMNS, ApproximateIndexConfig, EmbeddingIndex, SearchResult
from graft_hf.io import write_json
from graft_hf.modeling import SENSORS

logger = logging.getLogger(__name__)

__all__ = ["IndexBuildConfig", "SearchConfig", "build_index", "hit_images", "search_index"]

MANIFEST = "graft_index.json"
_FILE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".webp"}
_APPROXIMATE_KINDS = {"ivf": "ivf_flat", "hnsw": "hnsw"}


@config_dataclass
class IndexBuildConfig:
    """What `graft index` does.

    Attributes:
        model: GRAFT (or CLIP) model directory whose image tower embeds the archive.
        data: Pair shards / `datasets` folder or Hub id, or a folder of image files.
        output: Index folder to write.
        split: Split of a `datasets` source (a source with a single split uses it).
        approximate: Also build a faiss index: `ivf` (IVF-Flat) or `hnsw`.
        limit: Index only the first `limit` images.
        batch_size: Images per forward pass.
        device: `cpu`, `cuda` or `auto`.
        progress: Show a progress bar.
    """

    model: str
    data: str
    output: str
    split: str = "train"
    approximate: Literal["ivf", "hnsw"] | None = None
    limit: int | None = None
    batch_size: int = 32
    device: str = "cpu"
    progress: bool = True

    def validate_sizes(self) -> None:
        require(self.batch_size > 0, "batch_size", f"must be positive, got {self.batch_size}")
        require(self.limit is None or self.limit > 0, "limit", f"must be positive, got {self.limit}")


@config_dataclass
class SearchConfig:
    """What `graft search` does.

    Attributes:
        index: Index folder written by `build_index`.
        queries: Text queries.
        model: Model directory for the text side; default: the one recorded in the index.
        text_encoder: Separate text encoder directory (e.g. all-MiniLM-L6-v2 for an alt-text model).
        k: Hits per query.
        approximate: Use the faiss index instead of exact search.
        device: `cpu`, `cuda` or `auto`.
    """

    index: str
    queries: list[str]
    model: str | None = None
    text_encoder: str | None = None
    k: int = 10
    approximate: bool = False
    device: str = "cpu"

    def validate_queries(self) -> None:
        require(bool(self.queries), "queries", "no query given; pass at least one text query")
        blank = [i for i, query in enumerate(self.queries) if not query.strip()]
        require(not blank, "queries", f"query {blank[0] + 1 if blank else 0} is empty; type the text to search for")

    def validate_k(self) -> None:
        require(self.k > 0, "k", f"must be positive, got {self.k}")


def _image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in _FILE_SUFFIXES)


def _geotiff_metadata(path: Path) -> tuple[float | None, float | None, str | None]:
    """Centre (lat, lon) of a georeferenced raster and its TIFF date tag, or Nones."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None, None, None
    with _reading(path), rasterio.open(path) as src:
        date = src.tags().get("TIFFTAG_DATETIME") or src.tags().get("ACQUISITION_DATE")
        if src.crs is None:
            return None, None, date
        bounds = src.bounds
        xs, ys = transform(src.crs, "EPSG:4326", [(bounds.left + bounds.right) / 2], [(bounds.top + bounds.bottom) / 2])
    return float(ys[0]), float(xs[0]), date


def _embed(encoder: Encoder, items: list[Any], batch_size: int, progress: bool) -> torch.Tensor:
    chunks = []
    batches = range(0, len(items), batch_size)
    for start in tqdm(batches, total=math.ceil(len(items) / batch_size), desc="embedding", disable=not progress):
        chunks.append(encoder.encode_images(items[start : start + batch_size]))
    return torch.cat(chunks)


def _index_files(encoder: Encoder, root: Path, files: list[Path], config: IndexBuildConfig) -> EmbeddingIndex:
    """Image files embedded as they are; GeoTIFF centres become lat/lon, TIFF date tags the date."""
    meta = [_geotiff_metadata(p) for p in files]
    embeds = _embed(encoder, [str(p) for p in files], config.batch_size, config.progress)
    has_coords = any(m[0] is not None for m in meta)
    return EmbeddingIndex.from_embeddings(
        embeds,
        tile_id=[str(p.relative_to(root)) for p in files],
        lat=[m[0] if m[0] is not None else math.nan for m in meta] if has_coords else None,
        lon=[m[1] if m[1] is not None else math.nan for m in meta] if has_coords else None,
        date=[m[2] or "" for m in meta] if any(m[2] for m in meta) else None,
        metadata={"image_path": [str(p.resolve()) for p in files]},
    )


def _index_dataset(encoder: Encoder, source: str, config: IndexBuildConfig) -> tuple[EmbeddingIndex, str | None]:
    """The image column of a `datasets` split embedded, with its standard metadata columns; and the split read."""
    with renamed_parameters({"path": "data"}):
        dataset = load_split(source, config.split)
    if config.limit:
        dataset = dataset.select(range(min(config.limit, len(dataset))))
    image_column = find_image_column(dataset)
    items = []
    for start in range(0, len(dataset), 256):
        for image in read_image_rows(dataset, image_column, start, min(start + 256, len(dataset))):
            items.append(image.convert("RGB") if isinstance(image, Image.Image) and image.mode != "RGB" else image)
    embeds = _embed(encoder, items, config.batch_size, config.progress)
    columns = {f: next((c for c in names if c in dataset.column_names), None) for f, names in STANDARD_COLUMNS.items()}
    values = {f: dataset[c] if c else None for f, c in columns.items()}
    index = EmbeddingIndex.from_embeddings(
        embeds,
        tile_id=[str(v) for v in values["tile_id"]] if values["tile_id"] else [str(i) for i in range(len(items))],
        lat=values["lat"],
        lon=values["lon"],
        date=[str(v) for v in values["date"]] if values["date"] else None,
        metadata={"source_row": list(range(len(items)))},
    )
    return index, dataset.split and str(dataset.split)


def build_index(config: IndexBuildConfig) -> EmbeddingIndex:
    """Embed an archive and save it as an `EmbeddingIndex` under `config.output`.

    Returns:
        The `graft_hf.index.EmbeddingIndex`.

    Raises:
        FileNotFoundError: The data folder does not exist or holds no images.
        ValueError: A `datasets` source without an image column.
    """
    encoder = load_encoder(config.model, device=config.device)
    root = Path(config.data)
    model = str(Path(config.model).resolve()) if Path(config.model).exists() else config.model
    manifest: dict[str, Any] = {"model": model}
    files = _image_files(root) if root.is_dir() and not any(root.rglob("*.parquet")) else []
    if files:
        index = _index_files(encoder, root, files[: config.limit] if config.limit else files, config)
        manifest["source"] = {"kind": "files"}
    else:
        check_local_or_hub("data", config.data, "data folder")
        source = str(root.resolve()) if root.exists() else config.data
        index, split = _index_dataset(encoder, str(root) if root.exists() else config.data, config)
        manifest["source"] = {"kind": "datasets", "path": source, "split": split}
    if config.approximate:
        index.build_approximate(ApproximateIndexConfig(kind=_APPROXIMATE_KINDS[config.approximate]))
    out = Path(config.output)
    index.save_to_disk(out)
    manifest["build"] = asdict(config)
    manifest["num_items"], manifest["dim"] = len(index), index.dim
    write_json(out / MANIFEST, manifest)
    logger.info("indexed %d images (dim %d) into %s", len(index), index.dim, out)
    return index


def _manifest(index_dir: Path) -> dict[str, Any]:
    path = index_dir / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def search_index(config: SearchConfig) -> tuple[list[list[SearchResult]], EmbeddingIndex]:
    """Embed text queries and search an index.

    Returns:
        `(results, index)`: one list of `graft_hf.index.SearchResult` per query (best first), and the index.

    Raises:
        FileNotFoundError: No index at `config.index`.
        ValueError: No model, or a model whose text embeddings do not match the index.
    """
    index_dir = Path(config.index)
    index = EmbeddingIndex.load_from_disk(index_dir, load_approximate=config.approximate)
    model = config.model or _manifest(index_dir).get("model")
    if not model:
        raise ConfigError("model", f"{index_dir} does not record its model; pass model=DIR")
    encoder = load_encoder(model, text_encoder=config.text_encoder, device=config.device)
    text_embeds = encoder.encode_texts(config.queries)  # (num_queries, dim)
    if text_embeds.shape[1] != index.dim:
        raise ConfigError(
            "model",
            f"the text encoder gives {text_embeds.shape[1]}-d embeddings but the index holds {index.dim}-d ones; "
            "search with the model that built the index (and its separate text encoder, if it has one)",
        )
    k = min(config.k, len(index))
    if k < config.k:
        logger.info("the index holds %d items; returning %d hits per query", len(index), k)
    if config.approximate:
        if not index.has_approximate_index:
            raise ConfigError(
                "approximate", f"{index_dir} has no approximate index; rebuild it with approximate='ivf' or 'hnsw'"
            )
        results = index.search_approximate(text_embeds, k)
    else:
        results = index.search(text_embeds, k)
    return results, index  # type: ignore[return-value]  # 2-D queries give one list of hits per query


def _file_image(path: str) -> Image.Image:
    """An indexed file as an RGB picture; its size is checked before it is decoded, of a raster only RGB is read."""
    if Path(path).suffix.lower() not in (".tif", ".tiff"):
        return decode_image({"bytes": None, "path": path}, ImageFeature(mode="RGB"), path)
    with _reading(path), rasterio.open(path) as src:
        count = src.count
    return to_rgb_image(path, "rgb" if count == 3 else _sensor_for(count))


def hit_images(index_dir: str | os.PathLike, hits: list[SearchResult]) -> list[Image.Image]:
    """RGB images of search hits, read from the files or dataset rows the index was built from."""
    source = _manifest(Path(index_dir)).get("source", {})
    if source.get("kind") == "files":
        return [_file_image(hit.extra["image_path"]) for hit in hits]
    if source.get("kind") == "datasets":
        dataset = load_split(source["path"], source.get("split") or "train")
        column = find_image_column(dataset)
        rows = [int(hit.extra["source_row"]) for hit in hits]
        return [read_image_rows(dataset, column, row, row + 1)[0].convert("RGB") for row in rows]
    raise ValueError(f"{index_dir} does not record where its images are ({MANIFEST}); rebuild it with build_index")


def _sensor_for(count: int) -> str:
    for name, sensor in SENSORS.items():
        if sensor.band_names and len(sensor.band_names) == count:
            return name
    raise ValueError(f"cannot render a {count}-band raster as RGB; no sensor preset has that many bands")


@contextlib.contextmanager
def _reading(path: str | os.PathLike) -> Iterator[None]:
    """Errors while reading ``path`` as one ``ValueError`` that names it."""
    try:
        yield
    except rasterio.errors.RasterioError as error:
        raise ValueError(f"cannot read {path}: {error}; is it a corrupt or unsupported file?") from error
