"""One tile of a build (what `graft_hf.pairs.tiles` does, through `build_pairs`): photo-table inputs and their bytes
(a truncated photo is stored without bytes and counted), crops of a rotated raster on its own grid and warped
north-up, and a corrupt or missing raster skipped and counted (or fatal with `strict_rasters`).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.corrupt import corrupt_copy
from tests.helpers.data import SHARED_DATA
from tests.helpers.make_photos import make_photo_table

NAIP = SHARED_DATA / "naip-nd"
RASTER = NAIP / "m_4709963_se_14_1_20200831.tif"


# ---------------------------------- photo-table inputs: Parquet bytes, embeddings, timestamps, URLs, column mapping
def _jpeg(value: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (value, 0, 0)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _small_build(tmp_path: Path, photos: str, **changes) -> dict:
    """Build 32 px crops (16 px footprints) around the photos of ``tmp_path / photos`` on the 2020 NAIP raster."""
    from graft_hf.pairs.builder import build_pairs
    from graft_hf.pairs.config import PairsBuildConfig

    config = PairsBuildConfig(
        photos=str(tmp_path / photos),
        output_dir=str(tmp_path / "out"),
        rasters=(str(RASTER),),
        crop_size=32,
        footprint_size=16,
        progress=False,
        **changes,
    )
    return build_pairs(config)


def test_parquet_photos_with_bytes_embeddings_and_urls(tmp_path: Path) -> None:
    if not RASTER.is_file():
        pytest.skip(f"real NAIP raster not found at {RASTER} (../shared/data/naip-nd)")
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import load_dataset
    from rasterio.crs import CRS
    from rasterio.warp import transform

    from graft_hf.pairs.config import PhotoColumns

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
    columns = PhotoColumns(photo_id="pid", time="taken", image="img", embedding="emb")
    report = _small_build(tmp_path, "photos.parquet", download_photo_urls=True, columns=columns)
    assert report["photo_download_failed"] == 1 and report["photos"]["kept"] == 4 and report["tiles"]["kept"] == 4

    stream = load_dataset(str(tmp_path / "out"), split="train", streaming=True).decode(False)  # images undecoded
    rows = {r["photos"][0]["photo_id"]: r["photos"][0] for r in stream}
    assert rows["a"]["image"]["bytes"] == _jpeg(0) and rows["b"]["image"]["bytes"] == _jpeg(10)
    assert rows["c"]["image"] is None and rows["c"]["url"].endswith("missing.jpg") and rows["d"]["image"] is None
    assert rows["a"]["time"] == "2019-05-01T12:00:00+00:00" and rows["a"]["license"] == "CC0-1.0"
    for i, key in enumerate("abcd"):
        np.testing.assert_array_equal(np.float16(rows[key]["embedding"]), embeddings[i].astype(np.float16))


# --------------------------------- a rotated raster (rotation terms in the affine): crops, photo positions, centres
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


def _rotated_build(tmp_path: Path, **changes):
    """Build the rotated raster's tiles; ``(raster transform, raster pixels, report, rows)``."""
    if not RASTER.is_file():
        pytest.skip(f"real NAIP raster not found at {RASTER} (../shared/data/naip-nd)")
    from datasets import load_dataset

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
        **changes,
    )
    report = build_pairs(config)
    assert report["photos"]["kept"] == 40 and report["tiles"]["dropped"] == {}
    rows = list(load_dataset(str(tmp_path / "out"), split="train", streaming=True))
    assert len(rows) == report["tiles"]["kept"] > 3
    return transform, pixels, report, rows


def _check_photo_positions(row: dict):
    """Photos' crop pixel positions map back to their geotags through the stored transform; the tile's centre photo
    sits in the centre pixel. Returns the crop transform."""
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.warp import transform as warp

    crop = Affine(*row["transform"])
    cols = np.array([p["col"] for p in row["photos"]], dtype=np.float64)
    rws = np.array([p["row"] for p in row["photos"]], dtype=np.float64)
    lon, lat = warp(CRS.from_epsg(26914), CRS.from_epsg(4326), *(v.tolist() for v in crop @ (cols, rws)))
    np.testing.assert_allclose(lon, [p["lon"] for p in row["photos"]], atol=2e-7)
    np.testing.assert_allclose(lat, [p["lat"] for p in row["photos"]], atol=2e-7)
    centre = [p["photo_id"] for p in row["photos"]].index(row["tile_id"][len("naip-") :])
    assert CROP // 2 <= cols[centre] < CROP // 2 + 1 and CROP // 2 <= rws[centre] < CROP // 2 + 1
    return crop


def test_rotated_raster_native_grid_crops_and_photo_positions(tmp_path: Path) -> None:
    from rasterio.crs import CRS
    from rasterio.warp import transform as warp

    transform, pixels, _, rows = _rotated_build(tmp_path, native_gsd=True)
    for row in rows:
        crop = _check_photo_positions(row)
        assert row["gsd"] == pytest.approx(5.0) and crop.b != 0, "the crop keeps the raster's rotation"
        # The crop's centre and pixels: the raster's window at the crop's offset.
        x, y = crop @ (CROP / 2, CROP / 2)
        centre_lon, centre_lat = warp(CRS.from_epsg(26914), CRS.from_epsg(4326), [x], [y])
        assert (row["center_lon"], row["center_lat"]) == pytest.approx((centre_lon[0], centre_lat[0]), abs=1e-9)
        col_off, row_off = (round(v) for v in ~transform @ (crop.c, crop.f))
        expected = pixels[:, row_off : row_off + CROP, col_off : col_off + CROP]
        np.testing.assert_array_equal(np.asarray(row["image"]), np.moveaxis(expected, 0, -1))


def test_rotated_raster_warped_to_north_up_1m(tmp_path: Path) -> None:
    """The general warp path (a rotated source): north-up 1 m crops equal to GDAL warping the whole raster."""
    from rasterio.crs import CRS
    from rasterio.warp import Resampling, reproject

    transform, pixels, report, rows = _rotated_build(tmp_path)
    assert report["gsd"] == [1.0] and report["source_gsd"] == [pytest.approx(5.0)]
    for row in rows:
        crop = _check_photo_positions(row)
        assert (crop.a, crop.b, crop.d, crop.e) == (1.0, 0.0, 0.0, -1.0) and row["gsd"] == 1.0
        # The build reads only the part of the raster under the crop; GDAL warping the whole raster agrees.
        expected = np.zeros((4, CROP, CROP), dtype=np.uint8)
        reproject(pixels, expected, src_transform=transform, src_crs=CRS.from_epsg(26914), dst_transform=crop,
                  dst_crs=CRS.from_epsg(26914), dst_alpha=4, resampling=Resampling.bilinear)  # fmt: skip
        np.testing.assert_array_equal(np.asarray(row["image"]), np.moveaxis(expected[:3], 0, -1))


# ---------------------------------------------------------------- bad sources: corrupt or missing rasters, bad photos
def _naip_photos(path: Path) -> None:
    make_photo_table(path, "EPSG:26914", (486500, 5206200, 489900, 5208700), 12, seed=2, with_images=False)


def _catalog(path: Path, rasters: list[Path]) -> Path:
    rows = [f"{r},{r.stem.rsplit('_', 1)[-1]}" for r in rasters]
    path.write_text("path,datetime\n" + "\n".join(rows) + "\n")
    return path


def test_corrupt_and_missing_rasters_are_skipped_and_counted(tmp_path: Path) -> None:
    """The newest scene is corrupt (header fine, pixels unreadable) and one listed scene is missing: tiles fall back to
    the older years, nothing aborts, and the report counts both by reason and file."""
    if not NAIP.is_dir():
        pytest.skip(f"real NAIP rasters not found at {NAIP} (../shared/data/naip-nd)")
    from graft_hf.pairs.builder import build_pairs
    from graft_hf.pairs.config import PairsBuildConfig

    _naip_photos(tmp_path / "photos.csv")
    corrupt = corrupt_copy(RASTER, tmp_path / "m_4709963_se_14_1_20210831.tif")  # newest: tried first
    older = sorted(NAIP.glob("*201*.tif"))
    catalog = _catalog(tmp_path / "catalog.csv", [corrupt, tmp_path / "gone_20220101.tif", *older])
    config = PairsBuildConfig(
        photos=str(tmp_path / "photos.csv"),
        output_dir=str(tmp_path / "out"),
        catalog=str(catalog),
        crop_size=64,
        footprint_size=32,
        progress=False,
    )
    report = build_pairs(config)
    scenes = report["scenes"]
    assert scenes["listed"] == 4 and scenes["usable"] == 3 and scenes["skipped"] == {"cannot_open": 1}
    assert any("gone_20220101.tif" in error for error in scenes["skip_errors"])
    assert report["tiles"]["kept"] == report["tiles"]["sampled"] > 5 and report["tiles"]["dropped"] == {}
    from datasets import load_dataset

    rows = list(load_dataset(str(tmp_path / "out"), split="train", streaming=True))
    # Tiles over the damaged blocks fall back to the next newest scene; the others still read the intact blocks.
    fell_back = sum(row["acquisition_date"] == "2014-07-20" for row in rows)
    assert {row["acquisition_date"] for row in rows} <= {"2021-08-31", "2014-07-20"} and fell_back > 0
    assert scenes["read_failed"] == {str(corrupt): fell_back}

    # Only the corrupt scene: every tile is dropped as read_failed; with strict_rasters the build stops naming it.
    only = _catalog(tmp_path / "only.csv", [corrupt])
    report = build_pairs(
        PairsBuildConfig(**{**config.__dict__, "catalog": str(only), "output_dir": str(tmp_path / "o2")})
    )
    assert report["tiles"]["dropped"] == {"read_failed": fell_back}
    assert report["tiles"]["kept"] == report["tiles"]["sampled"] - fell_back
    from graft_hf.pairs.catalog import SceneError
    from graft_hf.pairs.raster import RasterReadError

    strict = {**config.__dict__, "strict_rasters": True, "catalog": str(only), "output_dir": str(tmp_path / "o3")}
    with pytest.raises(RasterReadError, match=r"cannot read raster .*20210831\.tif: Read failed"):
        build_pairs(PairsBuildConfig(**strict))
    strict = {**config.__dict__, "strict_rasters": True, "output_dir": str(tmp_path / "o4")}
    with pytest.raises(SceneError, match=r"cannot open raster .*gone_20220101\.tif"):
        build_pairs(PairsBuildConfig(**strict))


def test_truncated_photo_is_stored_without_bytes_and_counted(tmp_path: Path) -> None:
    """A photo whose file opens as a JPEG but does not decode (truncated) keeps its record but not its bytes."""
    if not RASTER.is_file():
        pytest.skip(f"real NAIP raster not found at {RASTER} (../shared/data/naip-nd)")
    from PIL import Image
    from rasterio.crs import CRS
    from rasterio.warp import transform

    from graft_hf.pairs.tiles import image_decodes

    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    whole = buffer.getvalue()
    (tmp_path / "good.jpg").write_bytes(whole)
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    assert image_decodes(whole) and not image_decodes(whole[: len(whole) // 2])
    lons, lats = transform(CRS.from_epsg(26914), CRS.from_epsg(4326), [487000.0, 488500.0], [5207000.0, 5207000.0])
    with (tmp_path / "photos.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["photo_id", "lat", "lon", "image"])
        writer.writerows([("good", lats[0], lons[0], "good.jpg"), ("cut", lats[1], lons[1], "cut.jpg")])
    report = _small_build(tmp_path, "photos.csv")
    assert report["photos"]["kept"] == 2 and report["photo_images_not_stored"] == {"undecodable": 1}
    import pyarrow.parquet as pq

    rows = pq.read_table(str(tmp_path / "out" / "data")).to_pylist()
    images = {row["photos"][0]["photo_id"]: row["photos"][0]["image"] for row in rows}
    assert images["good"]["bytes"] == whole and images["cut"] is None
