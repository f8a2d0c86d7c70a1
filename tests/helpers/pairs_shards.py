"""Tiny pair shards for the `graft pairs embed` and teacher tests: photos with and without bytes, text or none."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from graft_hf.pairs.schema import pairs_features, pairs_table

TILES_PER_SHARD = 3


def _png(seed: int, size: int = 20) -> bytes:
    array = np.random.default_rng(seed).integers(0, 255, size=(size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def legacy_photo_bytes_schema() -> pa.Schema:
    """The pairs schema as shards had it before photo images were typed: ``photos.image`` plain ``binary`` (in the
    Arrow type and in the ``huggingface`` features metadata)."""
    from datasets import Features, List, Value

    features = pairs_features()
    photo = dict(features["photos"].feature)
    photo["image"] = Value("binary")
    return Features({**features, "photos": List(photo)}).arrow_schema


def write_shard(path: Path, shard: int, legacy: bool = False) -> None:
    """Tiles with 0-3 photos; shard 0 tile 0 has a corrupt photo and one without bytes.

    With ``legacy``, written with photo images as plain ``binary`` (:func:`legacy_photo_bytes_schema`).
    """
    rows = []
    for t in range(TILES_PER_SHARD):
        photos = []
        for k in range(t + 1 if t < 2 else 0):  # the last tile of each shard has no photo
            image = _png(100 * shard + 10 * t + k)
            if shard == 0 and t == 1 and k == 0:
                image = b"\x89PNG definitely not an image"
            if shard == 0 and t == 1 and k == 1:
                image = None
            photos.append(
                {
                    "photo_id": f"s{shard}t{t}p{k}",
                    "lat": 47.0,
                    "lon": -99.0,
                    "row": 10.0,
                    "col": 20.0,
                    "time": None,
                    "license": None,
                    "owner": None,
                    "text": None if k == 1 else f"a photo of farm number {shard}{t}{k}",
                    "image": image,
                    "url": None,
                    "embedding": None,
                    "text_embedding": None,
                }
            )
        rows.append(
            {
                "tile_id": f"tile-{shard}-{t}",
                "image": {"bytes": _png(t, 32), "path": None},
                "bands": None,
                "band_names": [],
                "crs": "EPSG:26914",
                "transform": [1.0, 0.0, 0.0, 0.0, -1.0, 0.0],
                "gsd": 1.0,
                "sensor": "naip",
                "acquisition_date": "2020-01-01",
                "center_lat": 47.0,
                "center_lon": -99.0,
                "raster": "r.tif",
                "photos": photos,
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two row groups per shard so the batched rewrite crosses a row-group boundary.
    table = pa.Table.from_pylist(rows, schema=legacy_photo_bytes_schema()) if legacy else pairs_table(rows)
    pq.write_table(table, path, row_group_size=2)


def shard_photos(path: Path) -> list[dict]:
    """Every photo record of a shard, tile after tile."""
    return [p for tile in pq.read_table(path).column("photos").to_pylist() for p in tile]
