"""Crops on the output grid: the warp of the real 5 m NAIP rasters to NAIP's 1 m training GSD keeps the geometry
(a pond, a road and a photo land where the source says), aligned sources are copied pixel for pixel, and a corrupt
raster's read error names the file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.corrupt import corrupt_copy
from tests.helpers.data import SHARED_DATA

RASTER = SHARED_DATA / "naip-nd" / "m_4709963_se_14_1_20200831.tif"
# A prairie pothole (dark in the near infrared) and the east-west gravel road south of it, in source pixels (5 m).
POND_BOX = (slice(235, 300), slice(495, 575))  # rows, cols holding the whole pond
ROAD_ROWS, ROAD_COLS = slice(590, 660), slice(100, 800)
WATER_NIR = 40  # NIR digital numbers below this are open water here (land is 60-200)


def _scene():
    if not RASTER.is_file():
        pytest.skip(f"real NAIP raster not found at {RASTER} (../shared/data/naip-nd)")
    from graft_hf.pairs.catalog import load_catalog

    return load_catalog(None, [str(RASTER)], "naip")[0]


def _source_pond(scene) -> tuple[float, float, float]:
    """Centroid ``(x, y)`` in metres and area in m^2 of the pond, from the 5 m source."""
    import rasterio

    with rasterio.open(scene.href) as src:
        nir = src.read(4)
    water = np.zeros(nir.shape, dtype=bool)
    water[POND_BOX] = nir[POND_BOX] < WATER_NIR
    rows, cols = np.nonzero(water)
    assert 1000 < len(rows) and not water[POND_BOX][[0, -1]].any(), "the box must hold the whole pond"
    x, y = scene.transform @ (cols.mean() + 0.5, rows.mean() + 0.5)
    return float(x), float(y), len(rows) * scene.gsd**2


def test_warp_5m_to_1m_puts_a_pond_and_a_road_where_the_source_has_them() -> None:
    import rasterio

    from graft_hf.pairs.raster import RasterReader, output_grid, resolve_resampling

    scene = _scene()
    reader = RasterReader()
    x, y, area = _source_pond(scene)
    grid = output_grid(scene, scene.crs, x, y, 1.0, 448)
    assert resolve_resampling("auto", scene.gsd, grid.gsd).name == "bilinear"  # 5 m -> 1 m is upsampling
    data, valid = reader.read_grid(scene, [1, 2, 3, 4], grid, resolve_resampling("auto", scene.gsd, grid.gsd))
    assert data.shape == (4, 448, 448) and data.dtype == np.uint8 and valid.all()

    # The pond in the 1 m crop (inside the same ground box): same place (centroid within a metre) and same area
    # (within 3%) as in the source, centred in the crop since the grid is centred on the source centroid.
    to_crop = ~grid.transform @ scene.transform  # source pixel -> crop pixel
    col0, row0 = (round(v) for v in to_crop @ (POND_BOX[1].start, POND_BOX[0].start))
    col1, row1 = (round(v) for v in to_crop @ (POND_BOX[1].stop, POND_BOX[0].stop))
    near = np.zeros((448, 448), dtype=bool)
    near[row0:row1, col0:col1] = True
    rows, cols = np.nonzero((data[3] < WATER_NIR) & near)
    wx, wy = grid.transform @ (cols.mean() + 0.5, rows.mean() + 0.5)
    assert np.hypot(wx - x, wy - y) < 1.0
    assert len(rows) * grid.gsd**2 == pytest.approx(area, rel=0.03)
    assert abs(cols.mean() + 0.5 - 224.5) < 1.5 and abs(rows.mean() + 0.5 - 224.5) < 1.5

    # The road: its northing from the source's brightest row; the 1 m crop centred on it shows it in its centre rows.
    with rasterio.open(scene.href) as src:
        bright = src.read([1, 2, 3]).mean(axis=0)
    road_row = ROAD_ROWS.start + int(np.argmax(bright[ROAD_ROWS, ROAD_COLS].mean(axis=1)))
    road_x, road_y = scene.transform @ (450.0, road_row + 0.5)
    grid = output_grid(scene, scene.crs, road_x, road_y, 1.0, 448)
    data, _ = reader.read_grid(scene, [1, 2, 3], grid, resolve_resampling("auto", scene.gsd, grid.gsd))
    profile = data[:, 224 - 40 : 224 + 40].mean(axis=(0, 2))  # mean brightness of the rows within 40 m
    assert abs(int(np.argmax(profile)) - 40) <= 2, "the road's centre line is within 2 m of the source's"
    assert profile.max() > 1.15 * np.median(profile), "a bright line, not noise"
    reader.close()


def test_photo_pixel_position_in_a_built_tile(tmp_path: Path) -> None:
    """A photo geotagged on the pond lands on pond pixels of the stored 1 m crop, at the position its geotag gives."""
    from datasets import load_dataset
    from rasterio.crs import CRS
    from rasterio.warp import transform

    from graft_hf.pairs.builder import build_pairs
    from graft_hf.pairs.config import PairsBuildConfig
    from graft_hf.pairs.schema import decode_bands

    scene = _scene()
    x, y, _ = _source_pond(scene)
    points = [(x, y), (x + 37.3, y - 21.9)]  # the pond's centre, and a photo elsewhere in the footprint
    lons, lats = transform(CRS.from_epsg(26914), CRS.from_epsg(4326), *zip(*points, strict=True))
    with (tmp_path / "photos.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["photo_id", "lat", "lon"])
        writer.writerows([(name, repr(lat), repr(lon)) for name, lon, lat in zip("ab", lons, lats, strict=True)])
    config = PairsBuildConfig(
        photos=str(tmp_path / "photos.csv"),
        output_dir=str(tmp_path / "out"),
        rasters=(str(RASTER),),
        include_bands=True,
        seed=1,
        progress=False,
    )
    report = build_pairs(config)
    assert report["tiles"]["kept"] == 1
    (row,) = load_dataset(str(tmp_path / "out"), split="train", streaming=True)
    left, top = row["transform"][2], row["transform"][5]
    nir = decode_bands(row["bands"])[3]
    for photo, (px, py) in zip(sorted(row["photos"], key=lambda p: p["photo_id"]), points, strict=True):
        # Crop pixel coordinates are metres from the crop's top-left corner at 1 m/px.
        assert photo["col"] == pytest.approx(px - left, abs=1e-3) and photo["row"] == pytest.approx(top - py, abs=1e-3)
    pond = next(p for p in row["photos"] if p["photo_id"] == "a")
    assert nir[int(pond["row"]), int(pond["col"])] < WATER_NIR, "the pond photo sits on water"
    assert row["tile_id"] in ("naip-a", "naip-b") and row["gsd"] == 1.0 and row["source_gsd"] == 5.0


def test_output_grid_anchoring_and_centre_pixel() -> None:
    from graft_hf.pairs.raster import output_grid

    scene = _scene()
    rng = np.random.default_rng(0)
    for x, y in zip(rng.uniform(487000, 489000, 20), rng.uniform(5206000, 5208000, 20), strict=True):
        for gsd, size in ((1.0, 448), (0.6, 224), (10.0, 33)):
            grid = output_grid(scene, scene.crs, x, y, gsd, size)
            col, row = ~grid.transform @ (x, y)
            assert size // 2 <= col < size // 2 + 1 and size // 2 <= row < size // 2 + 1
            # Anchored on the source grid: pixel edges at the source origin plus whole output pixels.
            offset = (grid.transform.c - scene.transform.c) / gsd
            assert offset == pytest.approx(round(offset), abs=1e-6)
        # Another CRS: anchored at multiples of the pixel size.
        grid = output_grid(scene, "EPSG:32614", x, y, 1.0, 64)
        assert grid.transform.c == round(grid.transform.c) and grid.crs == "EPSG:32614"


def test_aligned_grid_is_a_pixel_copy_and_resampling_choice() -> None:
    import rasterio
    from rasterio.windows import Window

    from graft_hf.pairs.raster import Grid, RasterReader, crop_transform, resolve_resampling

    scene = _scene()
    window = Window(300, 200, 64, 64)
    grid = Grid(scene.crs, crop_transform(scene, window), 64)  # the source's own 5 m grid
    reader = RasterReader()
    data, valid = reader.read_grid(scene, [1, 2, 3], grid, resolve_resampling("cubic", 5.0, 5.0))
    reader.close()
    with rasterio.open(scene.href) as src:
        np.testing.assert_array_equal(data, src.read([1, 2, 3], window=window))
    assert valid.all()
    assert resolve_resampling("auto", 0.6, 1.0).name == "average"  # 0.6 m NAIP to 1 m: downsampling
    assert resolve_resampling("auto", 10.0, 10.0).name == "bilinear"
    assert resolve_resampling("lanczos", 5.0, 1.0).name == "lanczos"


def test_corrupt_raster_read_error_names_the_file(tmp_path: Path) -> None:
    """GDAL says only "Read failed. See previous exception for details."; the reader names the file."""
    from graft_hf.pairs.raster import RasterReader, RasterReadError, output_grid

    scene = _scene()
    corrupt = corrupt_copy(RASTER, tmp_path / "corrupt_20200831.tif")
    bad = type(scene)(**{**scene.__dict__, "href": str(corrupt)})
    for read_mode in ("window", "full"):
        reader = RasterReader(read_mode)
        grid = output_grid(bad, bad.crs, 488000.0, 5207000.0, 1.0, 64)
        with pytest.raises(RasterReadError, match=r"cannot read raster .*corrupt_20200831\.tif: Read failed"):
            reader.read_grid(bad, [1, 2, 3], grid)
        reader.close()


def test_downsampling_is_an_area_average_equal_to_warping_the_whole_raster(tmp_path: Path) -> None:
    """0.5 m pixels to 1 m (as 0.6 m NAIP to its 1 m training GSD): each output pixel is the mean of the 2 x 2 source
    pixels it covers, and reading only the crop's part of the raster gives GDAL's whole-raster warp exactly."""
    import rasterio
    from affine import Affine
    from rasterio.warp import reproject
    from rasterio.windows import Window

    from graft_hf.pairs.catalog import load_catalog
    from graft_hf.pairs.raster import RasterReader, output_grid, resolve_resampling

    _scene()
    with rasterio.open(RASTER) as src:
        pixels = src.read([1, 2, 3], window=Window(200, 200, 300, 300))
        crs = src.crs
    fine = tmp_path / "fine_20200831.tif"
    transform = Affine(0.5, 0.0, 487000.0, 0.0, -0.5, 5208000.0)
    with rasterio.open(fine, "w", driver="GTiff", width=300, height=300, count=3, dtype="uint8", crs=crs,
                       transform=transform, tiled=True, blockxsize=64, blockysize=64) as dst:  # fmt: skip
        dst.write(pixels)
    (scene,) = load_catalog(None, [str(fine)], "naip")
    grid = output_grid(scene, scene.crs, 487040.2, 5207940.7, 1.0, 64)
    resampling = resolve_resampling("auto", scene.gsd, grid.gsd)
    assert resampling.name == "average"
    for read_mode in ("window", "full"):
        reader = RasterReader(read_mode)
        data, valid = reader.read_grid(scene, [1, 2, 3], grid, resampling)
        reader.close()
        assert valid.all()
        whole = np.zeros((4, 64, 64), dtype=np.uint8)
        reproject(pixels, whole, src_transform=transform, src_crs=crs, dst_transform=grid.transform, dst_crs=crs,
                  dst_alpha=4, resampling=resampling)  # fmt: skip
        np.testing.assert_array_equal(data, whole[:3])
    col, row = (round(v) for v in ~transform @ (grid.transform.c, grid.transform.f))
    block = pixels[:, row : row + 128, col : col + 128].astype(np.float64)
    means = block.reshape(3, 64, 2, 64, 2).mean(axis=(2, 4))
    assert np.abs(data - means).max() <= 0.5 + 1e-9, "a rounded 2 x 2 mean"
