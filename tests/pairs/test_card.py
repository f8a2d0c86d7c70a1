"""Pairs dataset cards: the licence block says what the data's licences allow, the header carries the task
categories and the shard features (photo images as ``image``), and reports of older builds still render.
"""

from __future__ import annotations

import copy

import pytest
from huggingface_hub import DatasetCard

from graft_hf.pairs.card import (
    dataset_licence,
    pairs_card_data,
    render_card,
    render_licence_file,
    render_summary_card,
)


def _report(sensor: str = "naip", licences: dict[str, int] | None = None) -> dict:
    return {
        "sensor": sensor,
        "seed": 0,
        "crop_size": 448,
        "footprint_size": 224,
        "gsd": [1.0],
        "source_gsd": [0.6],
        "resampling": "auto",
        "tile_placement": {"mode": "random", "target": 10, "drawn": 40, "placed": 9, "rejected": {"no_photos": 31}},
        "photos": {"read": 30, "kept": 20, "dropped": {"over_tile_cap": 10}},
        "tiles": {"sampled": 9, "kept": 9, "dropped": {}},
        "photo_rows": 20,
        "photo_images_not_stored": {"undecodable": 1},
        "photo_download_failed": 0,
        "shards": 1,
        "shard_bytes": 1000,
        "data_bytes": 4000,
        "scenes": {"listed": 3, "usable": 2, "skipped": {"cannot_open": 1}, "skip_errors": ["cannot open raster x"],
                   "clear": 2, "cloudy": 0, "no_cloud_cover": 2, "no_cloud_cover_used": True, "read_failed": {}},
        "acquisition_years": ["2021"],
        "licenses": licences if licences is not None else {"CC-BY-2.0": 20},
        "config": {"scene_choice": "auto", "max_photos_per_tile": 25, "max_cloud_cover": 1.0, "native_gsd": False,
                   "s2_rgb_max": 3000.0, "s2_offset": 0.0},
    }  # fmt: skip


def test_one_hub_licence_only_when_everything_allows_it() -> None:
    # NAIP (public domain) with every photo CC-BY-2.0: the dataset is CC-BY-2.0.
    assert dataset_licence(_report()) == ("cc-by-2.0", None, None)
    assert dataset_licence(_report(licences={"CC0-1.0": 3})) == ("cc0-1.0", None, None)
    # Mixed photo licences, or one the Hub has no id for, or photos without a licence: other, named and linked.
    mixed = dataset_licence(_report(licences={"CC-BY-2.0": 2, "CC0-1.0": 1}))
    assert mixed == ("other", "per-photo-licences", "LICENSE.md")
    assert dataset_licence(_report(licences={"CC-BY-SA-2.0": 4}))[0] == "other"
    assert dataset_licence(_report(licences={"unknown": 4}))[0] == "other"
    # Copernicus imagery has terms of its own.
    assert dataset_licence(_report("sentinel2")) == ("other", "copernicus-sentinel-data-and-cc-by-2.0", "LICENSE.md")


def test_licence_file_lists_imagery_and_photo_licences() -> None:
    text = render_licence_file(_report(licences={"CC-BY-2.0": 2, "unknown": 3}))
    assert "US public domain" in text and "| CC-BY-2.0 | cc-by-2.0 | 2 |" in text
    assert "3 photo(s) have no licence" in text
    assert "Copernicus Sentinel data" in render_licence_file(_report("sentinel2"))


def test_build_card_header_and_body() -> None:
    card = DatasetCard(render_card(_report(licences={"CC-BY-2.0": 2, "CC0-1.0": 1})))
    data = card.data
    assert (data.license, data.license_name, data.license_link) == ("other", "per-photo-licences", "LICENSE.md")
    assert data.task_categories == ["zero-shot-image-classification", "image-feature-extraction"]
    assert data.dataset_info["splits"] == [{"name": "train", "num_bytes": 4000, "num_examples": 9}]
    assert data.dataset_info["download_size"] == 1000
    assert data.configs[0]["data_files"][0]["path"] == "data/train-*.parquet"
    assert "Random-tile ablation (paper section 4.4)" in card.text and "9 of 10 wanted tiles" in card.text
    assert "warped to 1 m/px" in card.text and "scenes at 0.6 m/px" in card.text
    assert "undecodable 1" in card.text and "skipped: cannot_open 1" in card.text


def test_reports_of_older_builds_still_render() -> None:
    old = copy.deepcopy(_report())
    for key in ("source_gsd", "resampling", "tile_placement", "photo_images_not_stored", "shard_bytes", "data_bytes"):
        del old[key]
    old["scenes"] = 3
    del old["config"]["native_gsd"]
    old["gsd"] = [5.0]
    card = DatasetCard(render_card(old))
    assert "Crops keep each scene's own pixel grid (5 m/px)." in card.text
    assert "Tiles are centred on photo geotags" in card.text


def test_summary_card_has_features_and_optional_licence() -> None:
    card = DatasetCard(render_summary_card("T", "D", {"tiles": 1}, tags=("graft",), license="mit"))
    assert card.data.license == "mit" and card.data.configs
    photos = next(f for f in card.data.dataset_info["features"] if f["name"] == "photos")
    assert {"name": "image", "dtype": "image"} in photos["list"]
    with pytest.raises(ValueError, match="license_name and license_link"):
        pairs_card_data(tags=(), license="other")
