"""Where and when to collect: a region (a bounding box or a GeoJSON polygon) and a capture-date range.

Capture times of Flickr photos are the camera's wall-clock time without a time zone ("date taken"). They are
compared as written: a date range ``2015-01-01 .. 2015-12-31`` means those wall-clock days wherever the photo was
taken. Internally times are seconds since 1970 of that wall-clock time read as if it were UTC.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, box, shape

from graft_hf.config import ConfigError

__all__ = ["DateRange", "Region", "parse_bbox", "parse_time_seconds", "seconds_to_iso"]


def parse_bbox(text: str | tuple[float, ...] | list[float]) -> tuple[float, float, float, float]:
    """``"WEST,SOUTH,EAST,NORTH"`` (degrees) or a 4-sequence -> a validated bounding box.

    Raises:
        ConfigError: (key ``bbox``) not four numbers, out of range, empty, or crossing the antimeridian.
    """
    try:
        values = [float(v) for v in (text.replace(" ", "").split(",") if isinstance(text, str) else text)]
    except ValueError as error:
        raise ConfigError("bbox", f"expected WEST,SOUTH,EAST,NORTH in degrees, got {text!r}") from error
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ConfigError("bbox", f"expected four numbers WEST,SOUTH,EAST,NORTH in degrees, got {text!r}")
    west, south, east, north = values
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
        raise ConfigError("bbox", f"{values} is outside longitude [-180, 180] / latitude [-90, 90]")
    if south >= north:
        raise ConfigError("bbox", f"south ({south}) must be below north ({north})")
    if west >= east:
        raise ConfigError(
            "bbox",
            f"west ({west}) must be less than east ({east}); a region crossing the antimeridian must be collected "
            "as two boxes, one on each side",
        )
    return west, south, east, north


def _polygons(geometry: dict) -> Polygon | MultiPolygon:
    geom = shape(geometry)
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    parts = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, (Polygon, MultiPolygon)) and not g.is_empty]
    if not parts:
        raise ValueError(f"GeoJSON geometry of type {geometry.get('type')!r} has no polygon")
    merged = shapely.union_all(parts)
    return merged  # type: ignore[return-value]


def _read_geojson(path: Path) -> Polygon | MultiPolygon:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError("region", f"cannot read GeoJSON {path}: {error}") from error
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "FeatureCollection":
        geometries = [f.get("geometry") for f in data.get("features", []) if f.get("geometry")]
    elif kind == "Feature":
        geometries = [data.get("geometry")] if data.get("geometry") else []
    elif kind in ("Polygon", "MultiPolygon", "GeometryCollection"):
        geometries = [data]
    else:
        raise ConfigError("region", f"{path} is not GeoJSON (a FeatureCollection, Feature, Polygon or MultiPolygon)")
    try:
        polygons = [_polygons(g) for g in geometries]
    except ValueError as error:
        raise ConfigError("region", f"{path}: {error}") from error
    if not polygons:
        raise ConfigError("region", f"{path} holds no polygon")
    region = shapely.union_all(polygons)
    west, south, east, north = region.bounds
    if west < -180 or east > 180 or south < -90 or north > 90:
        raise ConfigError(
            "region", f"{path} has coordinates outside lon/lat degrees (bounds {region.bounds}); GeoJSON is WGS84"
        )
    return region  # type: ignore[return-value]


@dataclass(frozen=True)
class Region:
    """The area photos are collected in.

    Attributes:
        geometry: The area in WGS84 lon/lat (a box for ``--bbox``).
        is_box: Whether the geometry is its own bounding box (no point-in-polygon tests needed).
    """

    geometry: Polygon | MultiPolygon
    is_box: bool

    @classmethod
    def from_config(cls, bbox: tuple[float, ...] | None, region: str | os.PathLike | None) -> Region:
        """Exactly one of a bounding box ``(west, south, east, north)`` and a GeoJSON file path.

        Raises:
            ConfigError: Neither or both given, or either is invalid.
        """
        if (bbox is None) == (region is None):
            raise ConfigError("bbox", "give exactly one of bbox (WEST,SOUTH,EAST,NORTH degrees) and region (GeoJSON)")
        if bbox is not None:
            return cls(box(*parse_bbox(bbox)), True)
        path = Path(region)  # type: ignore[arg-type]
        if not path.is_file():
            raise ConfigError("region", f"GeoJSON file {path} not found")
        return cls(_read_geojson(path), False)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(west, south, east, north)``."""
        return tuple(float(v) for v in self.geometry.bounds)  # type: ignore[return-value]

    def contains(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Which points lie in the region (boundary included), shape ``(num_points,)``."""
        lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        if self.is_box:
            west, south, east, north = self.bounds
            return (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)
        shapely.prepare(self.geometry)
        return shapely.intersects_xy(self.geometry, lon, lat)

    def intersects_box(self, west: float, south: float, east: float, north: float) -> bool:
        """Whether a lon/lat box overlaps the region (cells outside a polygon are never queried)."""
        return self.is_box or bool(self.geometry.intersects(box(west, south, east, north)))


def parse_time_seconds(text: str, *, end_of_day: bool = False) -> int:
    """A date or date-time (ISO 8601, MySQL ``YYYY-MM-DD HH:MM:SS``) as wall-clock seconds since 1970.

    Args:
        text: ``"2015-06-01"``, ``"2015-06-01T12:00:00"``, ``"2015-06-01 12:00:00.0"`` (YFCC100M), ...
        end_of_day: A bare date means the end of that day (the last second), for inclusive range ends.

    Raises:
        ValueError: Not a date.
    """
    value = text.strip().replace(" ", "T", 1)
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if stamp.tzinfo is not None:  # wall-clock comparison: drop the zone, keep the clock reading
        stamp = stamp.replace(tzinfo=None)
    if end_of_day and len(text.strip()) == 10:
        stamp += timedelta(days=1, seconds=-1)
    return int(stamp.replace(tzinfo=UTC).timestamp())


def seconds_to_iso(seconds: int) -> str:
    """Wall-clock seconds -> ``YYYY-MM-DDTHH:MM:SS`` (no zone)."""
    return datetime.fromtimestamp(seconds, tz=UTC).replace(tzinfo=None).isoformat()


@dataclass(frozen=True)
class DateRange:
    """An inclusive range of capture times, wall-clock seconds.

    Attributes:
        start: First second.
        end: Last second (inclusive).
    """

    start: int
    end: int

    @classmethod
    def from_config(cls, start: str | None, end: str | None) -> DateRange:
        """``start``/``end`` dates (inclusive; a bare ``end`` date includes that whole day).

        Raises:
            ConfigError: A missing or unparseable date, or ``end`` before ``start``.
        """
        if start is None or end is None:
            raise ConfigError(
                "start" if start is None else "end",
                "give both start and end capture dates (YYYY-MM-DD); Flickr geo searches need a date limit",
            )
        values = {}
        for key, text, last in (("start", start, False), ("end", end, True)):
            try:
                values[key] = parse_time_seconds(text, end_of_day=last)
            except ValueError as error:
                raise ConfigError(key, f"{text!r} is not a date (YYYY-MM-DD or ISO 8601)") from error
        if values["end"] < values["start"]:
            raise ConfigError("end", f"{end} is before start {start}")
        return cls(values["start"], values["end"])

    def contains(self, seconds: np.ndarray) -> np.ndarray:
        """Which times lie in the range, shape ``(num,)`` (NaN never does)."""
        seconds = np.asarray(seconds, dtype=np.float64)
        return (seconds >= self.start) & (seconds <= self.end)
