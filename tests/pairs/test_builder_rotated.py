"""A rotated raster (affine with rotation terms): crops, photo pixel positions and centres stay exact."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.data import SHARED_DATA

NAIP = SHARED_DATA / "naip-nd"
RASTER = NAIP / "m_4709963_se_14_1_20200831.tif"
SIZE, CROP, FOOTPRINT = 400, 64, 32


def _rotated_raster(path: Path):
    """Real NAIP pixels written with a 30 degree rotated 5 m grid (EPSG:26914)."""
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    with rasterio.open(RASTER) as src:
        pixels = src.read([1, 2, 3], window=Window(100, 100, SIZE, SIZE))
        crs = src.crs
    transform = Affine.translation(487000.0, 5208500.0) @ Affine.rotation(30.0) @ Affine.scale(5.0, -5.0)
    profile = {"driver": "GTiff", "width": SIZE, "height": SIZE, "count": 3, "dtype": "uint8", "crs": crs}
    with rasterio.open(path, "w", transform=transform, **profile) as dst:
        dst.write(pixels)
    return transform, pixels


def _photos(path: Path, transform) -> None:
    """Photos at chosen pixels of the rotated raster (well inside, so every crop is mostly valid)."""
    from rasterio.crs import CRS
    from rasterio.warp import transform as warp

    rng = np.random.default_rng(3)
    cols, rows = rng.uniform(60, SIZE - 60, 40), rng.uniform(60, SIZE - 60, 40)
    xs, ys = transform @ (cols, rows)
    lons, lats = warp(CRS.from_epsg(26914), CRS.from_epsg(4326), xs.tolist(), ys.tolist())
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["photo_id", "lat", "lon"])
        writer.writerows([(f"p{i}", repr(lat), repr(lon)) for i, (lon, lat) in enumerate(zip(lons, lats, strict=True))])


def test_rotated_raster_crops_and_photo_positions(tmp_path: Path) -> None:
    if not RASTER.is_file():
        pytest.skip(f"real NAIP raster not found at {RASTER} (../shared/data/naip-nd)")
    from affine import Affine
    from datasets import load_dataset
    from rasterio.crs import CRS
    from rasterio.warp import transform as warp

    from graft_hf.pairs.builder import build_pairs
    from graft_hf.pairs.config import PairsBuildConfig

    transform, pixels = _rotated_raster(tmp_path / "rotated_20200831.tif")
    _photos(tmp_path / "photos.csv", transform)
    config = PairsBuildConfig(
        photos=str(tmp_path / "photos.csv"),
        output_dir=str(tmp_path / "out"),
        rasters=(str(tmp_path / "rotated_20200831.tif"),),
        crop_size=CROP,
        footprint_size=FOOTPRINT,
        progress=False,
    )
    report = build_pairs(config)
    assert report["photos"]["kept"] == 40 and report["tiles"]["dropped"] == {}
    rows = list(load_dataset(str(tmp_path / "out"), split="train", streaming=True))
    assert len(rows) == report["tiles"]["kept"] > 3
    for row in rows:
        crop = Affine(*row["transform"])
        assert row["gsd"] == pytest.approx(5.0) and crop.b != 0, "the crop keeps the raster's rotation"
        # Photos' crop pixel positions map back to their geotags through the stored crop transform.
        cols = np.array([p["col"] for p in row["photos"]], dtype=np.float64)
        rws = np.array([p["row"] for p in row["photos"]], dtype=np.float64)
        xs, ys = crop @ (cols, rws)
        lon, lat = warp(CRS.from_epsg(26914), CRS.from_epsg(4326), xs.tolist(), ys.tolist())
        np.testing.assert_allclose(lon, [p["lon"] for p in row["photos"]], atol=2e-7)
        np.testing.assert_allclose(lat, [p["lat"] for p in row["photos"]], atol=2e-7)
        assert CROP // 2 <= cols[0] < CROP // 2 + 1 and CROP // 2 <= rws[0] < CROP // 2 + 1
        # The crop's centre and pixels: the raster's window at the crop's offset.
        x, y = crop @ (CROP / 2, CROP / 2)
        centre_lon, centre_lat = warp(CRS.from_epsg(26914), CRS.from_epsg(4326), [x], [y])
        assert (row["center_lon"], row["center_lat"]) == pytest.approx((centre_lon[0], centre_lat[0]), abs=1e-9)
        col_off, row_off = (round(v) for v in ~transform @ (crop.c, crop.f))
        expected = pixels[:, row_off : row_off + CROP, col_off : col_off + CROP]
        np.testing.assert_array_equal(np.asarray(row["image"]), np.moveaxis(expected, 0, -1))
