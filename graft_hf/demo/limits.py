"""Input limits of the demo and the checks that enforce them with messages a visitor can act on.

A public Space takes uploads and text from anyone, so every input is checked before it reaches the model: the
upload's size on disk, its pixel count, band count and pixel type (read from the header, before any pixel is
decoded: a small compressed file can declare gigabytes), that it decodes at all, the length and number of text
queries and the number of results asked for. A violation raises
:class:`DemoInputError` (a `ValueError`) naming the limit and its value; the app shows it as a `gr.Error`.

(No ``from __future__ import annotations`` here: :class:`DemoLimits` is a strict config dataclass, checked against
its runtime annotations.)
"""

import math
import os
from dataclasses import dataclass
from pathlib import Path

import rasterio
from PIL import Image, UnidentifiedImageError
from rasterio.errors import RasterioError

from graft_hf.config import config_dataclass, require
from graft_hf.modeling.image_processing_graft import SUPPORTED_DTYPE_NAMES

__all__ = [
    "IMAGE_SUFFIXES",
    "RASTER_SUFFIXES",
    "DemoInputError",
    "DemoLimits",
    "UploadInfo",
    "check_k",
    "check_query",
    "check_upload",
    "parse_queries",
]

#: File endings read with rasterio (georeferenced rasters); anything else is opened with Pillow.
RASTER_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class DemoInputError(ValueError):
    """A visitor's input broke a limit or could not be read; the message says which and what to do."""


@config_dataclass
class DemoLimits:
    """What one request may ask of the demo (the input limits of `graft demo` and the Space).

    Attributes:
        max_upload_bytes: Largest uploaded file, in bytes.
        max_pixels: Largest uploaded image to segment, in pixels (width x height).
        max_map_pixels: Largest GeoTIFF to map, in pixels.
        max_map_windows: Most model tiles one region map may run (bounds its CPU time).
        max_bands: Most bands (channels) of an upload.
        max_query_chars: Longest text query, in characters.
        max_queries: Most comma-separated queries in one segmentation.
        k_min: Fewest retrieval results.
        k_max: Most retrieval results (also capped by the gallery size).
        k_default: Retrieval results shown by default.
        query_cache_size: Query embeddings kept in the LRU cache.
    """

    max_upload_bytes: int = 20_971_520  # 20 MiB
    max_pixels: int = 4_194_304  # 2048 x 2048
    max_map_pixels: int = 16_777_216  # 4096 x 4096
    max_map_windows: int = 4096
    max_bands: int = 16
    max_query_chars: int = 200
    max_queries: int = 8
    k_min: int = 1
    k_max: int = 24
    k_default: int = 8
    query_cache_size: int = 512

    def validate_positive(self) -> None:
        for name in (
            "max_upload_bytes", "max_pixels", "max_map_pixels", "max_map_windows", "max_bands", "max_query_chars",
            "max_queries", "k_min", "query_cache_size",
        ):  # fmt: skip
            value = getattr(self, name)
            require(value > 0, name, f"DemoLimits.{name} must be positive, got {value}")

    def validate_k_range(self) -> None:
        require(
            self.k_min <= self.k_default <= self.k_max,
            "k_default",
            f"DemoLimits needs k_min <= k_default <= k_max, got {self.k_min}, {self.k_default}, {self.k_max}",
        )


@dataclass(frozen=True)
class UploadInfo:
    """An uploaded file that passed the checks.

    Attributes:
        path: Where it lies.
        is_raster: Read with rasterio (a GeoTIFF) rather than Pillow.
        width: Pixels across.
        height: Pixels down.
        bands: Band (channel) count.
        has_crs: Whether the raster is georeferenced (always False for ordinary images).
        dtype: Pixel type of a raster (``uint8``, ``uint16``, ...); ``None`` for ordinary images.
    """

    path: str
    is_raster: bool
    width: int
    height: int
    bands: int
    has_crs: bool
    dtype: str | None = None


def parse_queries(text: str | None, limits: DemoLimits, max_queries: int | None = None) -> list[str]:
    """Splits comma-separated queries and checks them against the limits.

    Args:
        text: What the visitor typed, e.g. `"water, road, trees"`.
        limits: The demo's limits.
        max_queries: Most queries allowed here (default `limits.max_queries`).

    Returns:
        The stripped, non-empty queries in order.

    Raises:
        DemoInputError: No query, too many, a repeated one or one longer than `limits.max_query_chars`.
    """
    max_queries = limits.max_queries if max_queries is None else max_queries
    if text is not None and not isinstance(text, str):
        raise DemoInputError(f"the query must be text, got {type(text).__name__}")
    if text and len(text) > limits.max_query_chars * max_queries + max_queries:
        raise DemoInputError(
            f"the query text is {len(text)} characters long; the limit is max_query_chars={limits.max_query_chars} "
            f"per query and max_queries={max_queries}"
        )
    queries = [part.strip() for part in (text or "").split(",")]
    queries = [q for q in queries if q]
    if not queries:
        raise DemoInputError("type a query first, e.g. 'a river' (separate several with commas)")
    if len(queries) > max_queries:
        raise DemoInputError(
            f"{len(queries)} queries given; the limit is max_queries={max_queries}: remove some of them"
        )
    for query in queries:
        if len(query) > limits.max_query_chars:
            raise DemoInputError(
                f"the query {query[:40]!r}... is {len(query)} characters long; the limit is "
                f"max_query_chars={limits.max_query_chars}: shorten it"
            )
    repeated = sorted({q for q in queries if queries.count(q) > 1})
    if repeated:
        raise DemoInputError(f"the queries {repeated} repeat; give each query once")
    return queries


def check_query(text: str | None, limits: DemoLimits) -> str:
    """Checks one free-text query (commas allowed) against `limits.max_query_chars`.

    Raises:
        DemoInputError: Empty, not text, or longer than the limit.
    """
    if text is not None and not isinstance(text, str):
        raise DemoInputError(f"the query must be text, got {type(text).__name__}")
    query = (text or "").strip()
    if not query:
        raise DemoInputError("type a query first, e.g. 'a river crossing farmland'")
    if len(query) > limits.max_query_chars:
        raise DemoInputError(
            f"the query is {len(query)} characters long; the limit is max_query_chars={limits.max_query_chars}: "
            "shorten it"
        )
    return query


def check_k(k: float | int | None, limits: DemoLimits, gallery_size: int) -> int:
    """Validates the number of retrieval results.

    Raises:
        DemoInputError: `k` is not a whole number in `[k_min, min(k_max, gallery_size)]`.
    """
    upper = min(limits.k_max, gallery_size)
    whole = isinstance(k, int | float) and not isinstance(k, bool) and math.isfinite(k) and float(k) == int(k)
    if not whole:
        raise DemoInputError(f"the number of results must be a whole number between {limits.k_min} and {upper}")
    k = int(k)
    if not limits.k_min <= k <= upper:
        raise DemoInputError(
            f"k={k} results asked for; the range is k_min={limits.k_min} to "
            f"{'k_max' if upper == limits.k_max else 'the gallery size'}={upper}"
        )
    return k


def _file_path(upload: object) -> str:
    """The path of a Gradio upload (a path string, a `gradio.FileData`-like object or a dict with a path)."""
    if isinstance(upload, str | os.PathLike):
        return os.fspath(upload)
    if isinstance(upload, dict) and isinstance(upload.get("path"), str):
        return upload["path"]
    path = getattr(upload, "path", None) or getattr(upload, "name", None)
    if isinstance(path, str):
        return path
    raise DemoInputError(f"unsupported upload ({type(upload).__name__}); upload a PNG, JPEG or GeoTIFF file")


def check_upload(
    upload: object, limits: DemoLimits, *, max_pixels: int | None = None, raster_only: bool = False
) -> UploadInfo:
    """Checks an uploaded file's size, format and pixel count without decoding its pixels.

    Args:
        upload: The upload as Gradio passes it (a file path for `gr.File(type="filepath")`).
        limits: The demo's limits.
        max_pixels: Pixel limit for this use (default `limits.max_pixels`).
        raster_only: Accept GeoTIFFs only (region maps need a georeferenced raster).

    Returns:
        What was found in the file's header.

    Raises:
        DemoInputError: Nothing uploaded, too large, an unsupported or corrupt file, too many pixels or bands, an
            unsupported pixel type, or (with `raster_only`) not a georeferenced GeoTIFF.
    """
    path = _existing_upload(upload, limits, raster_only)
    max_pixels = limits.max_pixels if max_pixels is None else max_pixels
    limit_name = "max_pixels" if max_pixels == limits.max_pixels else "max_map_pixels"
    info = _header(path, raster_only)
    pixels = info.width * info.height
    if pixels > max_pixels:
        raise DemoInputError(
            f"the image is {info.width} x {info.height} = {pixels:,} pixels; the limit is {limit_name}={max_pixels:,}: "
            "upload a smaller crop"
        )
    if info.bands > limits.max_bands:
        raise DemoInputError(
            f"the image has {info.bands} bands; the limit is max_bands={limits.max_bands}: upload the bands of the "
            "model's sensor (or an RGB image)"
        )
    if info.dtype is not None and info.dtype not in SUPPORTED_DTYPE_NAMES:
        raise DemoInputError(
            f"the raster holds {info.dtype} pixels; upload one of {', '.join(SUPPORTED_DTYPE_NAMES)} (what the image "
            "processor reads)"
        )
    if raster_only and not info.has_crs:
        raise DemoInputError(
            f"{Path(path).name!r} has no coordinate reference system, so its map cannot be georeferenced; upload a "
            "GeoTIFF with a CRS"
        )
    return info


def _existing_upload(upload: object, limits: DemoLimits, raster_only: bool) -> str:
    """The path of an uploaded file that exists, is not empty and is within `limits.max_upload_bytes`."""
    if upload is None or upload == "":
        raise DemoInputError(
            "upload a file first (PNG, JPEG or GeoTIFF)" if not raster_only else "upload a GeoTIFF first"
        )
    path = _file_path(upload)
    if not os.path.isfile(path):
        raise DemoInputError(f"the upload {Path(path).name!r} is missing on the server; upload it again")
    size = os.path.getsize(path)
    if size > limits.max_upload_bytes:
        raise DemoInputError(
            f"the file is {size / 2**20:.2f} MiB; the limit is max_upload_bytes={limits.max_upload_bytes} "
            f"({limits.max_upload_bytes / 2**20:.2f} MiB): upload a smaller crop"
        )
    if size == 0:
        raise DemoInputError(f"the file {Path(path).name!r} is empty; upload a PNG, JPEG or GeoTIFF")
    return path


def _header(path: str, raster_only: bool) -> UploadInfo:
    """What the file's header says (GeoTIFFs through rasterio, images through Pillow), no pixel decoded."""
    suffix = Path(path).suffix.lower()
    if suffix in RASTER_SUFFIXES:
        return _raster_header(path)
    if raster_only:
        raise DemoInputError(f"a region map needs a georeferenced GeoTIFF (.tif/.tiff), got {Path(path).name!r}")
    if suffix in IMAGE_SUFFIXES:
        return _image_header(path)
    raise DemoInputError(
        f"unsupported file type {suffix or '(none)'!r}; upload one of {', '.join(IMAGE_SUFFIXES + RASTER_SUFFIXES)}"
    )


def _raster_header(path: str) -> UploadInfo:
    try:
        with rasterio.open(path) as src:
            dtype = src.dtypes[0] if len(set(src.dtypes)) == 1 else "mixed"
            info = UploadInfo(path, True, src.width, src.height, src.count, src.crs is not None, dtype)
    except RasterioError as error:
        raise DemoInputError(
            f"cannot read {Path(path).name!r} as a GeoTIFF ({str(error).splitlines()[0][:160]}); is it corrupt?"
        ) from error
    if info.width == 0 or info.height == 0 or info.bands == 0:
        raise DemoInputError(f"{Path(path).name!r} is empty ({info.width} x {info.height} px, {info.bands} bands)")
    return info


def _image_header(path: str) -> UploadInfo:
    try:
        with Image.open(path) as image:  # reads the header only; pixels are decoded on load()
            width, height = image.size
            bands = len(image.getbands())
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
        raise DemoInputError(
            f"cannot decode {Path(path).name!r} as an image ({type(error).__name__}); "
            "is it a corrupt or unsupported file?"
        ) from error
    return UploadInfo(path, False, int(width), int(height), bands, False)
