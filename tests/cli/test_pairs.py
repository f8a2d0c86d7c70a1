"""`graft pairs build`: the config filled in one place from the flags, library errors that name the flag."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tests.helpers.data import SHARED_DATA

NAIP = SHARED_DATA / "naip-nd"


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
    # The resolution, ablation and strictness flags.
    args = build_parser().parse_args(
        "pairs build --photos p.csv --raster a.tif -o out --gsd 0.6 --resampling cubic --tile-placement random "
        "--random-tiles 50 --unknown-cloud-cover clear --strict-rasters --column image_hash=phash".split()
    )
    config = config_from_args(args)
    assert (config.output_gsd, config.resampling, config.tile_placement, config.random_tiles) == (
        0.6,
        "cubic",
        "random",
        50,
    )
    assert config.unknown_cloud_cover_is_clear and config.strict_rasters and config.columns.image_hash == "phash"
    default = config_from_args(build_parser().parse_args("pairs build --photos p.csv --raster a.tif -o out".split()))
    assert default.output_gsd == 1.0 and not default.native_gsd and default.tile_placement == "photos"


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
    assert main([*base, "--raster", raster, "--gsd", "2", "--native-gsd"]) == 1
    assert "--native-gsd: native_gsd keeps each scene's own pixel size" in capsys.readouterr().err
    if not NAIP.is_dir():
        pytest.skip(f"real NAIP rasters not found at {NAIP} (../shared/data/naip-nd)")
    assert main([*base, "--raster", raster, "--no-progress"]) == 1
    assert "--column: photo table has no lat column" in capsys.readouterr().err
    columns = ["--column", "lat=y", "--column", "lon=x", "--crop-size", "32", "--footprint-size", "16"]
    assert main([*base, "--raster", raster, "--no-progress", *columns]) == 0
    assert main([*base, "--raster", raster, "--no-progress", *columns, "--seed", "1"]) == 1
    err = capsys.readouterr().err
    assert "--output: " in err and "made with different settings (config.seed 0 -> 1" in err
