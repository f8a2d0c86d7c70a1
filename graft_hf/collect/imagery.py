"""``graft collect imagery``: the satellite or aerial scenes under a photo table, found through a STAC API and
written as the STAC ItemCollection ``graft pairs build --catalog`` reads.

Photos are grouped into search cells (``search_cell_degrees``); one ``pystac-client`` item search per cell covers
the cell's photos (the bounding box of its photos; for Sentinel-2, the photos' capture times +- a window). Each
photo then takes the scenes whose footprint contains it:

* NAIP: the newest scene (aerial, no cloud rule);
* Sentinel-2 L2A: the scene closest in time among those with a catalogued ``eo:cloud_cover`` below
  ``max_cloud_cover`` (1% by default). A scene without a cloud value is not "clear": it is counted apart
  (``scenes_without_cloud_cover``) and left out unless ``include_unknown_cloud`` is set.

The chosen scenes are written once each. The builder opens one multi-band raster per scene, the ``image`` asset:
NAIP items carry it (4-band RGBN COG); for Sentinel-2, whose bands are separate COGs, a GDAL VRT stacking B04, B03,
B02, B08 (10 m, one grid) is written beside the collection (``<stem>.vrt/<item id>.vrt``) and becomes the item's
``image`` asset; the band assets stay as they were.

Microsoft Planetary Computer is the default endpoint. Its assets need a SAS token: with ``sign`` (automatic for
that endpoint) every asset URL, VRTs included, is signed with ``planetary-computer`` (the token endpoint can be
changed with ``sas_url`` or ``PC_SDK_SAS_URL``; a subscription key in ``PC_SDK_SUBSCRIPTION_KEY`` is used, never
written). Tokens expire (``graft:token_expiry`` in the collection); re-sign an old collection with
:func:`sign_item_collection` (``graft collect sign``) right before building.
"""

from __future__ import annotations

import json
import logging
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import shapely
from shapely.geometry import shape
from tqdm.auto import tqdm

from graft_hf.extras import require
from graft_hf.io import atomic_write, write_json

from .config import ImageryConfig

__all__ = ["S2_BANDS", "collect_imagery", "sign_item_collection"]

logger = logging.getLogger(__name__)

#: Sentinel-2 bands stacked into the ``image`` VRT: (common name, asset keys tried in order: Planetary Computer's,
#: Earth Search's).
S2_BANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("red", ("B04", "red")),
    ("green", ("B03", "green")),
    ("blue", ("B02", "blue")),
    ("nir", ("B08", "nir")),
)
_BLOB = ".blob.core.windows.net"
_PC_HOST = "planetarycomputer.microsoft.com"


class StacUnreachableError(RuntimeError):
    """The STAC API could not be reached or answered with an error."""


# ---------------------------------------------------------------------------------------------------- searching
def _client(config: ImageryConfig):  # noqa: ANN202 - pystac_client.Client, imported lazily
    pystac_client = require("pystac_client", "collect", "searching imagery", package="pystac-client")
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry

    retry = Retry(
        total=config.max_retries,
        backoff_factor=1.0,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,  # STAC searches are POSTs; retrying them is safe (they are reads)
        respect_retry_after_header=True,
    )
    io = StacApiIO(timeout=config.timeout, max_retries=retry)
    try:
        return pystac_client.Client.open(config.endpoint, stac_io=io, timeout=config.timeout)
    except Exception as error:  # noqa: BLE001 - requests/pystac errors of every kind mean the same to the user
        raise StacUnreachableError(
            f"cannot open the STAC API at {config.endpoint} ({type(error).__name__}: {str(error)[:300]}); check the "
            "endpoint URL (default: the Planetary Computer, https://planetarycomputer.microsoft.com/api/stac/v1) "
            "and the network"
        ) from error


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cells(lon: np.ndarray, lat: np.ndarray, size: float) -> dict[tuple[int, int], np.ndarray]:
    keys = np.stack([np.floor(lon / size), np.floor(lat / size)], axis=1).astype(np.int64)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, (x, y) in enumerate(keys.tolist()):
        groups[(x, y)].append(index)
    return {key: np.asarray(members) for key, members in sorted(groups.items())}


def _search(client, config: ImageryConfig, bbox: list[float], when: str | None) -> list[dict]:  # noqa: ANN001
    try:
        search = client.search(collections=[config.collection_id], bbox=bbox, datetime=when, limit=500)
        return list(search.items_as_dicts())
    except Exception as error:  # noqa: BLE001
        raise StacUnreachableError(
            f"STAC search of {config.collection_id} at {config.endpoint} failed for bbox {bbox} ({type(error).__name__}: "
            f"{str(error)[:300]}); check the endpoint and collection, then rerun"
        ) from error


# ---------------------------------------------------------------------------------------------------- choosing
def _item_time(item: dict) -> float:
    props = item.get("properties", {})
    text = props.get("datetime") or props.get("start_datetime")
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp() if text else math.nan


def _choose(
    config: ImageryConfig, items: list[dict], lon: np.ndarray, lat: np.ndarray, times: np.ndarray, counts: Counter
) -> list[list[str]]:
    """Per photo, the ids of its chosen scenes (best first)."""
    footprints = [shape(item["geometry"]) if item.get("geometry") else None for item in items]
    cover = np.zeros((len(items), len(lon)), dtype=bool)
    for k, footprint in enumerate(footprints):
        if footprint is not None:
            shapely.prepare(footprint)
            cover[k] = shapely.intersects_xy(footprint, lon, lat)
    item_times = np.asarray([_item_time(item) for item in items], dtype=np.float64)
    cloud = [item.get("properties", {}).get("eo:cloud_cover") for item in items]
    usable = np.ones(len(items), dtype=bool)
    if config.sensor == "sentinel2":
        known = np.asarray([c is not None for c in cloud], dtype=bool)
        clear = np.asarray([c is not None and float(c) < config.max_cloud_cover for c in cloud], dtype=bool)
        usable = clear | (~known & config.include_unknown_cloud)
    chosen: list[list[str]] = []
    for p in range(len(lon)):
        candidates = np.flatnonzero(cover[:, p])
        if len(candidates) == 0:
            counts["photos_without_scene"] += 1
            chosen.append([])
            continue
        ok = candidates[usable[candidates]]
        if len(ok) == 0:
            counts["photos_without_clear_scene"] += 1
            chosen.append([])
            continue
        if config.sensor == "naip":
            order = ok[np.argsort(-item_times[ok], kind="stable")]
        elif math.isnan(times[p]):
            counts["photos_without_time"] += 1
            chosen.append([])
            continue
        else:
            order = ok[np.argsort(np.abs(item_times[ok] - times[p]), kind="stable")]
        chosen.append([items[k]["id"] for k in order[: config.scenes_per_photo]])
    return chosen


def _cloud_counts(items: dict[str, dict], config: ImageryConfig) -> dict[str, int]:
    cloud = [item.get("properties", {}).get("eo:cloud_cover") for item in items.values()]
    return {
        "scenes_seen": len(items),
        "scenes_without_cloud_cover": sum(c is None for c in cloud),
        "scenes_cloudy": sum(c is not None and float(c) >= config.max_cloud_cover for c in cloud),
    }


# ---------------------------------------------------------------------------------------------------- signing
def _should_sign(config: ImageryConfig) -> bool:
    if config.sign == "auto":
        return urlparse(config.endpoint).netloc.endswith(_PC_HOST)
    return config.sign == "always"


def _unsigned(href: str) -> str:
    """An Azure Blob URL without its SAS token (so it can be signed afresh)."""
    parsed = urlparse(href)
    if parsed.netloc.endswith(_BLOB) and parsed.query and {"se", "sig"} & set(parse_qs(parsed.query)):
        return parsed._replace(query="").geturl()
    return href


def _signer(sas_url: str | None):  # noqa: ANN202 - Callable[[str], str]
    planetary_computer = require(
        "planetary_computer", "collect", "signing Planetary Computer URLs", "planetary-computer"
    )
    if sas_url:
        planetary_computer.settings.Settings.get().sas_url = sas_url.rstrip("/")

    def sign(href: str) -> str:
        try:
            return planetary_computer.sign(_unsigned(href))
        except Exception as error:  # noqa: BLE001 - requests/pydantic errors from the token endpoint
            endpoint = planetary_computer.settings.Settings.get().sas_url
            raise StacUnreachableError(
                f"could not get a Planetary Computer SAS token from {endpoint} for {urlparse(href).netloc} "
                f"({type(error).__name__}: {str(error)[:200]}); check sas_url / PC_SDK_SAS_URL and the network"
            ) from error

    return sign


def _expiry(href: str) -> str | None:
    values = parse_qs(urlparse(href).query).get("se")
    return values[0] if values else None


# ---------------------------------------------------------------------------------------------------- S2 stacking
def _vrt_href(href: str) -> str:
    return f"/vsicurl/{href}" if href.startswith(("http://", "https://")) else href


def _s2_vrt(item: dict, sign) -> tuple[str, list[dict]]:  # noqa: ANN001
    """A GDAL VRT stacking the item's 10 m bands (red, green, blue, nir) and their ``eo:bands`` entries."""
    import rasterio

    assets = item.get("assets", {})
    sources = []
    for common, keys in S2_BANDS:
        key = next((k for k in keys if k in assets), None)
        if key is None:
            raise ValueError(f"Sentinel-2 item {item.get('id')} has no {common} band asset (looked for {keys})")
        sources.append((common, key, sign(assets[key]["href"])))
    with rasterio.open(sources[0][2]) as src:  # one header read: grid, CRS, type, nodata
        width, height, transform, crs = src.width, src.height, src.transform, src.crs
        dtype, nodata = src.dtypes[0], src.nodata
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS").text = crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(v) for v in transform.to_gdal())
    gdal_type = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32"}.get(dtype, "UInt16")
    for index, (common, _key, href) in enumerate(sources, start=1):
        band = ET.SubElement(root, "VRTRasterBand", dataType=gdal_type, band=str(index))
        ET.SubElement(band, "Description").text = common
        if nodata is not None:
            ET.SubElement(band, "NoDataValue").text = repr(float(nodata))
        source = ET.SubElement(band, "SimpleSource")
        ET.SubElement(source, "SourceFilename", relativeToVRT="0").text = _vrt_href(href)
        ET.SubElement(source, "SourceBand").text = "1"
    bands = [{"name": key, "common_name": common} for common, key, _ in sources]
    return ET.tostring(root, encoding="unicode"), bands


def _prepare(items: list[dict], config: ImageryConfig, output: Path, sign) -> list[dict]:  # noqa: ANN001
    """Signed items; Sentinel-2 items get their ``image`` VRT asset."""
    vrt_dir = output.with_name(f"{output.stem}.vrt")
    prepared = []
    for item in tqdm(items, desc="scenes", unit=" scenes", disable=not config.progress):
        item = json.loads(json.dumps(item))  # a copy
        for asset in item.get("assets", {}).values():
            if "href" in asset:
                asset["href"] = sign(asset["href"])
        if config.sensor == "sentinel2":
            text, bands = _s2_vrt(item, lambda href: href)  # hrefs were signed above
            path = vrt_dir / f"{re.sub(r'[^A-Za-z0-9._-]', '_', item['id'])}.vrt"
            atomic_write(path, text)
            item["assets"]["image"] = {
                "href": f"{vrt_dir.name}/{path.name}",
                "type": "application/x-ogc-vrt+xml",
                "roles": ["data"],
                "title": "10 m bands B04, B03, B02, B08 stacked (GDAL VRT written by graft collect imagery)",
                "eo:bands": bands,
            }
        prepared.append(item)
    return prepared


def collect_imagery(config: ImageryConfig) -> dict:
    """Find the scenes under the photos and write the ItemCollection (see the module docstring).

    Args:
        config: What to search and where.

    Returns:
        The report (also written as ``<stem>.report.json`` beside ``output``).

    Raises:
        StacUnreachableError: The STAC API (or the token endpoint) cannot be reached; nothing is written.
        ValueError: No photo has a usable scene (the report names the counts).
    """
    from graft_hf.pairs.photos import load_photos

    photos = load_photos(config.photos)
    lon, lat, times = photos.lon, photos.lat, photos.time_epoch
    client = _client(config)
    counts: Counter = Counter()
    items: dict[str, dict] = {}
    per_photo: list[list[str]] = [[] for _ in range(len(lon))]
    window = config.time_window_days * 86400.0
    for members in tqdm(
        _cells(lon, lat, config.search_cell_degrees).values(), desc="STAC cells", disable=not config.progress
    ):
        bbox = [
            lon[members].min() - 1e-5,
            lat[members].min() - 1e-5,
            lon[members].max() + 1e-5,
            lat[members].max() + 1e-5,
        ]
        when = None
        if config.sensor == "sentinel2":
            known = times[members][~np.isnan(times[members])]
            if len(known) == 0:
                counts["photos_without_time"] += len(members)
                continue
            when = f"{_iso(known.min() - window)}/{_iso(known.max() + window)}"
        found = _search(client, config, [float(v) for v in bbox], when)
        counts["searches"] += 1
        items.update((item["id"], item) for item in found)
        for index, scenes in zip(members, _choose(config, found, lon[members], lat[members], times[members], counts)):
            per_photo[index] = scenes
    selected = sorted({scene for scenes in per_photo for scene in scenes})
    output = Path(config.output)
    signing = _should_sign(config)
    sign = _signer(config.sas_url) if signing else (lambda href: href)
    features = _prepare([items[i] for i in selected], config, output, sign)
    expiries = sorted(e for f in features for a in f.get("assets", {}).values() if (e := _expiry(a.get("href", ""))))
    report = {
        "endpoint": config.endpoint,
        "collection": config.collection_id,
        "sensor": config.sensor,
        "photos": len(lon),
        "photos_with_scene": sum(bool(s) for s in per_photo),
        **{k: counts.get(k, 0) for k in ("photos_without_scene", "photos_without_clear_scene", "photos_without_time")},
        **_cloud_counts(items, config),
        "scenes_selected": len(features),
        "searches": counts["searches"],
        "signed": signing,
        "token_expiry": expiries[0] if expiries else None,
        "max_cloud_cover": config.max_cloud_cover if config.sensor == "sentinel2" else None,
        "include_unknown_cloud": config.include_unknown_cloud,
    }
    write_json(output.with_name(f"{output.stem}.report.json"), report)
    if not features:
        raise ValueError(
            f"no usable scene under any of the {len(lon)} photos in {config.collection_id} at {config.endpoint} "
            f"({report}); check the collection, the region, or for Sentinel-2 raise max_cloud_cover / "
            "time_window_days or set include_unknown_cloud"
        )
    collection = {"type": "FeatureCollection", "features": features, "graft:imagery": report}
    atomic_write(output, json.dumps(collection, indent=1))
    logger.info(
        "wrote %s: %d scenes under %d of %d photos", output, len(features), report["photos_with_scene"], len(lon)
    )
    return report


def sign_item_collection(path: str | Path, sas_url: str | None = None) -> dict:
    """Re-sign every Planetary Computer URL of a collection written by :func:`collect_imagery` (its VRTs too), in
    place, with fresh SAS tokens.

    Args:
        path: The ItemCollection.
        sas_url: Token endpoint (default ``PC_SDK_SAS_URL`` or the public one).

    Returns:
        ``{"assets": signed asset count, "vrts": rewritten VRT count, "token_expiry": earliest expiry}``.
    """
    path = Path(path)
    collection = json.loads(path.read_text(encoding="utf-8"))
    sign = _signer(sas_url)
    assets = vrts = 0
    for item in collection.get("features", []):
        for asset in item.get("assets", {}).values():
            href = asset.get("href", "")
            if href.endswith(".vrt") and "://" not in href:
                vrt = path.parent / href
                text = vrt.read_text(encoding="utf-8")
                pattern = re.compile(r"(/vsicurl/)(https?://[^<]+)")
                atomic_write(
                    vrt, pattern.sub(lambda m: m[1] + sign(m[2].replace("&amp;", "&")).replace("&", "&amp;"), text)
                )
                vrts += 1
            elif href.startswith("http"):
                asset["href"] = sign(href)
                assets += 1
    expiries = sorted(
        e for f in collection["features"] for a in f.get("assets", {}).values() if (e := _expiry(a.get("href", "")))
    )
    collection.setdefault("graft:imagery", {})["token_expiry"] = expiries[0] if expiries else None
    atomic_write(path, json.dumps(collection, indent=1))
    return {"assets": assets, "vrts": vrts, "token_expiry": expiries[0] if expiries else None}
