"""Scene catalogs and footprints: WKT and GeoJSON polygons with holes and multipolygons, checked against explicit box
tests; a raster without a CRS is named with its fix.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import shapely

from graft_hf.pairs.catalog import Scene, load_catalog, parse_footprint, points_in_polygon
from graft_hf.pairs.photos import load_photos
from graft_hf.pairs.sampling import coverage
from tests.helpers.data import SHARED_DATA

NAIP = SHARED_DATA / "naip-nd"
RASTER = NAIP / "m_4709963_se_14_1_20200831.tif"

# Lon/lat boxes: an outer square with a square hole, and a second, separate square.
OUTER, HOLE, ISLAND = (-100.0, 46.0, -99.0, 47.0), (-99.6, 46.4, -99.4, 46.6), (-98.5, 47.5, -98.2, 47.8)
WKT = (
    "MULTIPOLYGON (((-100 46, -99 46, -99 47, -100 47, -100 46), (-99.6 46.4, -99.4 46.4, -99.4 46.6, -99.6 46.6, "
    "-99.6 46.4)), ((-98.5 47.5, -98.2 47.5, -98.2 47.8, -98.5 47.8, -98.5 47.5)))"
)


def _in_box(x: np.ndarray, y: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return (x > x0) & (x < x1) & (y > y0) & (y < y1)


def _expected(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (_in_box(x, y, OUTER) & ~_in_box(x, y, HOLE)) | _in_box(x, y, ISLAND)


def _points(n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.uniform(-100.5, -98.0, n), rng.uniform(45.5, 48.0, n)


def test_wkt_multipolygon_with_hole() -> None:
    footprint = parse_footprint(WKT)
    assert footprint.geom_type == "MultiPolygon" and len(footprint.geoms[0].interiors) == 1
    x, y = _points()
    inside = points_in_polygon(x, y, footprint)
    np.testing.assert_array_equal(inside, _expected(x, y))
    assert _in_box(x, y, HOLE).any() and not inside[_in_box(x, y, HOLE)].any(), "the hole is outside"
    assert inside[_in_box(x, y, ISLAND)].all(), "the second part is inside"


def test_footprint_forms() -> None:
    polygon = parse_footprint("POLYGON ((0 0, 4 0, 4 4, 0 4, 0 0), (1 1, 2 1, 2 2, 1 2, 1 1))")
    assert polygon.geom_type == "Polygon" and len(polygon.interiors) == 1
    assert parse_footprint("-100,46,-99,47").equals(shapely.box(*OUTER))
    assert parse_footprint("  ") is None
    with pytest.raises(ValueError, match="not a POLYGON or MULTIPOLYGON"):
        parse_footprint("POINT (1 2)")
    with pytest.raises(ValueError, match="minlon,minlat,maxlon,maxlat"):
        parse_footprint("1,2,3")
    # A ring given as vertices (the old tuple form) is still accepted.
    ring = ((-100.0, 46.0), (-99.0, 46.0), (-99.0, 47.0), (-100.0, 47.0))
    x, y = _points()
    np.testing.assert_array_equal(points_in_polygon(x, y, ring), _in_box(x, y, OUTER))


def test_coverage_respects_holes_and_parts(tmp_path: Path) -> None:
    x, y = _points(600)
    with (tmp_path / "photos.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["photo_id", "lat", "lon"])
        writer.writerows([(f"p{i}", repr(lat), repr(lon)) for i, (lon, lat) in enumerate(zip(x, y, strict=True))])
    photos = load_photos(tmp_path / "photos.csv")
    # A lon/lat raster covering -100..-98, 46..48 (0.01 degree pixels), its valid data only inside the footprint.
    scene = Scene(
        "grid.tif", "2020-01-01T00:00:00+00:00", 0.0, None, "EPSG:4326", (0.01, 0, -100, 0, -0.01, 48),
        200, 200, ("red", "green", "blue"), None, parse_footprint(WKT),
    )  # fmt: skip
    covered = coverage(photos, [scene])
    expected = _expected(photos.lon, photos.lat) & _in_box(photos.lon, photos.lat, (-100, 46, -98, 48))
    assert covered.photo.tolist() == np.flatnonzero(expected).tolist()


def test_stac_geometry_with_hole_and_csv_multipolygon(tmp_path: Path) -> None:
    if not RASTER.is_file():
        pytest.skip(f"real NAIP raster not found at {RASTER} (../shared/data/naip-nd)")
    geometry = json.loads(json.dumps(shapely.geometry.mapping(parse_footprint(WKT))))
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "naip",
        "geometry": geometry,
        "properties": {"datetime": "2020-08-31T17:00:00Z"},
        "assets": {"image": {"href": str(RASTER), "type": "image/tiff; application=geotiff", "roles": ["data"]}},
    }
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    (stac,) = load_catalog(str(tmp_path / "items.json"), (), "naip")
    (tmp_path / "catalog.csv").write_text(f'path,datetime,footprint\n{RASTER},2020-08-31,"{WKT}"\n')
    (from_csv,) = load_catalog(str(tmp_path / "catalog.csv"), (), "naip")
    for scene in (stac, from_csv):
        assert scene.footprint.geom_type == "MultiPolygon" and len(scene.footprint.geoms) == 2
        assert scene.footprint.equals(parse_footprint(WKT))


def test_raster_without_crs_names_file_and_fix(tmp_path: Path) -> None:
    import rasterio

    from graft_hf.pairs.catalog import load_catalog

    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8") as dst:
        dst.write(np.zeros((3, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"nocrs\.tif has no CRS.*rio edit-info --crs"):
        load_catalog(None, [str(path)], "naip")


def test_points_in_polygon_matches_box() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-2, 2, 500), rng.uniform(-2, 2, 500)
    box = ((-1.0, -0.5), (1.0, -0.5), (1.0, 1.5), (-1.0, 1.5))
    expected = (x > -1) & (x < 1) & (y > -0.5) & (y < 1.5)
    np.testing.assert_array_equal(points_in_polygon(x, y, box), expected)


def test_unusable_scenes_are_skipped_and_counted(tmp_path: Path) -> None:
    """A missing, a corrupt, a CRS-less and an undated raster: each skipped with its reason and file; strict raises."""
    if not RASTER.is_file():
        pytest.skip(f"real NAIP raster not found at {RASTER} (../shared/data/naip-nd)")
    import rasterio

    from graft_hf.pairs.catalog import SceneError, read_catalog

    nocrs = tmp_path / "nocrs.tif"
    with rasterio.open(nocrs, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8") as dst:
        dst.write(np.zeros((3, 8, 8), dtype=np.uint8))
    (tmp_path / "garbage.tif").write_bytes(b"II*\x00 this is not a tiff")
    rows = [
        f"{RASTER},2020-08-31",
        "missing.tif,2020-01-01",
        "garbage.tif,2020-01-01",
        f"{nocrs},2020-01-01",
        f"{RASTER.parent / 'm_4709963_se_14_1_20140720.tif'},",  # no date in the row, none in the TIFF tags
        f"{RASTER},2020-08-31",  # listed twice
    ]
    (tmp_path / "catalog.csv").write_text("path,datetime\n" + "\n".join(rows) + "\n")
    catalogue = read_catalog(str(tmp_path / "catalog.csv"), (), "naip")
    assert [s.href for s in catalogue.scenes] == [str(RASTER)] and catalogue.listed == 6
    assert dict(catalogue.skipped) == {"cannot_open": 2, "no_crs": 1, "no_date": 1, "duplicate_href": 1}
    assert any("missing.tif" in e for e in catalogue.errors) and any("garbage.tif" in e for e in catalogue.errors)
    with pytest.raises(SceneError, match=r"cannot open raster .*missing\.tif"):
        read_catalog(str(tmp_path / "catalog.csv"), (), "naip", strict=True)
    with pytest.raises(ValueError, match=r"none of the 1 scenes .*cannot_open.*missing\.tif"):
        read_catalog(None, [str(tmp_path / "missing.tif")], "naip")
