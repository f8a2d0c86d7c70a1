"""The raster catalogue: which scenes exist, when they were taken, how cloudy they are and where they lie.

Three inputs are accepted, all normalised to a list of :class:`Scene`:

* a STAC ItemCollection (``.json``/``.geojson``, e.g. written by ``pystac-client ... --save items.json``): per
  item ``properties.datetime``, ``properties["eo:cloud_cover"]``, the geometry as footprint, and the asset
  ``image`` (NAIP convention) or else the first GeoTIFF asset with role ``data``;
* a CSV with columns ``path`` (or ``href``), ``datetime`` (or ``date``), optional ``cloud_cover`` (percent),
  optional ``footprint`` (WKT ``POLYGON`` or ``MULTIPOLYGON`` in lon/lat, holes included, or
  ``minlon,minlat,maxlon,maxlat``), optional ``bands`` (comma-separated band names of the file, in order) and
  optional ``crs`` (used only if the file has none);
* plain raster paths, dated by an 8-digit ``YYYYMMDD`` in the file name or the TIFF ``DATETIME`` tag.

Every scene's header is opened (one small read, also for remote COGs) for its CRS, affine transform (rotated
rasters included), size and nodata. Footprints are shapely geometries; photos are tested against them with
``shapely.contains_xy``.

A scene that cannot be used (missing or corrupt file, no CRS, no date, band names that do not match, a bad
footprint) is a bad record: :func:`read_catalog` skips it and counts it by reason (or raises, with ``strict``);
a catalogue left with no usable scene is an error naming the reasons.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.io import DatasetReader
from shapely.geometry import MultiPolygon, Polygon, shape

from graft_hf.modeling import get_sensor

from .photos import parse_time

__all__ = [
    "Catalogue",
    "Footprint",
    "Scene",
    "SceneError",
    "load_catalog",
    "parse_footprint",
    "points_in_polygon",
    "read_catalog",
]

logger = logging.getLogger(__name__)

_DATE_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})(?!\d)")

#: A scene's valid-data area in WGS84 lon/lat: a polygon (holes allowed) or a multipolygon.
Footprint = Polygon | MultiPolygon
#: Messages of skipped scenes kept for the report (the counts cover every one).
_MAX_ERRORS = 20


class SceneError(ValueError):
    """A catalogue scene that cannot be used.

    Attributes:
        reason: Its skip-count key: ``cannot_open``, ``no_crs``, ``no_date``, ``band_names`` or ``bad_footprint``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Scene:
    """One raster scene (a single multi-band file).

    Attributes:
        href: Local path or URL, opened with rasterio (remote files are read by windows, never downloaded whole).
        datetime: Acquisition time, ISO 8601.
        epoch: Acquisition time in seconds since 1970 (UTC).
        cloud_cover: Catalogued cloud cover in percent, or ``None`` if unknown.
        crs: ``"EPSG:xxxx"`` or WKT.
        transform: Affine transform of the whole raster (pixel ``(col, row)`` to CRS ``(x, y)``); any 6-sequence
            ``a, b, c, d, e, f`` (rasterio order) is accepted and converted.
        width: Raster width in pixels.
        height: Raster height in pixels.
        band_names: Name of every band, in file order.
        nodata: The nodata value, or ``None``.
        footprint: Valid-data area in lon/lat, or ``None`` (the raster's extent is used). A ring of ``(lon, lat)``
            vertices is accepted and converted to a polygon.
    """

    href: str
    datetime: str
    epoch: float
    cloud_cover: float | None
    crs: str
    transform: Affine
    width: int
    height: int
    band_names: tuple[str, ...]
    nodata: float | None
    footprint: Footprint | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.transform, Affine):
            object.__setattr__(self, "transform", Affine(*(float(v) for v in tuple(self.transform)[:6])))
        if self.footprint is not None and not isinstance(self.footprint, (Polygon, MultiPolygon)):
            object.__setattr__(self, "footprint", Polygon(self.footprint))

    @property
    def gsd(self) -> float:
        """Ground sample distance in CRS units (metres for projected CRSs) per pixel: the length of a pixel's side
        along the raster rows (``|a|`` for a north-up raster)."""
        return math.hypot(self.transform.a, self.transform.d)

    @property
    def date(self) -> str:
        """Acquisition date, ``YYYY-MM-DD``."""
        return self.datetime[:10]


def points_in_polygon(x: np.ndarray, y: np.ndarray, polygon: Footprint | tuple[tuple[float, float], ...]) -> np.ndarray:
    """Which points lie inside a polygon (holes and multi-part polygons included), vectorised by shapely.

    Args:
        x: Point x coordinates, shape ``(num_points,)``.
        y: Point y coordinates, shape ``(num_points,)``.
        polygon: A shapely polygon or multipolygon, or a ring of ``(x, y)`` vertices (closing vertex optional).

    Returns:
        Boolean mask, shape ``(num_points,)``; points on the boundary count as outside.
    """
    geometry = polygon if isinstance(polygon, (Polygon, MultiPolygon)) else Polygon(polygon)
    shapely.prepare(geometry)
    return shapely.contains_xy(geometry, np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))


def _polygonal(geometry: shapely.Geometry) -> Footprint | None:
    """The polygonal part of a geometry (repaired first if invalid), or ``None`` when it has none."""
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    if isinstance(geometry, (Polygon, MultiPolygon)):
        return None if geometry.is_empty else geometry
    parts = [g for g in getattr(geometry, "geoms", ()) if isinstance(g, (Polygon, MultiPolygon))]
    return _polygonal(shapely.union_all(parts)) if parts else None


def parse_footprint(text: str | None) -> Footprint | None:
    """A catalogue CSV's ``footprint``: WKT ``POLYGON``/``MULTIPOLYGON`` (holes kept) or ``minlon,minlat,maxlon,maxlat``.

    Args:
        text: The cell, or ``None``/empty for no footprint.

    Returns:
        The footprint, or ``None``.

    Raises:
        ValueError: Neither a polygonal WKT nor four comma-separated numbers.
    """
    if text is None or not text.strip():
        return None
    text = text.strip()
    if text[0].isalpha():
        try:
            footprint = _polygonal(shapely.from_wkt(text))
        except shapely.errors.GEOSException as error:
            raise ValueError(f"footprint {text!r} is not valid WKT ({error})") from error
        if footprint is None:
            raise ValueError(f"footprint {text!r} is not a POLYGON or MULTIPOLYGON")
        return footprint
    values = [float(v) for v in text.replace(";", ",").split(",")]
    if len(values) != 4:
        raise ValueError(f"footprint {text!r} is neither WKT (MULTI)POLYGON nor 'minlon,minlat,maxlon,maxlat'")
    return shapely.box(*values)


def _geojson_footprint(geometry: dict | None) -> Footprint | None:
    """A STAC item's geometry as footprint; non-polygonal geometries fall back to the raster's extent."""
    if not geometry:
        return None
    return _polygonal(shape(geometry))


def _crs(src: DatasetReader, href: str, crs_override: str | None) -> str:
    crs = src.crs.to_string() if src.crs is not None else crs_override
    if not crs:
        raise SceneError(
            "no_crs",
            f"raster {href} has no CRS, so photo geotags cannot be placed on it. Fix: assign the right one, "
            f"e.g. `rio edit-info --crs EPSG:26914 {href}` or `gdal_edit.py -a_srs EPSG:26914 {href}`, "
            "or give it in the catalogue CSV's `crs` column",
        )
    return crs


def _tiff_time(src: DatasetReader) -> str | None:
    """The TIFF ``DATETIME`` tag (``YYYY:MM:DD HH:MM:SS``) as ISO 8601, or ``None``."""
    tag = src.tags().get("TIFFTAG_DATETIME")
    if not tag:
        return None
    return tag[:10].replace(":", "-") + "T" + tag[11:] if len(tag) >= 19 else tag


def _band_names(src: DatasetReader, href: str, band_names: tuple[str, ...] | None, sensor: str) -> tuple[str, ...]:
    """Catalogue names, else the file's band descriptions, else the sensor's names for sensors whose RGB bands are
    found by position (NAIP: red, green, blue, nir, then ``band5``...)."""
    if band_names is None:
        descriptions = tuple(d for d in src.descriptions if d)
        spec = get_sensor(sensor)
        if len(descriptions) == src.count:
            band_names = descriptions
        elif spec.rgb_aliases is None:
            band_names = spec.band_names[: src.count] + tuple(
                f"band{i}" for i in range(len(spec.band_names) + 1, src.count + 1)
            )
        else:
            raise SceneError(
                "band_names",
                f"raster {href} has {src.count} bands without names; name them in the catalogue's `bands` column "
                "(e.g. 'B02,B03,B04,B08') or in the file's band descriptions",
            )
    if len(band_names) != src.count:
        raise SceneError(
            "band_names", f"raster {href} has {src.count} bands but {len(band_names)} band names {band_names}"
        )
    return tuple(band_names)


def _open_scene(
    href: str,
    when: object,
    cloud_cover: float | None,
    band_names: tuple[str, ...] | None,
    footprint: Footprint | None,
    sensor: str,
    crs_override: str | None = None,
) -> Scene:
    try:
        src = rasterio.open(href)
    except rasterio.errors.RasterioIOError as err:
        raise SceneError("cannot_open", f"cannot open raster {href}: {err}") from err
    with src:
        crs = _crs(src, href, crs_override)
        when = when if when is not None else _tiff_time(src)
        names = _band_names(src, href, band_names, sensor)
        transform, width, height, nodata = src.transform, src.width, src.height, src.nodata
    iso, epoch = parse_time(when)
    if iso is None or math.isnan(epoch):
        raise SceneError(
            "no_date",
            f"raster {href} has no usable acquisition date ({when!r}); give it in the catalogue (`datetime` column or "
            "STAC properties.datetime) or put YYYYMMDD in the file name",
        )
    return Scene(
        href=href,
        datetime=iso,
        epoch=epoch,
        cloud_cover=cloud_cover,
        crs=crs,
        transform=transform,
        width=width,
        height=height,
        band_names=names,
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


#: A scene still to open: its href and the call that opens it (raising :class:`SceneError` when it is unusable).
_Entry = tuple[str, Callable[[], Scene]]


def _stac_entries(path: Path, sensor: str) -> list[_Entry]:
    collection = json.loads(path.read_text())
    features = collection.get("features") if isinstance(collection, dict) else None
    if features is None:
        raise ValueError(f"{path} is not a STAC ItemCollection (no 'features' list)")
    entries: list[_Entry] = []
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
        href = _resolve(asset["href"], path.absolute().parent)
        entries.append(
            (
                href,
                functools.partial(
                    _open_scene,
                    href,
                    props.get("datetime") or props.get("start_datetime"),
                    _float_or_none(props.get("eo:cloud_cover")),
                    tuple(b.get("common_name") or b["name"] for b in bands) if bands else None,
                    _geojson_footprint(item.get("geometry")),
                    sensor,
                ),
            )
        )
    return entries


def _csv_footprint(text: str | None) -> Footprint | None:
    try:
        return parse_footprint(text)
    except ValueError as error:
        raise SceneError("bad_footprint", str(error)) from error


def _open_csv_row(row: dict[str, str], href: str, sensor: str) -> Scene:
    bands = row.get("bands")
    return _open_scene(
        href,
        row.get("datetime") or row.get("date") or None,
        _float_or_none(row.get("cloud_cover")),
        tuple(b.strip() for b in bands.split(",")) if bands else None,
        _csv_footprint(row.get("footprint")),
        sensor,
        crs_override=row.get("crs") or None,
    )


def _csv_entries(path: Path, sensor: str) -> list[_Entry]:
    entries: list[_Entry] = []
    with path.open(newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            row = {k.strip().lower(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}
            href = row.get("path") or row.get("href")
            if not href:
                raise ValueError(f"{path} line {number}: no `path` (or `href`) value")
            href = _resolve(href, path.absolute().parent)
            entries.append((href, functools.partial(_open_csv_row, row, href, sensor)))
    return entries


def _raster_entries(rasters: tuple[str, ...] | list[str], sensor: str) -> list[_Entry]:
    entries: list[_Entry] = []
    for href in rasters:
        match = _DATE_IN_NAME.search(Path(href).name)
        when = f"{match[1]}-{match[2]}-{match[3]}" if match else None
        entries.append((href, functools.partial(_open_scene, href, when, None, None, None, sensor)))
    return entries


@dataclass
class Catalogue:
    """The usable scenes of a catalogue and what was skipped.

    Attributes:
        scenes: Usable scenes sorted by href (a stable order for deterministic tie-breaking).
        listed: Scenes the catalogue (or the raster list) names.
        skipped: Skipped scenes by reason (see :class:`SceneError`; ``duplicate_href`` for a raster listed twice).
        errors: The first messages of the skipped scenes (each names its file).
    """

    scenes: list[Scene]
    listed: int
    skipped: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def _entries(catalog: str | None, rasters: tuple[str, ...] | list[str], sensor: str) -> list[_Entry]:
    if catalog is None:
        return _raster_entries(rasters, sensor)
    path = Path(catalog)
    if not path.exists():
        raise FileNotFoundError(f"raster catalogue {path} not found")
    if path.suffix.lower() in (".json", ".geojson"):
        return _stac_entries(path, sensor)
    if path.suffix.lower() == ".csv":
        return _csv_entries(path, sensor)
    raise ValueError(f"raster catalogue {path} must be a STAC ItemCollection (.json/.geojson) or a .csv")


def read_catalog(
    catalog: str | None, rasters: tuple[str, ...] | list[str], sensor: str, strict: bool = False
) -> Catalogue:
    """Open every scene of a build, skipping (and counting) the unusable ones.

    Args:
        catalog: STAC ItemCollection or CSV catalogue path, or ``None``.
        rasters: Raster paths used when ``catalog`` is ``None``.
        sensor: ``"naip"`` or ``"sentinel2"`` (decides default band names).
        strict: Raise the first :class:`SceneError` instead of skipping.

    Returns:
        The catalogue.

    Raises:
        SceneError: With ``strict``, the first unusable scene (naming its file and the fix).
        ValueError: The catalogue itself is malformed, lists no scene, or none of its scenes is usable.
    """
    entries = _entries(catalog, rasters, sensor)
    if not entries:
        raise ValueError("the raster catalogue lists no scenes")
    result = Catalogue(scenes=[], listed=len(entries))
    seen: set[str] = set()
    for href, open_scene in entries:
        if href in seen:
            if strict:
                raise SceneError("duplicate_href", f"the raster catalogue lists {href} twice")
            result.skipped["duplicate_href"] += 1
            continue
        seen.add(href)
        try:
            result.scenes.append(open_scene())
        except SceneError as error:
            if strict:
                raise
            result.skipped[error.reason] += 1
            if len(result.errors) < _MAX_ERRORS:
                result.errors.append(str(error))
            logger.warning("skipping scene (%s): %s", error.reason, error)
    if not result.scenes:
        raise ValueError(
            f"none of the {result.listed} scenes of the raster catalogue is usable ({dict(result.skipped)}); first "
            f"problem: {result.errors[0] if result.errors else 'none'}"
        )
    result.scenes.sort(key=lambda s: s.href)
    logger.info(
        "catalogue: %d scenes usable of %d listed, skipped %s", len(result.scenes), result.listed, dict(result.skipped)
    )
    return result


def load_catalog(catalog: str | None, rasters: tuple[str, ...] | list[str], sensor: str) -> list[Scene]:
    """Load the scenes of a build, stopping at the first unusable one (:func:`read_catalog` with ``strict``).

    Args:
        catalog: STAC ItemCollection or CSV catalogue path, or ``None``.
        rasters: Raster paths used when ``catalog`` is ``None``.
        sensor: ``"naip"`` or ``"sentinel2"`` (decides default band names).

    Returns:
        Scenes sorted by href.
    """
    return read_catalog(catalog, rasters, sensor, strict=True).scenes
