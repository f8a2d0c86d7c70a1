"""`graft pairs build` on the real NAIP rasters: crops, pixel locations, scene choice, skip counts, streaming."""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.data import SHARED_DATA
from tests.helpers.make_photos import make_photo_table

NAIP = SHARED_DATA / "naip-nd"
CORNER = (485900 + 7.0, 5209245 - 7.0)  # 1 px inside the top-left corner: the 448 crop is 75% outside


def _stac(path: Path, rasters: list[str]) -> None:
    items = []
    for href in rasters:
        date = Path(href).stem.rsplit("_", 1)[-1]
        items.append(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": Path(href).stem,
                "geometry": None,
                "properties": {"datetime": f"{date[:4]}-{date[4:6]}-{date[6:]}T17:00:00Z"},
                "assets": {"image": {"href": href, "type": "image/tiff; application=geotiff", "roles": ["data"]}},
            }
        )
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))


@pytest.fixture(scope="module")
def naip_build(tmp_path_factory: pytest.TempPathFactory):
    if not NAIP.is_dir():
        pytest.skip(f"real NAIP rasters not found at {NAIP} (../shared/data/naip-nd)")
    from graft_hf.pairs.builder import build_pairs
    from graft_hf.pairs.config import PairsBuildConfig

    root = tmp_path_factory.mktemp("naip")
    spec = make_photo_table(
        root / "photos.csv",
        "EPSG:26914",
        (486900, 5205900, 490300, 5208200),
        25,
        seed=11,
        cluster=(488500, 5207000, 120, 40),
        bad_rows=True,
        outside=2,
        extra=[CORNER],
    )
    rasters = sorted(glob.glob(str(NAIP / "*.tif")))
    _stac(root / "items.json", rasters)
    config = PairsBuildConfig(
        photos=str(root / "photos.csv"),
        output_dir=str(root / "out"),
        catalog=str(root / "items.json"),
        seed=5,
        tiles_per_shard=8,
        progress=False,
    )
    report = build_pairs(config)
    return spec, report, root / "out"


def test_report_counts_every_skip_reason(naip_build) -> None:
    spec, report, out = naip_build
    assert report["complete"]
    assert json.loads((out / "build_report.json").read_text())["photos"] == report["photos"]
    photos = report["photos"]
    assert photos["read"] == spec.rows
    assert photos["read"] == photos["kept"] + sum(photos["dropped"].values())
    for reason, count in spec.expected_drops.items():
        assert photos["dropped"][reason] == count, reason
    assert photos["dropped"]["over_tile_cap"] > 0  # the 40-photo cluster
    assert report["tiles"]["dropped"] == {"mostly_nodata": 1}  # the corner photo's tile, in all three years
    assert photos["dropped"]["tile_dropped"] == 1
    assert report["tiles"]["kept"] == report["tiles"]["sampled"] - 1


def test_streaming_rows_pixels_and_locations(naip_build) -> None:
    import rasterio
    from datasets import load_dataset
    from rasterio.crs import CRS
    from rasterio.warp import transform as warp
    from rasterio.windows import Window

    _, report, out = naip_build
    rows = list(load_dataset(str(out), split="train", streaming=True))
    assert len(rows) == report["tiles"]["kept"]
    assert len({r["tile_id"] for r in rows}) == len(rows)
    centres = []
    for row in rows:
        assert row["image"].size == (448, 448) and row["image"].mode == "RGB"
        assert row["sensor"] == "naip" and row["crs"] == "EPSG:26914" and row["gsd"] == 5.0
        # NAIP: the newest acquisition covering the tile.
        assert row["acquisition_date"] == "2020-08-31" and row["raster"].endswith("20200831.tif")
        assert 1 <= len(row["photos"]) <= 25
        a, b, c, d, e, f = row["transform"]
        cols = np.array([p["col"] for p in row["photos"]], dtype=np.float64)
        rws = np.array([p["row"] for p in row["photos"]], dtype=np.float64)
        # Back to lon/lat through the crop's affine transform and the raster CRS.
        lon, lat = warp(CRS.from_epsg(26914), CRS.from_epsg(4326), (c + cols * a).tolist(), (f + rws * e).tolist())
        np.testing.assert_allclose(lon, [p["lon"] for p in row["photos"]], atol=2e-7)
        np.testing.assert_allclose(lat, [p["lat"] for p in row["photos"]], atol=2e-7)
        # The centre photo sits in the crop's centre pixel; the others inside the 224 px footprint.
        assert 224 <= cols[0] < 225 and 224 <= rws[0] < 225
        assert np.all(np.abs(cols - cols[0]) < 112) and np.all(np.abs(rws - rws[0]) < 112)
        centres.append((c + cols[0] * a, f + rws[0] * e))
        assert abs(row["center_lon"] - lon[0]) < 1e-4 and abs(row["center_lat"] - lat[0]) < 1e-4
        photo = row["photos"][0]
        assert photo["license"] in ("CC-BY-2.0", "CC-BY-SA-2.0", "CC0-1.0") and photo["owner"].startswith("user")
        assert photo["image"][:2] == b"\xff\xd8" and photo["text"].startswith("photo ")
    centres = np.array(centres)
    d = np.max(np.abs(centres[:, None] - centres[None]), axis=-1) + np.eye(len(centres)) * 1e9
    assert d.min() >= 112 * 5.0

    # Crop pixels are the raster's bands 1-3 at the crop's window.
    row = rows[0]
    with rasterio.open(row["raster"]) as src:
        col_off = round((row["transform"][2] - src.transform.c) / src.transform.a)
        row_off = round((row["transform"][5] - src.transform.f) / src.transform.e)
        expected = src.read([1, 2, 3], window=Window(col_off, row_off, 448, 448), boundless=True, fill_value=0)
    np.testing.assert_array_equal(np.asarray(row["image"]), np.moveaxis(expected, 0, -1))


def test_card_has_configs_and_counts(naip_build) -> None:
    _, report, out = naip_build
    card = (out / "README.md").read_text()
    assert "configs:" in card and "path: data/train-*.parquet" in card
    assert f"| tiles | {report['tiles']['kept']} " in card
    assert "CC-BY-SA-2.0" in card and "mostly_nodata 1" in card
    assert not list((out / "data").glob(".*tmp*")), "no temporary shard files left behind"


def test_raster_without_crs_names_file_and_fix(tmp_path: Path) -> None:
    import rasterio

    from graft_hf.pairs.catalog import load_catalog

    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8") as dst:
        dst.write(np.zeros((3, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"nocrs\.tif has no CRS.*rio edit-info --crs"):
        load_catalog(None, [str(path)], "naip")


def test_cli_fills_config_in_one_place() -> None:
    from graft_hf_cli import build_parser
    from graft_hf_cli.pairs import config_from_args

    args = build_parser().parse_args(
        "pairs build --photos p.csv --raster a.tif --raster b.tif -o out --sensor sentinel2 --workers 3 "
        "--num-shards 4 --shard-index 2 --column lat=y --column lon=x --read-mode full --no-photo-bytes".split()
    )
    config = config_from_args(args)
    assert config.rasters == ("a.tif", "b.tif") and config.sensor == "sentinel2" and config.workers == 3
    assert (config.num_shards, config.shard_index, config.read_mode) == (4, 2, "full")
    assert config.columns.lat == "y" and config.columns.lon == "x" and not config.include_photo_bytes
    assert config.resolved_scene_choice == "closest_time"
    with pytest.raises(ValueError, match="ROLE=NAME"):
        config_from_args(argparse.Namespace(**{**vars(args), "column": ["nonsense"]}))
    with pytest.raises(ValueError, match="shard_index: must be in"):
        config_from_args(argparse.Namespace(**{**vars(args), "shard_index": 4}))


def test_cli_errors_name_the_flags(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Library errors name parameters (``shard_index``); ``graft pairs build`` names the flag that sets them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from graft_hf_cli import main

    pq.write_table(pa.table({"photo_id": ["a"], "y": [47.0], "x": [-99.15]}), tmp_path / "photos.parquet")
    raster = str(sorted(NAIP.glob("*.tif"))[0]) if NAIP.is_dir() else "a.tif"
    base = ["pairs", "build", "--photos", str(tmp_path / "photos.parquet"), "-o", str(tmp_path / "out")]
    assert main([*base, "--raster", raster, "--num-shards", "2", "--shard-index", "2"]) == 1
    assert "--shard-index: must be in [0, num_shards)" in capsys.readouterr().err
    assert main(base) == 1
    assert "--raster: no imagery given" in capsys.readouterr().err
    assert main([*base, "--raster", raster, "--crop-size", "8"]) == 1
    assert "--crop-size: must be >= footprint_size" in capsys.readouterr().err
    if not NAIP.is_dir():
        pytest.skip(f"real NAIP rasters not found at {NAIP} (../shared/data/naip-nd)")
    assert main([*base, "--raster", raster, "--no-progress"]) == 1
    assert "--column: photo table has no lat column" in capsys.readouterr().err
    columns = ["--column", "lat=y", "--column", "lon=x", "--crop-size", "32", "--footprint-size", "16"]
    assert main([*base, "--raster", raster, "--no-progress", *columns]) == 0
    assert main([*base, "--raster", raster, "--no-progress", *columns, "--seed", "1"]) == 1
    err = capsys.readouterr().err
    assert "--output: " in err and "holds a build made with different settings" in err
