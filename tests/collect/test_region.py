"""Regions (bbox, GeoJSON) and capture-date ranges: what is inside, and errors that name the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graft_hf.collect.region import DateRange, Region, parse_bbox, parse_time_seconds
from graft_hf.config import ConfigError


def test_bbox_parsing_and_errors():
    assert parse_bbox("-99.2, 47.0,-99.1,47.05") == (-99.2, 47.0, -99.1, 47.05)
    for bad, match in [("1,2,3", "four numbers"), ("a,b,c,d", "WEST,SOUTH"), ("0,5,1,4", "south"),
                       ("170,0,-170,1", "antimeridian"), ("0,0,200,1", "outside")]:  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            parse_bbox(bad)


def test_geojson_polygon_with_a_hole(tmp_path):
    outer = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
    hole = [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]
    path = tmp_path / "r.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [outer, hole]}}]}))  # fmt: skip
    region = Region.from_config(None, path)
    assert region.contains(np.array([1.0, 5.0, 11.0]), np.array([1.0, 5.0, 1.0])).tolist() == [True, False, False]
    assert region.intersects_box(1, 1, 2, 2) and not region.intersects_box(4.5, 4.5, 5.5, 5.5)
    with pytest.raises(ConfigError, match="exactly one"):
        Region.from_config((0, 0, 1, 1), path)
    path.write_text('{"type": "Point", "coordinates": [1, 2]}')
    with pytest.raises(ConfigError, match="not GeoJSON"):
        Region.from_config(None, path)


def test_date_range_is_inclusive_of_the_end_day():
    dates = DateRange.from_config("2015-01-01", "2015-12-31")
    inside = parse_time_seconds("2015-12-31 23:59:59")
    after = parse_time_seconds("2016-01-01T00:00:00")
    assert dates.contains(np.array([dates.start, inside, after, np.nan])).tolist() == [True, True, False, False]
    assert parse_time_seconds("2010-07-27 17:52:25.0") == parse_time_seconds("2010-07-27T17:52:25")
    with pytest.raises(ConfigError, match="end: .*before start"):
        DateRange.from_config("2016-01-01", "2015-01-01")
    with pytest.raises(ConfigError, match="start"):
        DateRange.from_config(None, "2015-01-01")
