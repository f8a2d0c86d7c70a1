"""Index an archive of satellite images with a model and search it with text (`graft index`, `graft search`).

`build_index` embeds images from

* pair shards or any `datasets` folder / Hub id with an image column (metadata from `tile_id`, `center_lat`/
  `lat`, `center_lon`/`lon`, `acquisition_date`/`date` columns when present), or
* a folder of image files (GeoTIFFs included; their centre is converted to lat/lon, and the model's processor
  reads their bands with its sensor settings),

into a `graft_hf.index.EmbeddingIndex` saved under the output folder, next to ``graft_index.json`` recording the
model and where the images came from, so `search_index` can embed queries with the same model and draw a
retrieval grid of the hits.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from graft_hf.evaluation.encoders import Encoder, load_encoder

logger = logging.getLogger(__name__)

__all__ = ["IndexBuildConfig", "SearchConfig", "build_index", "hit_images", "search_index"]

MANIFEST = "graft_index.json"
_FILE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".webp"}
_COLUMNS = {
    "tile_id": ("tile_id", "id", "filename"),
    "lat": ("center_lat", "lat", "latitude"),
    "lon": ("center_lon", "lon", "longitude"),
    "date": ("acquisition_date", "date"),
}


@dataclass
class IndexBuildConfig:
    """What `graft index` does.

    Attributes:
        model: GRAFT (or CLIP) model directory whose image tower embeds the archive.
        data: Pair shards / `datasets` folder or Hub id, or a folder of image files.
        output: Index folder to write.
        split: Split of a `datasets` source (a source with a single split uses it).
        approximate: Also build a faiss index: `"ivf"` (IVF-Flat) or `"hnsw"`.
        limit: Index only the first `limit` images.
        batch_size: Images per forward pass.
        device: `"cpu"`, `"cuda"` or `"auto"`.
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


@dataclass
class SearchConfig:
    """What `graft search` does.

    Attributes:
        index: Index folder written by `build_index`.
        queries: Text queries.
        model: Model directory for the text side; default: the one recorded in the index.
        text_encoder: Separate text encoder directory (e.g. all-MiniLM-L6-v2 for an alt-text model).
        k: Hits per query.
        approximate: Use the faiss index instead of exact search.
        device: `"cpu"`, `"cuda"` or `"auto"`.
    """

    index: str
    queries: list[str]
    model: str | None = None
    text_encoder: str | None = None
    k: int = 10
    approximate: bool = False
    device: str = "cpu"


def _image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in _FILE_SUFFIXES)


def _geotiff_metadata(path: Path) -> tuple[float | None, float | None, str | None]:
    """Centre (lat, lon) of a georeferenced raster and its TIFF date tag, or Nones."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None, None, None
    import rasterio
    from rasterio.warp import transform

    with rasterio.open(path) as src:
        date = src.tags().get("TIFFTAG_DATETIME") or src.tags().get("ACQUISITION_DATE")
        if src.crs is None:
            return None, None, date
        bounds = src.bounds
        xs, ys = transform(src.crs, "EPSG:4326", [(bounds.left + bounds.right) / 2], [(bounds.top + bounds.bottom) / 2])
    return float(ys[0]), float(xs[0]), date


def _column(names: list[str], field: str) -> str | None:
    return next((c for c in _COLUMNS[field] if c in names), None)


def _embed(encoder: Encoder, items: list[Any], batch_size: int, progress: bool) -> torch.Tensor:
    from tqdm.auto import tqdm

    chunks = []
    batches = range(0, len(items), batch_size)
    for start in tqdm(batches, total=math.ceil(len(items) / batch_size), desc="embedding", disable=not progress):
        chunks.append(encoder.encode_images(items[start : start + batch_size]))
    return torch.cat(chunks)


def build_index(config: IndexBuildConfig) -> Any:
    """Embed an archive and save it as an `EmbeddingIndex` under `config.output`.

    Returns:
        The `graft_hf.index.EmbeddingIndex`.

    Raises:
        FileNotFoundError: The data folder does not exist or holds no images.
        ValueError: A `datasets` source without an image column.
    """
    from graft_hf.index import ApproximateIndexConfig, EmbeddingIndex

    if config.approximate not in (None, "ivf", "hnsw"):
        raise ValueError(f"--approximate must be ivf or hnsw, got {config.approximate!r}")
    encoder = load_encoder(config.model, device=config.device)
    root = Path(config.data)
    manifest: dict[str, Any] = {
        "model": str(Path(config.model).resolve()) if Path(config.model).exists() else config.model
    }
    files = _image_files(root) if root.is_dir() and not any(root.rglob("*.parquet")) else []
    if files:
        files = files[: config.limit] if config.limit else files
        meta = [_geotiff_metadata(p) for p in files]
        embeds = _embed(encoder, [str(p) for p in files], config.batch_size, config.progress)
        has_coords = any(m[0] is not None for m in meta)
        index = EmbeddingIndex.from_embeddings(
            embeds,
            tile_id=[str(p.relative_to(root)) for p in files],
            lat=[m[0] if m[0] is not None else math.nan for m in meta] if has_coords else None,
            lon=[m[1] if m[1] is not None else math.nan for m in meta] if has_coords else None,
            date=[m[2] or "" for m in meta] if any(m[2] for m in meta) else None,
            metadata={"image_path": [str(p.resolve()) for p in files]},
        )
        manifest["source"] = {"kind": "files"}
    else:
        from graft_hf.evaluation.datasets import _image_column, _load_hf

        if root.exists() or config.data.startswith((".", "/", "~")):
            if not root.exists():
                raise FileNotFoundError(f"data folder {config.data!r} does not exist")
        dataset = _load_hf(str(root) if root.exists() else config.data, config.split, imagefolder=False)
        if config.limit:
            dataset = dataset.select(range(min(config.limit, len(dataset))))
        image_column = _image_column(dataset, None)
        names = dataset.column_names
        cols = {field: _column(names, field) for field in _COLUMNS}
        items = []
        for start in range(0, len(dataset), 256):
            for image in dataset[start : start + 256][image_column]:
                items.append(image.convert("RGB") if isinstance(image, Image.Image) and image.mode != "RGB" else image)
        embeds = _embed(encoder, items, config.batch_size, config.progress)
        values = {f: dataset[c] if c else None for f, c in cols.items()}
        tile_ids = [str(v) for v in values["tile_id"]] if values["tile_id"] else [str(i) for i in range(len(items))]
        index = EmbeddingIndex.from_embeddings(
            embeds,
            tile_id=tile_ids,
            lat=values["lat"],
            lon=values["lon"],
            date=[str(v) for v in values["date"]] if values["date"] else None,
            metadata={"source_row": list(range(len(items)))},
        )
        source = str(root.resolve()) if root.exists() else config.data
        manifest["source"] = {"kind": "datasets", "path": source, "split": dataset.split and str(dataset.split)}
    if config.approximate:
        approximate = (
            ApproximateIndexConfig(kind="ivf_flat")
            if config.approximate == "ivf"
            else ApproximateIndexConfig(kind="hnsw")
        )
        index.build_approximate(approximate)
    out = Path(config.output)
    index.save_to_disk(out)
    manifest["build"] = asdict(config)
    manifest["num_items"], manifest["dim"] = len(index), index.dim
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    logger.info("indexed %d images (dim %d) into %s", len(index), index.dim, out)
    return index


def _manifest(index_dir: Path) -> dict[str, Any]:
    path = index_dir / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def search_index(config: SearchConfig) -> tuple[list[list[Any]], Any]:
    """Embed text queries and search an index.

    Returns:
        `(results, index)`: one list of `graft_hf.index.SearchResult` per query (best first), and the index.

    Raises:
        FileNotFoundError: No index at `config.index`.
        ValueError: No queries, no model, or a model whose text embeddings do not match the index.
    """
    from graft_hf.index import EmbeddingIndex

    if not config.queries:
        raise ValueError("no query given; pass --query TEXT")
    index_dir = Path(config.index)
    index = EmbeddingIndex.load_from_disk(index_dir, load_approximate=config.approximate)
    model = config.model or _manifest(index_dir).get("model")
    if not model:
        raise ValueError(f"{index_dir} does not record its model; pass --model DIR")
    encoder = load_encoder(model, text_encoder=config.text_encoder, device=config.device)
    text_embeds = encoder.encode_texts(config.queries)  # (num_queries, dim)
    if text_embeds.shape[1] != index.dim:
        raise ValueError(
            f"the text encoder gives {text_embeds.shape[1]}-d embeddings but the index holds {index.dim}-d ones; "
            "search with the model that built the index (and its --text-encoder, if it has one)"
        )
    k = min(config.k, len(index))
    if k < config.k:
        logger.info("the index holds %d items; returning %d hits per query", len(index), k)
    if config.approximate:
        if not index.has_approximate_index:
            raise ValueError(f"{index_dir} has no approximate index; rebuild it with --approximate ivf|hnsw")
        results = index.search_approximate(text_embeds, k)
    else:
        results = index.search(text_embeds, k)
    return results, index  # type: ignore[return-value]  # 2-D queries give one list of hits per query


def hit_images(index_dir: str | os.PathLike, hits: list[Any]) -> list[Image.Image]:
    """RGB images of search hits, read from the files or dataset rows the index was built from."""
    manifest = _manifest(Path(index_dir))
    source = manifest.get("source", {})
    if source.get("kind") == "files":
        import rasterio

        from graft_hf.evaluation.datasets import to_rgb_image

        out = []
        for hit in hits:
            path = hit.extra["image_path"]
            if Path(path).suffix.lower() in (".tif", ".tiff"):
                with rasterio.open(path) as src:
                    bands = src.read()  # (bands, height, width)
                out.append(
                    to_rgb_image(bands[:3]) if bands.dtype == np.uint8 else to_rgb_image(bands, _sensor_for(bands))
                )
            else:
                out.append(Image.open(path).convert("RGB"))
        return out
    if source.get("kind") == "datasets":
        from graft_hf.evaluation.datasets import _load_hf

        dataset = _load_hf(source["path"], source.get("split") or "train", imagefolder=False)
        column = next(c for c, f in dataset.features.items() if type(f).__name__ == "Image")
        return [dataset[int(hit.extra["source_row"])][column].convert("RGB") for hit in hits]
    raise ValueError(f"{index_dir} does not record where its images are ({MANIFEST}); rebuild it with graft index")


def _sensor_for(array: np.ndarray) -> str:
    from graft_hf.modeling import SENSOR_PRESETS

    for name, preset in SENSOR_PRESETS.items():
        if preset["band_names"] and len(preset["band_names"]) == array.shape[0]:
            return name
    raise ValueError(f"cannot render a {array.shape[0]}-band raster as RGB; no sensor preset has that many bands")
