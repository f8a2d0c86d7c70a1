"""Imagery discovery against a real STAC API on loopback (stac-fastapi-static) over COGs written with rio-cogeo
from the real NAIP rasters: NAIP newest scene, Sentinel-2 clear scene closest in time (scenes without a cloud value
counted apart), Planetary Computer signing against a loopback token endpoint, an unreachable endpoint, and the pair
builder reading the chosen scenes over HTTP range requests."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graft_hf.collect.config import ImageryConfig
from graft_hf.collect.imagery import StacUnreachableError, collect_imagery, sign_item_collection
from tests.helpers.data import shared_data
from tests.helpers.stac_server import StacServer, naip_cogs, naip_item, s2_cogs, s2_item, write_catalog

# Inside the NAIP rasters (about -99.185..-99.124 E, 47.004..47.036 N), one far outside.
PHOTOS = [("a", 47.020, -99.160, "2016-06-01T10:00:00"), ("b", 47.012, -99.150, "2017-03-01T10:00:00"),
          ("c", 47.025, -99.140, "2016-06-20T10:00:00"), ("far", 45.0, -100.0, "2016-06-01T10:00:00")]  # fmt: skip
S2_SCENES = [  # (id, datetime, cloud cover)
    ("s2-clear-early", "2016-05-01T17:00:00Z", 0.4),
    ("s2-unknown-close", "2016-06-03T17:00:00Z", None),
    ("s2-cloudy-closest", "2016-06-02T17:00:00Z", 35.0),
    ("s2-clear-late", "2017-02-20T17:00:00Z", 0.0),
]


def _photos(path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"photo_id": i, "lat": lat, "lon": lon, "time": t, "license": "CC-BY-2.0"} for i, lat, lon, t in PHOTOS]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


@pytest.fixture(scope="module")
def stac(tmp_path_factory):
    shared_data("naip-nd")
    root = tmp_path_factory.mktemp("stac")
    with StacServer(root) as server:
        naip = [naip_item(p, server.href(p)) for p in naip_cogs(root / "stac")]
        s2 = []
        for name, when, cloud in S2_SCENES:
            bands = s2_cogs(root / "stac", name)
            s2.append(s2_item(name, when, cloud, {band: server.href(p) for band, p in bands.items()}))
        blob = [{**item, "id": f"pc-{item['id']}", "assets": {"image": {**item["assets"]["image"],
                 "href": f"https://naipeuwest.blob.core.windows.net/naip/v002/nd/{item['id']}.tif"}}} for item in naip]  # fmt: skip
        write_catalog(root, {"naip": naip, "sentinel-2-l2a": s2, "naip-pc": blob})
        yield server


def _config(tmp_path, stac, **overrides) -> ImageryConfig:
    values = dict(photos=_photos(tmp_path / "photos.parquet"), output=str(tmp_path / "items.json"), endpoint=stac.url,
                  max_retries=0, progress=False)  # fmt: skip
    return ImageryConfig(**{**values, **overrides})


def test_naip_newest_scene_and_the_builder_reads_it_over_http(tmp_path, stac):
    from graft_hf.pairs.builder import build_pairs
    from graft_hf.pairs.config import PairsBuildConfig

    report = collect_imagery(_config(tmp_path, stac))
    items = json.loads((tmp_path / "items.json").read_text())["features"]
    assert [i["id"] for i in items] == ["m_4709963_se_14_1_20200831"]  # newest of 2010, 2014, 2020
    assert report["photos_with_scene"] == 3 and report["photos_without_scene"] == 1 and not report["signed"]
    assert report["scenes_seen"] == 3
    before = len(stac.log.ranges("20200831.tif"))
    result = build_pairs(PairsBuildConfig(photos=str(tmp_path / "photos.parquet"), catalog=str(tmp_path / "items.json"),
                                          output_dir=str(tmp_path / "pairs"), crop_size=64, footprint_size=32,
                                          progress=False))  # fmt: skip
    assert result["tiles"]["kept"] == 3
    tiles = pq.read_table(tmp_path / "pairs" / "data").to_pylist()
    assert {t["raster"] for t in tiles} == {items[0]["assets"]["image"]["href"]}
    assert len(stac.log.ranges("20200831.tif")) > before  # read by windows over HTTP range requests ...
    whole = [
        e for e in stac.log.requests if e["path"].endswith("20200831.tif") and e["method"] == "GET" and not e["range"]
    ]
    assert not whole  # ... never downloaded whole


def test_sentinel2_clear_scene_closest_in_time(tmp_path, stac):
    from graft_hf.pairs.builder import build_pairs
    from graft_hf.pairs.config import PairsBuildConfig

    config = _config(tmp_path, stac, sensor="sentinel2", time_window_days=400)
    report = collect_imagery(config)
    items = {i["id"]: i for i in json.loads((tmp_path / "items.json").read_text())["features"]}
    # a (June 2016) and c take the early clear scene, not the closer cloudy or cloud-less one; b (March 2017) the late
    assert set(items) == {"s2-clear-early", "s2-clear-late"}
    assert report["scenes_without_cloud_cover"] == 1 and report["scenes_cloudy"] == 1
    image = items["s2-clear-early"]["assets"]["image"]
    assert image["href"].endswith(".vrt") and [b["common_name"] for b in image["eo:bands"]] == [
        "red",
        "green",
        "blue",
        "nir",
    ]
    result = build_pairs(PairsBuildConfig(photos=str(tmp_path / "photos.parquet"), catalog=str(tmp_path / "items.json"),
                                          output_dir=str(tmp_path / "pairs"), sensor="sentinel2", crop_size=32,
                                          footprint_size=16, progress=False))  # fmt: skip
    assert result["tiles"]["kept"] == 3  # read through the VRT from the band COGs over HTTP
    assert stac.log.ranges("B04.tif")
    unknown = collect_imagery(_config(tmp_path / "u", stac, sensor="sentinel2", include_unknown_cloud=True))
    chosen = {i["id"] for i in json.loads((tmp_path / "u" / "items.json").read_text())["features"]}
    assert "s2-unknown-close" in chosen and unknown["photos_with_scene"] == 3


def test_planetary_computer_signing_against_a_loopback_token_endpoint(tmp_path, stac):
    sas = f"{stac.url}/api/sas/v1/token"
    config = _config(tmp_path, stac, collection="naip-pc", sign="always", sas_url=sas)
    report = collect_imagery(config)
    collection = json.loads((tmp_path / "items.json").read_text())
    href = collection["features"][0]["assets"]["image"]["href"]
    assert href.startswith("https://naipeuwest.blob.core.windows.net/naip/") and "&sig=t" in href and "sp=rl" in href
    assert report["signed"] and report["token_expiry"] == collection["graft:imagery"]["token_expiry"]
    tokens = stac.log.tokens
    resigned = sign_item_collection(tmp_path / "items.json", sas_url=sas)
    again = json.loads((tmp_path / "items.json").read_text())["features"][0]["assets"]["image"]["href"]
    assert resigned["assets"] == 1 and stac.log.tokens > tokens and again != href and again.count("?") == 1


def test_unreachable_endpoint_and_empty_results(tmp_path, stac):
    with pytest.raises(
        StacUnreachableError, match="cannot open the STAC API at http://127.0.0.1:9/.*check the endpoint"
    ):
        collect_imagery(_config(tmp_path, stac, endpoint="http://127.0.0.1:9/"))
    with pytest.raises(ValueError, match="no usable scene"):
        collect_imagery(_config(tmp_path, stac, collection="naip-pc", sensor="sentinel2"))
    assert not (tmp_path / "items.json").exists()
