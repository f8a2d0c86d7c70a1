"""`build_pairs` (what `graft pairs build` runs) on real rasters: NAIP crops warped to the 1 m training GSD, pixel
locations, scene choice, skip counts and streaming; Sentinel-2 cloud filter, scene choice and scaling; photo-table
inputs; a rotated raster (native grid and warped); corrupt and missing rasters; the random-tile ablation;
byte-identical shards for any workers or shard split, and after a SIGKILL, for both tile placements.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.data import REPO_ROOT, SHARED_DATA
from tests.helpers.make_photos import make_photo_table

NAIP = SHARED_DATA / "naip-nd"
RASTER = NAIP / "m_4709963_se_14_1_20200831.tif"


# ------------------------------ the real NAIP rasters: crops, pixel locations, scene choice, skip counts, streaming
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
        cluster=(488500, 5207000, 40, 40),
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
    assert photos["dropped"]["over_tile_cap"] > 0  # the 40-photo cluster (80 m square, inside one 224 m footprint)
    assert "duplicate_coordinates" not in photos["dropped"], "distinct photos taken at one spot are all kept"
    assert report["tiles"]["dropped"] == {"mostly_nodata": 1}  # the corner photo's tile, in all three years
    assert photos["dropped"]["tile_dropped"] == 1
    assert report["tiles"]["kept"] == report["tiles"]["sampled"] - 1
    assert report["gsd"] == [1.0] and report["source_gsd"] == [5.0] and report["tile_placement"] == {"mode": "photos"}


def test_streaming_rows_pixels_and_locations(naip_build) -> None:
    import rasterio
    from datasets import load_dataset
    from rasterio.crs import CRS
    from rasterio.warp import transform as warp

    spec, report, out = naip_build
    rows = list(load_dataset(str(out), split="train", streaming=True))
    assert len(rows) == report["tiles"]["kept"]
    assert len({r["tile_id"] for r in rows}) == len(rows)
    together = [r for r in rows if {"samespot", "p00002"} <= {p["photo_id"] for p in r["photos"]}]
    assert together, "two photos taken at one spot are both in its tile"
    centres = []
    for row in rows:
        assert row["image"].size == (448, 448) and row["image"].mode == "RGB"
        # Warped to NAIP's 1 m training GSD from the 5 m source: the stored grid is the output grid.
        assert row["sensor"] == "naip" and row["crs"] == "EPSG:26914" and row["gsd"] == 1.0
        assert row["source_gsd"] == 5.0
        # NAIP: the newest acquisition covering the tile.
        assert row["acquisition_date"] == "2020-08-31" and row["raster"].endswith("20200831.tif")
        assert 1 <= len(row["photos"]) <= 25
        a, b, c, d, e, f = row["transform"]
        assert (a, b, d, e) == (1.0, 0.0, 0.0, -1.0)
        cols = np.array([p["col"] for p in row["photos"]], dtype=np.float64)
        rws = np.array([p["row"] for p in row["photos"]], dtype=np.float64)
        # Back to lon/lat through the crop's affine transform and the raster CRS.
        lon, lat = warp(CRS.from_epsg(26914), CRS.from_epsg(4326), (c + cols * a).tolist(), (f + rws * e).tolist())
        np.testing.assert_allclose(lon, [p["lon"] for p in row["photos"]], atol=2e-7)
        np.testing.assert_allclose(lat, [p["lat"] for p in row["photos"]], atol=2e-7)
        # The tile's centre photo (named by the tile id) sits in the centre pixel; every photo inside the footprint.
        centre = [p["photo_id"] for p in row["photos"]].index(row["tile_id"][len("naip-") :])
        assert 224 <= cols[centre] < 225 and 224 <= rws[centre] < 225
        assert np.all(np.abs(cols - cols[centre]) < 112) and np.all(np.abs(rws - rws[centre]) < 112)
        centres.append((c + cols[centre] * a, f + rws[centre] * e))
        assert abs(row["center_lon"] - lon[centre]) < 1e-4 and abs(row["center_lat"] - lat[centre]) < 1e-4
        photo = row["photos"][0]
        assert photo["license"] in ("CC-BY-2.0", "CC-BY-SA-2.0", "CC0-1.0") and photo["owner"].startswith("user")
        assert photo["image"].format == "JPEG" and photo["text"].startswith(("photo ", "another photo"))
    centres = np.array(centres)
    d = np.max(np.abs(centres[:, None] - centres[None]), axis=-1) + np.eye(len(centres)) * 1e9
    assert d.min() >= 112 * 1.0

    # The 1 m grid is anchored on the 5 m source grid, so every 5th output pixel is centred on a source pixel and
    # holds its bands 1-3 exactly (bilinear interpolation is exact at the source pixel centres).
    with rasterio.open(RASTER) as src:
        for row in rows:
            x_off = round(row["transform"][2] - src.transform.c)  # metres from the source origin, whole
            y_off = round(src.transform.f - row["transform"][5])
            first_col, first_row = (2 - x_off) % 5, (2 - y_off) % 5
            source_col, source_row = (x_off + first_col - 2) // 5, (y_off + first_row - 2) // 5
            window = rasterio.windows.Window(source_col, source_row, 90, 90)
            source = src.read([1, 2, 3], window=window, boundless=True, fill_value=0)
            pixels = np.asarray(row["image"])[first_row::5, first_col::5]
            np.testing.assert_array_equal(pixels, np.moveaxis(source, 0, -1)[: pixels.shape[0], : pixels.shape[1]])


def test_card_has_configs_counts_licence_block_and_features(naip_build) -> None:
    from datasets import Features, load_dataset
    from huggingface_hub import DatasetCard

    from graft_hf.pairs.schema import pairs_features

    _, report, out = naip_build
    card = (out / "README.md").read_text()
    assert "configs:" in card and "path: data/train-*.parquet" in card
    assert f"| tiles | {report['tiles']['kept']} " in card
    assert "CC-BY-SA-2.0" in card and "mostly_nodata 1" in card
    assert "warped to 1 m/px" in card and "from scenes at 5 m/px" in card
    assert not list((out / "data").glob(".*tmp*")), "no temporary shard files left behind"
    # Mixed photo licences (CC-BY-SA-2.0 is no Hub licence id): `other`, named, linked to the licence file.
    data = DatasetCard.load(out / "README.md").data
    assert (data.license, data.license_name, data.license_link) == ("other", "per-photo-licences", "LICENSE.md")
    licence_file = (out / "LICENSE.md").read_text()
    assert "US public domain" in licence_file and "| CC-BY-SA-2.0 | not a Hub licence id |" in licence_file
    assert data.task_categories == ["zero-shot-image-classification", "image-feature-extraction"]
    # dataset_info: the shard features (photo images typed as Image) and the split's size.
    info = data.dataset_info
    assert Features._from_yaml_list(info["features"]) == pairs_features()
    assert {"name": "image", "dtype": "image"} in next(f for f in info["features"] if f["name"] == "photos")["list"]
    assert info["splits"] == [{"name": "train", "num_bytes": report["data_bytes"], "num_examples": len(
        load_dataset(str(out), split="train"))}]  # fmt: skip


# ----------------------------- Sentinel-2 from real BigEarthNet bands: cloud filter, closest-in-time scene, scaling
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
    for name in ("a", "b", "c", "d"):
        _stack(PATCH, root / f"{name}.tif")
    _stack(OTHER, root / "elsewhere.tif")
    scenes = [
        ("a.tif", acquired, 0.4),  # clear, June 2017
        ("b.tif", "2017-08-01T10:00:00", 5.0),  # closest to the summer-2017 photos but cloudy: never used
        ("c.tif", "2018-06-01T10:00:00", 0.0),  # clear, June 2018
        ("d.tif", "2017-07-30T10:00:00", None),  # closest to the west photos but no cloud value: never taken as clear
        ("elsewhere.tif", "2017-06-17T11:33:21", 30.0),  # the only scene over the far photos: too cloudy
    ]
    with (root / "catalog.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "datetime", "cloud_cover", "bands"])
        writer.writerows([(p, d, "" if c is None else c, ",".join(BANDS)) for p, d, c in scenes])
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
    scenes = report["scenes"]
    assert (scenes["clear"], scenes["cloudy"], scenes["no_cloud_cover"], scenes["no_cloud_cover_used"]) == (
        2,
        2,
        1,
        False,
    )
    table = pq.read_table(
        sorted((out / "data").glob("train-*.parquet")), columns=["raster", "acquisition_date", "photos"]
    )
    rows = table.to_pylist()
    assert len(rows) == report["tiles"]["kept"] > 4
    for row in rows:
        west = all("west-" in p["photo_id"] for p in row["photos"])
        east = all("east-" in p["photo_id"] for p in row["photos"])
        assert west != east, "footprints are 160 m wide; the two photo groups are 300 m apart"
        # West photos were taken in summer 2017: scenes b (5% cloudy) and d (no cloud value) are closer in time but
        # not clear, so the June 2017 scene wins.
        assert (row["raster"].endswith("a.tif"), row["acquisition_date"]) == (
            (True, "2017-06-13") if west else (False, "2018-06-01")
        )
        assert row["raster"].endswith("a.tif") or row["raster"].endswith("c.tif")


def test_rgb_scaling_and_raw_bands(s2_build) -> None:
    from datasets import load_dataset

    from graft_hf.pairs.schema import decode_bands

    _, out = s2_build
    row = next(iter(load_dataset(str(out), split="train", streaming=True)))
    # 10 m bands at Sentinel-2's 10 m training GSD: copied pixel for pixel, no resampling.
    assert row["sensor"] == "sentinel2" and row["crs"] == "EPSG:32633" and row["gsd"] == row["source_gsd"] == 10.0
    assert row["band_names"] == list(BANDS)
    raw = _window(PATCH, row["transform"], 32)
    bands = decode_bands(row["bands"])
    assert bands.shape == (4, 32, 32) and bands.dtype == np.uint16
    np.testing.assert_array_equal(bands, raw)
    # RGB = B4, B3, B2 as clip(round(dn / 3000 * 255), 0, 255).
    expected = np.clip(np.rint(raw[[2, 1, 0]].astype(np.float64) / 3000 * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(row["image"]), np.moveaxis(expected, 0, -1))


def test_sentinel2_rasters_without_cloud_values_say_what_to_do(s2_build, caplog) -> None:
    """Plain raster paths carry no cloud cover: for Sentinel-2 nothing is taken as clear, and the log says why."""
    from graft_hf.pairs.builder import build_pairs
    from graft_hf.pairs.config import PairsBuildConfig

    _, out = s2_build
    root = out.parent
    raster = root / "a_20170613.tif"  # the date in the name, as plain raster paths are dated
    raster.write_bytes((root / "a.tif").read_bytes())
    config = PairsBuildConfig(photos=str(root / "west.csv"), output_dir=str(root / "nocloud"), rasters=(str(raster),),
                              sensor="sentinel2", crop_size=32, footprint_size=16, progress=False)  # fmt: skip
    with caplog.at_level("WARNING", logger="graft_hf.pairs.builder"):
        report = build_pairs(config)
    assert report["tiles"]["sampled"] == 0 and report["photos"]["dropped"]["only_scenes_without_cloud_cover"] == 30
    assert "unknown_cloud_cover='clear'" in caplog.text
    config = dataclasses.replace(config, output_dir=str(root / "assumed-clear"), unknown_cloud_cover="clear")
    assert build_pairs(config)["tiles"]["kept"] > 0


def test_scaling_defaults_and_card_come_from_the_sensor_registry(s2_build) -> None:
    from huggingface_hub import DatasetCard

    from graft_hf.modeling import get_sensor
    from graft_hf.pairs.config import PairsBuildConfig

    sentinel2 = get_sensor("sentinel2")
    config = PairsBuildConfig(photos="p.csv", output_dir="o", rasters=("a.tif",), sensor="sentinel2")
    assert (config.s2_rgb_max, config.s2_offset) == (sentinel2.value_scale, sentinel2.value_offset)
    report, out = s2_build
    card = DatasetCard.load(out / "README.md")
    assert card.data.configs[0]["data_files"][0]["path"] == "data/train-*.parquet"
    # Copernicus imagery has no Hub licence id: `other`, named after what it combines.
    assert card.data.license == "other" and card.data.license_name.startswith("copernicus-sentinel-data-and-")
    assert "Copernicus Sentinel data" in (out / "LICENSE.md").read_text()
    assert card.data.pretty_name == f"GRAFT {sentinel2.display_name} ground-satellite pairs"
    assert "`clip(round(DN / 3000 * 255), 0, 255)`" in card.text and "reflectance\n0.3 is white" in card.text


# ------------------------------------------- determinism: any workers, any num_shards split, resume after a SIGKILL
def _shards(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "data").glob("train-*.parquet"))}


@pytest.fixture(scope="module", params=["photos", "random"], ids=["photo_tiles", "random_tiles"])
def reference(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A reference build (warped to 1 m) with tiles centred on photos, and one with the random-tile ablation."""
    if not NAIP.is_dir():
        pytest.skip(f"real NAIP rasters not found at {NAIP} (../shared/data/naip-nd)")
    from graft_hf.pairs.builder import build_pairs
    from graft_hf.pairs.config import PairsBuildConfig

    root = tmp_path_factory.mktemp(f"resume-{request.param}")
    make_photo_table(
        root / "photos.csv", "EPSG:26914", (486500, 5206200, 489900, 5208700), 120, seed=4, with_images=False
    )
    config = PairsBuildConfig(
        photos=str(root / "photos.csv"),
        output_dir=str(root / "ref"),
        rasters=tuple(sorted(glob.glob(str(NAIP / "*.tif")))),
        crop_size=128,
        footprint_size=32,
        tiles_per_shard=4,
        seed=9,
        tile_placement=request.param,
        random_tiles=60 if request.param == "random" else 0,
        progress=False,
    )
    report = build_pairs(config)
    assert report["complete"] and report["shards"] >= 15
    assert report["tile_placement"]["mode"] == request.param
    return config, report, _shards(root / "ref"), root


@pytest.mark.parametrize("change", [{"workers": 2}, {"read_mode": "full"}], ids=["workers2", "full_read"])
def test_workers_and_read_mode_give_byte_identical_shards(reference, change: dict) -> None:
    from graft_hf.pairs.builder import build_pairs

    config, _, expected, root = reference
    out = root / "-".join(f"{k}{v}" for k, v in change.items())
    build_pairs(dataclasses.replace(config, output_dir=str(out), **change))
    assert _shards(out) == expected


def test_num_shards_partitions_are_disjoint_and_cover(reference) -> None:
    from graft_hf.pairs.builder import build_pairs

    config, report, expected, root = reference
    out = root / "split"
    seen: set[str] = set()
    for index in range(3):
        result = build_pairs(dataclasses.replace(config, output_dir=str(out), num_shards=3, shard_index=index))
        new = set(_shards(out)) - seen
        assert new and not new & seen
        assert all(int(name[6:11]) % 3 == index for name in new)
        seen |= new
        # Only the job that completes the set writes the report and the card.
        assert result["complete"] == (index == 2) == (out / "README.md").exists()
    assert _shards(out) == expected
    assert result["photos"] == report["photos"] and result["tiles"] == report["tiles"]


def test_changed_settings_refuse_to_resume(reference) -> None:
    from graft_hf.pairs.builder import build_pairs

    config, *_ = reference
    with pytest.raises(ValueError, match=r"different settings \(config.seed 9 -> 10; the inputs"):
        build_pairs(dataclasses.replace(config, seed=10))


def test_resume_after_sigkill_is_byte_identical(reference) -> None:
    from graft_hf.pairs.builder import build_pairs

    config, report, expected, root = reference
    out = root / "killed"
    command = [sys.executable, "-m", "graft_hf_cli", "pairs", "build", "--photos", config.photos, "-o", str(out)]
    for raster in config.rasters:
        command += ["--raster", raster]
    command += ["--crop-size", "128", "--footprint-size", "32", "--tiles-per-shard", "4", "--seed", "9"]
    command += ["--tile-placement", config.tile_placement, "--random-tiles", str(config.random_tiles)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([*command, "--no-progress"], env=env, stderr=subprocess.PIPE)
    manifest = out / "_build" / "manifest"
    deadline = time.monotonic() + 120
    while not (manifest.is_dir() and any(manifest.glob("*.json"))):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the build never finished a shard"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL

    done_before = {p.name[: -len(".json")]: (out / "data" / p.name[: -len(".json")]).stat().st_mtime_ns
                   for p in manifest.glob("*.json")}  # fmt: skip
    assert 0 < len(done_before) < len(expected), "the kill must land mid-build"
    assert not (out / "build_report.json").exists()

    result = build_pairs(dataclasses.replace(config, output_dir=str(out)))
    assert result["complete"]
    # Finished shards were not rewritten, and the resumed build equals an uninterrupted one byte for byte.
    assert {name: (out / "data" / name).stat().st_mtime_ns for name in done_before} == done_before
    assert _shards(out) == expected
    assert result["photos"] == report["photos"] and result["tiles"] == report["tiles"]
