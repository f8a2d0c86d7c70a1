"""The raster catalogue: which scenes exist, when they were taken, how cloudy they are and where they lie.

Three inputs are accepted, all normalised to a list of :class:`Scene`:

* a STAC ItemCollection (``.json``/``.geojson``, e.g. written by ``pystac-client ... --save items.json``): per
  item ``properties.datetime``, ``properties["eo:cloud_cover"]``, the geometry as footprint, and the asset
  ``image`` (NAIP convention) or else the first GeoTIFF asset with role ``data``;
* a CSV with columns ``path`` (or ``href``), ``datetime`` (or ``date``), optional ``cloud_cover`` (percent),
  optional ``footprint`` (WKT ``POLYGON`` in lon/lat, or ``minlon,minlat,maxlon,maxlat``), optional ``bands``
  (comma-separated band names of the file, in order) and optional ``crs`` (used only if the file has none);
* plain raster paths, dated by an 8-digit ``YYYYMMDD`` in the file name or the TIFF ``DATETIME`` tag.

Every scene's header is opened (one small read, also for remote COGs) for its CRS, transform, size and nodata.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .photos import parse_time

__all__ = ["Scene", "load_catalog", "points_in_polygon"]

logger = logging.getLogger(__name__)

_NAIP_BANDS = ("red", "green", "blue", "nir")
_DATE_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})(?!\d)")


@dataclass(frozen=True)
class Scene:
    """One raster scene (a single multi-band file).

    Attributes:
        href: Local path or URL, opened with rasterio (remote files are read by windows, never downloaded whole).
        datetime: Acquisition time, ISO 8601.
        epoch: Acquisition time in seconds since 1970 (UTC).
        cloud_cover: Catalogued cloud cover in percent, or ``None`` if unknown.
        crs: ``"EPSG:xxxx"`` or WKT.
        transform: Affine ``a, b, c, d, e, f`` (rasterio order) of the whole raster.
        width: Raster width in pixels.
        height: Raster height in pixels.
        band_names: Name of every band, in file order.
        nodata: The nodata value, or ``None``.
        footprint: Valid-data polygon as ``((lon, lat), ...)``, or ``None`` (the raster's bounds are used).
    """

    href: str
    datetime: str
    epoch: float
    cloud_cover: float | None
    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int
    band_names: tuple[str, ...]
    nodata: float | None
    footprint: tuple[tuple[float, float], ...] | None = None

    @property
    def gsd(self) -> float:
        """Ground sample distance in CRS units (metres for projected CRSs) per pixel."""
        return abs(self.transform[0])

    @property
    def date(self) -> str:
        """Acquisition date, ``YYYY-MM-DD``."""
        return self.datetime[:10]


def points_in_polygon(x: np.ndarray, y: np.ndarray, polygon: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Even-odd ray casting test.

    Args:
        x: Point x coordinates, shape ``(num_points,)``.
        y: Point y coordinates, shape ``(num_points,)``.
        polygon: Ring vertices ``((x, y), ...)`` (closing vertex optional).

    Returns:
        Boolean mask, shape ``(num_points,)``.
    """
    inside = np.zeros(x.shape, dtype=bool)
    vertices = list(polygon)
    for (x0, y0), (x1, y1) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < x_cross)
    return inside


def _parse_footprint(text: str | None) -> tuple[tuple[float, float], ...] | None:
    if text is None or not text.strip():
        return None
    text = text.strip()
    if text.upper().startswith("POLYGON"):
        ring = text[text.index("((") + 2 : text.index(")")]
        return tuple(tuple(float(v) for v in pair.split()[:2]) for pair in ring.split(","))  # type: ignore[misc]
    values = [float(v) for v in text.replace(";", ",").split(",")]
    if len(values) != 4:
        raise ValueError(f"footprint {text!r} is neither a WKT POLYGON nor 'minlon,minlat,maxlon,maxlat'")
    x0, y0, x1, y1 = values
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def _geojson_footprint(geometry: dict | None) -> tuple[tuple[float, float], ...] | None:
    if not geometry:
        return None
    if geometry.get("type") == "Polygon":
        return tuple((float(p[0]), float(p[1])) for p in geometry["coordinates"][0])
    if geometry.get("type") == "MultiPolygon" and len(geometry["coordinates"]) == 1:
        return tuple((float(p[0]), float(p[1])) for p in geometry["coordinates"][0][0])
    return None  # complex footprints fall back to the raster bounds


def _open_scene(
    href: str,
    when: object,
    cloud_cover: float | None,
    band_names: tuple[str, ...] | None,
    footprint: tuple[tuple[float, float], ...] | None,
    sensor: str,
    crs_override: str | None = None,
) -> Scene:
    import rasterio

    try:
        src = rasterio.open(href)
    except rasterio.errors.RasterioIOError as err:
        raise FileNotFoundError(f"cannot open raster {href}: {err}") from err
    with src:
        crs = src.crs.to_string() if src.crs is not None else crs_override
        if not crs:
            raise ValueError(
                f"raster {href} has no CRS, so photo geotags cannot be placed on it. Fix: assign the right one, "
                f"e.g. `rio edit-info --crs EPSG:26914 {href}` or `gdal_edit.py -a_srs EPSG:26914 {href}`, "
                "or give it in the catalogue CSV's `crs` column"
            )
        transform = tuple(src.transform)[:6]
        if transform[1] != 0 or transform[3] != 0:
            raise ValueError(f"raster {href} is rotated; warp it north-up first (gdalwarp {href} out.tif)")
        if src.tags().get("TIFFTAG_DATETIME") and when is None:
            tag = src.tags()["TIFFTAG_DATETIME"]
            when = tag[:10].replace(":", "-") + "T" + tag[11:] if len(tag) >= 19 else tag
        descriptions = tuple(d for d in src.descriptions if d)
        if band_names is None:
            if len(descriptions) == src.count:
                band_names = descriptions
            elif sensor == "naip":
                band_names = _NAIP_BANDS[: src.count] + tuple(f"band{i}" for i in range(5, src.count + 1))
            else:
                raise ValueError(
                    f"raster {href} has {src.count} bands without names; name them in the catalogue's `bands` column "
                    "(e.g. 'B02,B03,B04,B08') or in the file's band descriptions"
                )
        if len(band_names) != src.count:
            raise ValueError(f"raster {href} has {src.count} bands but {len(band_names)} band names {band_names}")
        width, height, nodata = src.width, src.height, src.nodata
    iso, epoch = parse_time(when)
    if iso is None or math.isnan(epoch):
        raise ValueError(
            f"raster {href} has no usable acquisition date ({when!r}); give it in the catalogue (`datetime` column or "
            "STAC properties.datetime) or put YYYYMMDD in the file name"
        )
    return Scene(
        href=href,
        datetime=iso,
        epoch=epoch,
        cloud_cover=cloud_cover,
        crs=crs,
        transform=transform,  # type: ignore[arg-type]
        width=width,
        height=height,
        band_names=tuple(band_names),
        nodata=None if nodata is None else float(nodata),
        footprint=footprint,
    )


def _resolve(href: str, base: Path) -> str:
    if "://" in href or href.startswith("/vsi") or Path(href).is_absolute():
        return href
    return str(base / href)


def _float_or_none(value: object) -> float | None:
    if value is None or value == "":
        return None
    return float(value)  # type: ignore[arg-type]


def _load_stac(path: Path, sensor: str) -> list[Scene]:
    collection = json.loads(path.read_text())
    features = collection.get("features") if isinstance(collection, dict) else None
    if features is None:
        raise ValueError(f"{path} is not a STAC ItemCollection (no 'features' list)")
    scenes = []
    for item in features:
        props = item.get("properties", {})
        assets = item.get("assets", {})
        asset = assets.get("image")
        if asset is None:
            asset = next(
                (
                    a
                    for a in assets.values()
                    if "data" in a.get("roles", ["data"]) and "tiff" in a.get("type", "image/tiff")
                ),
                None,
            )
        if asset is None:
            raise ValueError(f"STAC item {item.get('id')} in {path} has no 'image' asset and no GeoTIFF data asset")
        bands = asset.get("eo:bands") or props.get("eo:bands")
        band_names = tuple(b.get("common_name") or b["name"] for b in bands) if bands else None
        when = props.get("datetime") or props.get("start_datetime")
        scenes.append(
            _open_scene(
                _resolve(asset["href"], path.parent),
                when,
                _float_or_none(props.get("eo:cloud_cover")),
                band_names,
                _geojson_footprint(item.get("geometry")),
                sensor,
            )
        )
    return scenes


def _load_csv(path: Path, sensor: str) -> list[Scene]:
    scenes = []
    with path.open(newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            row = {k.strip().lower(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}
            href = row.get("path") or row.get("href")
            if not href:
                raise ValueError(f"{path} line {number}: no `path` (or `href`) value")
            bands = row.get("bands")
            scenes.append(
                _open_scene(
                    _resolve(href, path.parent),
                    row.get("datetime") or row.get("date") or None,
                    _float_or_none(row.get("cloud_cover")),
                    tuple(b.strip() for b in bands.split(",")) if bands else None,
                    _parse_footprint(row.get("footprint")),
                    sensor,
                    crs_override=row.get("crs") or None,
                )
            )
    return scenes


def load_catalog(catalog: str | None, rasters: tuple[str, ...] | list[str], sensor: str) -> list[Scene]:
    """Load the scenes of a build.

    Args:
        catalog: STAC ItemCollection or CSV catalogue path, or ``None``.
        rasters: Raster paths used when ``catalog`` is ``None``.
        sensor: ``"naip"`` or ``"sentinel2"`` (decides default band names).

    Returns:
        Scenes sorted by href (a stable order for deterministic tie-breaking).
    """
    if catalog is not None:
        path = Path(catalog)
        if not path.exists():
            raise FileNotFoundError(f"raster catalogue {path} not found")
        if path.suffix.lower() in (".json", ".geojson"):
            scenes = _load_stac(path, sensor)
        elif path.suffix.lower() == ".csv":
            scenes = _load_csv(path, sensor)
        else:
            raise ValueError(f"raster catalogue {path} must be a STAC ItemCollection (.json/.geojson) or a .csv")
    else:
        scenes = []
        for href in rasters:
            match = _DATE_IN_NAME.search(Path(href).name)
            when = f"{match[1]}-{match[2]}-{match[3]}" if match else None
            scenes.append(_open_scene(href, when, None, None, None, sensor))
    if not scenes:
        raise ValueError("the raster catalogue lists no scenes")
    hrefs = [s.href for s in scenes]
    if len(set(hrefs)) != len(hrefs):
        raise ValueError("the raster catalogue lists the same raster twice")
    logger.info("catalogue: %d scenes", len(scenes))
    return sorted(scenes, key=lambda s: s.href)
