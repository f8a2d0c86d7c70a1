"""The NAIP-OSM builder on a real NAIP crop and an OSM extract in XML and PBF (tests/helpers/osm.py)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("osmium")

from graft_hf.config import ConfigError  # noqa: E402
from graft_hf.evaluation.naip_osm import (  # noqa: E402
    DEFAULT_TAG_CLASSES,
    NaipOsmConfig,
    TagRule,
    build_naip_osm,
    load_tag_classes,
    read_osm_features,
)
from tests.helpers.osm import EXPECTED_LABELS, TILE, to_pbf, write_naip_crop, write_osm_extract  # noqa: E402


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("naip-osm")
    raster = write_naip_crop(root / "crop.tif")
    xml = write_osm_extract(raster, root / "extract.osm")
    return {"raster": raster, "xml": xml, "pbf": to_pbf(xml, root / "extract.osm.pbf"), "root": root}


def test_tag_rules_parse_and_match():
    assert TagRule.parse("landuse=farmland").matches({"landuse": "farmland"})
    assert not TagRule.parse("landuse=farmland").matches({"landuse": "forest"})
    assert TagRule.parse("building").matches({"building": "house"}) and TagRule.parse("building=*").value is None
    with pytest.raises(ValueError, match="has no key"):
        TagRule.parse("=yes")


def test_mappings_come_from_yaml_json_or_the_defaults(tmp_path):
    assert set(load_tag_classes()) == set(DEFAULT_TAG_CLASSES)
    (tmp_path / "classes.yaml").write_text(
        "crops:\n  - landuse=farmland\n  - landuse=orchard\nwater: [natural=water]\n"
    )
    loaded = load_tag_classes(tmp_path / "classes.yaml")
    assert loaded["crops"] == (TagRule("landuse", "farmland"), TagRule("landuse", "orchard"))
    (tmp_path / "bad.json").write_text(json.dumps({"crops": "landuse=farmland"}))
    with pytest.raises(ValueError, match="class 'crops': give a non-empty list"):
        load_tag_classes(tmp_path / "bad.json")


@pytest.mark.parametrize("fmt", ["xml", "pbf"])
def test_osm_features_by_geometry_type(inputs, fmt):
    features = read_osm_features(inputs[fmt], load_tag_classes())
    assert {k: len(v) for k, v in features.areas.items()} == {"farmland": 1, "building": 1, "lake": 1}
    assert {k: len(v) for k, v in features.lines.items()} == {"road": 1}  # closed ways are areas only
    assert {k: len(v) for k, v in features.points.items()} == {"storage tank": 1}
    lake = features.areas["lake"][0]
    assert len(lake.geoms[0].interiors) == 1  # the multipolygon relation keeps its island


@pytest.mark.parametrize("fmt", ["xml", "pbf"])
def test_build_labels_every_tile_by_the_documented_rules(inputs, tmp_path, fmt):
    from datasets import load_dataset

    out = tmp_path / "naip-osm"
    config = NaipOsmConfig(
        rasters=[str(inputs["raster"])], osm=str(inputs[fmt]), output_dir=str(out), tile_size=TILE, progress=False
    )
    summary = build_naip_osm(config)
    assert summary["tiles"] == 6 and summary["skipped"] == {"no class present": 2}
    rows = load_dataset(str(out), split="test")
    labels = {(r["row_off"], r["col_off"]): r["labels"] for r in rows}
    assert labels == EXPECTED_LABELS
    assert rows[0]["image"].size == (TILE, TILE) and -100 < rows[0]["lon"] < -96 and 46 < rows[0]["lat"] < 48
    assert summary["images_per_class"]["road"] == 2
    assert "farmland" in json.loads((out / "tag_classes.json").read_text())
    assert "license: odbl" in (out / "README.md").read_text()


def test_thresholds_and_unlabelled_tiles_are_configurable(inputs, tmp_path):
    config = NaipOsmConfig(
        rasters=[str(inputs["raster"])], osm=str(inputs["xml"]), output_dir=str(tmp_path / "a"), tile_size=TILE,
        min_area_fraction=0.005, min_line_fraction=0.05, keep_unlabelled=True, progress=False,
    )  # fmt: skip
    build_naip_osm(config)
    from datasets import load_dataset

    labels = {(r["row_off"], r["col_off"]): r["labels"] for r in load_dataset(str(tmp_path / "a"), split="test")}
    assert labels[(0, 32)] == ["building", "farmland"] and labels[(32, 64)] == ["lake", "road"]
    assert labels[(0, 96)] == [] and len(labels) == 8


def test_the_built_dataset_is_a_multilabel_eval_dataset(inputs, tmp_path):
    from graft_hf.evaluation.datasets import load_eval_dataset

    out = tmp_path / "naip-osm"
    build_naip_osm(
        NaipOsmConfig(rasters=[str(inputs["raster"])], osm=str(inputs["xml"]), output_dir=str(out), tile_size=TILE,
                      progress=False)
    )  # fmt: skip
    data = load_eval_dataset(out, split="test")
    assert data.multilabel and set(data.class_names) == {"farmland", "building", "storage tank", "road", "lake"}


def test_bad_inputs_name_the_parameter(inputs, tmp_path):
    with pytest.raises(ConfigError, match="tile_size"):
        NaipOsmConfig(rasters=[str(inputs["raster"])], osm="x.osm", output_dir=str(tmp_path), tile_size=0)
    with pytest.raises(ConfigError, match="rasters"):
        build_naip_osm(NaipOsmConfig(rasters=[str(tmp_path / "no.tif")], osm="x.osm", output_dir=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="OSM extract"):
        build_naip_osm(NaipOsmConfig(rasters=[str(inputs["raster"])], osm=str(tmp_path / "none.osm.pbf"),
                                     output_dir=str(tmp_path)))  # fmt: skip
