"""`graft build-naip-osm` on a real NAIP crop and an OSM PBF, then `graft eval` on the benchmark it wrote."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("osmium")

from graft_hf_cli import main as graft_main  # noqa: E402
from tests.helpers.osm import TILE, to_pbf, write_naip_crop, write_osm_extract  # noqa: E402


def test_build_then_eval_the_multilabel_benchmark(model_dir, tmp_path, capsys):
    raster = write_naip_crop(tmp_path / "crop.tif")
    pbf = to_pbf(write_osm_extract(raster, tmp_path / "extract.osm"), tmp_path / "extract.osm.pbf")
    (tmp_path / "classes.yaml").write_text("crops: [landuse=farmland]\nroads: [highway]\nwater: [natural=water]\n")
    out = tmp_path / "bench"
    argv = ["build-naip-osm", "--raster", str(raster), "--osm", str(pbf), "--tile-size", str(TILE)]
    assert graft_main([*argv, "--tag-classes", str(tmp_path / "classes.yaml"), "--no-progress", "-o", str(out)]) == 0
    assert "wrote 5 tiles" in capsys.readouterr().out  # crops, 3 roads (the footway too: any highway), water
    assert json.loads((out / "tag_classes.json").read_text())["roads"] == ["highway=*"]
    report = tmp_path / "report"
    assert graft_main(["eval", "--model", str(model_dir), "--data", str(out), "--no-progress", "-o", str(report)]) == 0
    results = json.loads((report / "results.json").read_text())
    assert results["dataset"]["multilabel"] and set(results["class_names"]) == {"crops", "roads", "water"}


def test_build_errors_name_the_flag(tmp_path, capsys):
    argv = ["build-naip-osm", "--raster", str(tmp_path / "none.tif"), "--osm", "x.osm", "-o", str(tmp_path / "o")]
    assert graft_main(argv) == 1
    assert "--raster" in capsys.readouterr().err
    assert graft_main([*argv, "--tile-size", "0"]) == 1
    assert "--tile-size" in capsys.readouterr().err
