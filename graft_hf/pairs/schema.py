"""The pair shard schema: one parquet row per satellite tile with its ground photos.

This module is the single source of truth for the shard layout shared by the pair builder (which writes it) and
the training loader (which reads it). It exposes the same schema twice:

* :func:`pairs_features` -- the :class:`datasets.Features` (``image`` is a ``datasets.Image``), used by
  ``load_dataset`` and written into the dataset card;
* :func:`pairs_arrow_schema` -- the :class:`pyarrow.Schema` derived from those features, carrying the
  ``huggingface`` metadata key so ``datasets`` decodes ``image`` as an image even without a card.

Columns (see ``/work/notes/COMMON.md``):

==================  ===============================================================================
tile_id             string, unique per build (``"<sensor>-<centre photo id>"``)
image               ``datasets.Image``: the RGB crop (``crop_size x crop_size``, PNG bytes)
bands               binary or null: the raw multi-band crop as ``.npy`` bytes, shape ``(channels, H, W)``
band_names          list<string>: names of the ``bands`` channels (``["red", "green", "blue", "nir"]``)
crs                 string: ``"EPSG:xxxx"`` or WKT
transform           list<float64>: the crop's affine ``a, b, c, d, e, f`` (rasterio order): the stored grid
gsd                 float64: ground sample distance of the stored grid, metres per pixel
source_gsd          float64 or null: pixel size of the source scene the crop was cut (and warped) from
sensor              string: ``"naip"`` or ``"sentinel2"``
acquisition_date    string: ISO 8601 date of the source scene
center_lat/lon      float64: WGS84 centre of the crop
raster              string: source path or href of the scene
photos              list<struct>: the tile's ground photos, see :data:`PHOTO_FIELDS`
==================  ===============================================================================

Photo ``row``/``col`` are continuous crop pixel coordinates: ``(0, 0)`` is the top-left corner of the top-left
pixel and pixel centres sit at ``+0.5``. A photo's ``image`` is a ``datasets.Image`` (``struct<bytes, path>``, the
encoded photo in ``bytes``); shards written before it was typed hold the bytes as plain ``binary``, and every
reader takes both through :func:`photo_image_bytes`. Write rows with :func:`pairs_table`, which accepts a photo
``image`` as raw bytes.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import datasets

__all__ = [
    "COORDINATE_COLUMNS",
    "PHOTO_FIELDS",
    "TILE_COLUMNS",
    "decode_bands",
    "encode_bands",
    "pairs_arrow_schema",
    "pairs_features",
    "pairs_table",
    "photo_image_bytes",
]

#: Field names of one element of the ``photos`` list, in schema order.
PHOTO_FIELDS: tuple[str, ...] = (
    "photo_id",
    "lat",
    "lon",
    "row",
    "col",
    "time",
    "license",
    "owner",
    "text",
    "image",
    "url",
    "embedding",
    "text_embedding",
)

#: Column names recognised as latitude and longitude in any table graft-hf reads (photo tables, pair shards,
#: image datasets, indexes), most specific first. The one list; readers take the first name a table has.
COORDINATE_COLUMNS: dict[str, tuple[str, ...]] = {
    "lat": ("lat", "center_lat", "latitude"),
    "lon": ("lon", "center_lon", "lng", "long", "longitude"),
}

#: Top-level column names, in schema order.
TILE_COLUMNS: tuple[str, ...] = (
    "tile_id",
    "image",
    "bands",
    "band_names",
    "crs",
    "transform",
    "gsd",
    "source_gsd",
    "sensor",
    "acquisition_date",
    "center_lat",
    "center_lon",
    "raster",
    "photos",
)


@lru_cache(maxsize=1)
def pairs_features() -> datasets.Features:
    """Return the :class:`datasets.Features` of a pair shard.

    Returns:
        The features; ``image`` decodes to a ``PIL.Image`` and ``photos`` to a list of dicts.
    """
    from datasets import Features, Image, List, Value

    photo = {
        "photo_id": Value("string"),
        "lat": Value("float64"),
        "lon": Value("float64"),
        "row": Value("float32"),
        "col": Value("float32"),
        "time": Value("string"),
        "license": Value("string"),
        "owner": Value("string"),
        "text": Value("string"),
        "image": Image(),
        "url": Value("string"),
        "embedding": List(Value("float16")),
        "text_embedding": List(Value("float16")),
    }
    features = Features(
        {
            "tile_id": Value("string"),
            "image": Image(),
            "bands": Value("binary"),
            "band_names": List(Value("string")),
            "crs": Value("string"),
            "transform": List(Value("float64")),
            "gsd": Value("float64"),
            "source_gsd": Value("float64"),
            "sensor": Value("string"),
            "acquisition_date": Value("string"),
            "center_lat": Value("float64"),
            "center_lon": Value("float64"),
            "raster": Value("string"),
            "photos": List(photo),
        }
    )
    assert tuple(features) == TILE_COLUMNS and tuple(photo) == PHOTO_FIELDS
    return features


@lru_cache(maxsize=1)
def pairs_arrow_schema() -> pa.Schema:
    """Return the :class:`pyarrow.Schema` of a pair shard, with the ``huggingface`` features metadata.

    Returns:
        The schema every shard is written with; ``image`` is ``struct<bytes: binary, path: string>``.
    """
    return pairs_features().arrow_schema


def photo_image_bytes(value: object) -> bytes | None:
    """The encoded bytes of a photo's ``image`` as any reader gets it.

    Args:
        value: ``{"bytes": ..., "path": ...}`` (the ``Image`` feature undecoded), raw ``bytes`` (shards written
            before the photo image was typed), or ``None``.

    Returns:
        The bytes, or ``None`` when the photo has none.
    """
    if isinstance(value, dict):
        value = value.get("bytes")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value) if len(value) else None
    return None


def _typed_photo(photo: dict | None) -> dict | None:
    if photo is None or not isinstance(photo.get("image"), (bytes, bytearray)):
        return photo
    return {**photo, "image": {"bytes": bytes(photo["image"]), "path": None}}


def pairs_table(rows: list[dict]) -> pa.Table:
    """The Arrow table of shard rows in the pairs schema.

    Args:
        rows: One dict per tile with the :data:`TILE_COLUMNS` (missing ones are null); a photo's ``image`` may be
            raw encoded bytes or an ``Image`` dict.

    Returns:
        The table, with the ``huggingface`` features metadata.
    """
    typed = [{**row, "photos": [_typed_photo(p) for p in row["photos"]]} if row.get("photos") else row for row in rows]
    return pa.Table.from_pylist(typed, schema=pairs_arrow_schema())


def encode_bands(bands: np.ndarray) -> bytes:
    """Serialise a raw multi-band crop as ``.npy`` bytes (the ``bands`` column).

    Args:
        bands: Array of shape ``(channels, height, width)``, any numeric dtype.

    Returns:
        The bytes of ``numpy.save`` (no pickle).
    """
    if bands.ndim != 3:
        raise ValueError(f"bands must have shape (channels, height, width), got {bands.shape}")
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(bands), allow_pickle=False)
    return buffer.getvalue()


def decode_bands(data: bytes) -> np.ndarray:
    """Inverse of :func:`encode_bands`.

    Args:
        data: ``.npy`` bytes from the ``bands`` column.

    Returns:
        Array of shape ``(channels, height, width)``.
    """
    return np.load(io.BytesIO(data), allow_pickle=False)
