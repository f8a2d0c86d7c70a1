"""Sentinel-2 pairs from real BigEarthNet bands: cloud filter, closest-in-time scene, RGB scaling, raw bands."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.data import SHARED_DATA
from tests.helpers.make_photos import make_photo_table

BEN = SHARED_DATA / "bigearthnet-s2-examples"
PATCH = "S2A_MSIL2A_20170613T101031_87_48"  # EPSG:32633, x 404400..405600, y 5341200..5342400, 10 m
OTHER = "S2A_MSIL2A_20170617T113321_36_85"  # EPSG:32629, elsewhere in Europe
BANDS = ("B02", "B03", "B04", "B08")


def _stack(patch: str, out: Path) -> None:
    """A 4-band 10 m GeoTIFF (B02, B03, B04, B08) from BigEarthNet's per-band files, named in the descriptions."""
    import rasterio

    arrays, profile = [], None
    for band in BANDS:
        with rasterio.open(BEN / patch / f"{patch}_{band}.tif") as src:
            arrays.append(src.read(1))
            profile = src.profile
    profile.update(count=len(BANDS), driver="GTiff")
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(np.stack(arrays))
        dst.descriptions = BANDS


def _window(patch: str, transform: list[float], size: int) -> np.ndarray:
    import rasterio
    from rasterio.windows import Window

    out = []
    for band in BANDS:
        with rasterio.open(BEN / patch / f"{patch}_{band}.tif") as src:
            col = round((transform[2] - src.transform.c) / src.transform.a)
            row = round((transform[5] - src.transform.f) / src.transform.e)
            out.append(src.read(1, window=Window(col, row, size, size), boundless=True, fill_value=0))
    return np.stack(out)


@pytest.fixture(scope="module")
def s2_build(tmp_path_factory: pytest.TempPathFactory):
    if not (BEN / PATCH).is_dir() or not (BEN / OTHER).is_dir():
        pytest.skip(f"BigEarthNet example patches not found under {BEN} (../shared/data/bigearthnet-s2-examples)")
    from graft_hf.pairs.builder import build_pairs
    from graft_hf.pairs.config import PairsBuildConfig

    root = tmp_path_factory.mktemp("s2")
    metadata = json.loads((BEN / PATCH / f"{PATCH}_labels_metadata.json").read_text())
    acquired = metadata["acquisition_date"].replace(" ", "T")  # 2017-06-13T10:10:31, the real date
    for name in ("a", "b", "c"):
        _stack(PATCH, root / f"{name}.tif")
    _stack(OTHER, root / "elsewhere.tif")
    scenes = [
        ("a.tif", acquired, 0.4),  # clear, June 2017
        ("b.tif", "2017-08-01T10:00:00", 5.0),  # closest to the summer-2017 photos but cloudy: never used
        ("c.tif", "2018-06-01T10:00:00", 0.0),  # clear, June 2018
        ("elsewhere.tif", "2017-06-17T11:33:21", 30.0),  # the only scene over the far photos: too cloudy
    ]
    with (root / "catalog.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "datetime", "cloud_cover", "bands"])
        writer.writerows([(p, d, c, ",".join(BANDS)) for p, d, c in scenes])
    west = make_photo_table(
        root / "west.csv", "EPSG:32633", (404450, 5341250, 404850, 5342350), 30, seed=1,
        times=("2017-07-20", "2017-08-10"), with_images=False, id_prefix="west-",
    )  # fmt: skip
    east = make_photo_table(
        root / "east.csv", "EPSG:32633", (405150, 5341250, 405550, 5342350), 30, seed=2,
        times=("2018-05-01", "2018-05-20"), with_images=False, id_prefix="east-",
    )  # fmt: skip
    far = make_photo_table(
        root / "far.csv",
        "EPSG:32629",
        (643300, 5796900, 644300, 5797900),
        3,
        seed=3,
        with_images=False,
        id_prefix="far-",
    )
    lines = []
    for i, spec in enumerate((west, east, far)):
        text = spec.path.read_text().splitlines()
        lines += text if i == 0 else text[1:]
    (root / "photos.csv").write_text("\n".join(lines) + "\n")
    config = PairsBuildConfig(
        photos=str(root / "photos.csv"),
        output_dir=str(root / "out"),
        catalog=str(root / "catalog.csv"),
        sensor="sentinel2",
        crop_size=32,
        footprint_size=16,
        include_bands=True,
        max_nodata_fraction=0.9,
        tiles_per_shard=16,
        progress=False,
    )
    return build_pairs(config), root / "out"


def test_cloud_filter_and_closest_acquisition(s2_build) -> None:
    import pyarrow.parquet as pq

    report, out = s2_build
    assert report["photos"]["dropped"]["only_cloudy_scenes"] == 3
    table = pq.read_table(
        sorted((out / "data").glob("train-*.parquet")), columns=["raster", "acquisition_date", "photos"]
    )
    rows = table.to_pylist()
    assert len(rows) == report["tiles"]["kept"] > 4
    for row in rows:
        west = all("west-" in p["photo_id"] for p in row["photos"])
        east = all("east-" in p["photo_id"] for p in row["photos"])
        assert west != east, "footprints are 160 m wide; the two photo groups are 300 m apart"
        # West photos were taken in summer 2017: scene b is closer but 5% cloudy, so the June 2017 scene wins.
        assert (row["raster"].endswith("a.tif"), row["acquisition_date"]) == (
            (True, "2017-06-13") if west else (False, "2018-06-01")
        )
        assert row["raster"].endswith("a.tif") or row["raster"].endswith("c.tif")


def test_rgb_scaling_and_raw_bands(s2_build) -> None:
    from datasets import load_dataset

    from graft_hf.pairs.schema import decode_bands

    _, out = s2_build
    row = next(iter(load_dataset(str(out), split="train", streaming=True)))
    assert row["sensor"] == "sentinel2" and row["crs"] == "EPSG:32633" and row["gsd"] == 10.0
    assert row["band_names"] == list(BANDS)
    raw = _window(PATCH, row["transform"], 32)
    bands = decode_bands(row["bands"])
    assert bands.shape == (4, 32, 32) and bands.dtype == np.uint16
    np.testing.assert_array_equal(bands, raw)
    # RGB = B4, B3, B2 as clip(round(dn / 3000 * 255), 0, 255).
    expected = np.clip(np.rint(raw[[2, 1, 0]].astype(np.float64) / 3000 * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(row["image"]), np.moveaxis(expected, 0, -1))


def test_scaling_defaults_and_card_come_from_the_sensor_registry(s2_build) -> None:
    from huggingface_hub import DatasetCard

    from graft_hf.modeling import get_sensor
    from graft_hf.pairs.config import PairsBuildConfig

    sentinel2 = get_sensor("sentinel2")
    config = PairsBuildConfig(photos="p.csv", output_dir="o", rasters=("a.tif",), sensor="sentinel2")
    assert (config.s2_rgb_max, config.s2_offset) == (sentinel2.value_scale, sentinel2.value_offset)
    report, out = s2_build
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "other" and card.data.configs[0]["data_files"][0]["path"] == "data/train-*.parquet"
    assert card.data.pretty_name == f"GRAFT {sentinel2.display_name} ground-satellite pairs"
    assert "`clip(round(DN / 3000 * 255), 0, 255)`" in card.text and "reflectance\n0.3 is white" in card.text
