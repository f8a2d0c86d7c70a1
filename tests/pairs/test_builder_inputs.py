"""Photo-table inputs carried through a build: Parquet bytes, embeddings, timestamps, URLs, column mapping."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.data import SHARED_DATA

NAIP = SHARED_DATA / "naip-nd"
RASTER = NAIP / "m_4709963_se_14_1_20200831.tif"


def _jpeg(value: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (value, 0, 0)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_parquet_photos_with_bytes_embeddings_and_urls(tmp_path: Path) -> None:
    if not RASTER.is_file():
        pytest.skip(f"real NAIP raster not found at {RASTER} (../shared/data/naip-nd)")
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import load_dataset
    from rasterio.crs import CRS
    from rasterio.warp import transform

    from graft_hf.pairs.builder import build_pairs
    from graft_hf.pairs.config import PairsBuildConfig, PhotoColumns

    # Four photos 2 km apart (separate tiles): table bytes, a file:// URL, a broken URL, nothing.
    xs, ys = [486500.0, 488500.0, 486500.0, 488500.0], [5206500.0, 5206500.0, 5208500.0, 5208500.0]
    lons, lats = transform(CRS.from_epsg(26914), CRS.from_epsg(4326), xs, ys)
    (tmp_path / "p1.jpg").write_bytes(_jpeg(10))
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(4, 8)).astype(np.float32)
    table = pa.table(
        {
            "pid": ["a", "b", "c", "d"],
            "latitude": lats,
            "longitude": lons,
            "taken": pa.array([datetime(2019, 5, d, 12, tzinfo=UTC) for d in (1, 2, 3, 4)]),
            "img": pa.array([_jpeg(0), None, None, None], type=pa.binary()),
            "url": [None, (tmp_path / "p1.jpg").as_uri(), (tmp_path / "missing.jpg").as_uri(), None],
            "emb": pa.array(embeddings.tolist(), type=pa.list_(pa.float32())),
            "licence": ["CC0-1.0"] * 4,
        }
    )
    pq.write_table(table, tmp_path / "photos.parquet")
    config = PairsBuildConfig(
        photos=str(tmp_path / "photos.parquet"),
        output_dir=str(tmp_path / "out"),
        rasters=(str(RASTER),),
        crop_size=32,
        footprint_size=16,
        download_photo_urls=True,
        columns=PhotoColumns(photo_id="pid", time="taken", image="img", embedding="emb"),
        progress=False,
    )
    report = build_pairs(config)
    assert report["photo_download_failed"] == 1 and report["photos"]["kept"] == 4 and report["tiles"]["kept"] == 4

    rows = {r["photos"][0]["photo_id"]: r["photos"][0] for r in load_dataset(str(tmp_path / "out"), split="train")}
    assert rows["a"]["image"] == _jpeg(0) and rows["b"]["image"] == _jpeg(10)
    assert rows["c"]["image"] is None and rows["c"]["url"].endswith("missing.jpg") and rows["d"]["image"] is None
    assert rows["a"]["time"] == "2019-05-01T12:00:00+00:00" and rows["a"]["license"] == "CC0-1.0"
    for i, key in enumerate("abcd"):
        np.testing.assert_array_equal(np.float16(rows[key]["embedding"]), embeddings[i].astype(np.float16))
