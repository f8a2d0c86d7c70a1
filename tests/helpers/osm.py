"""A real NAIP crop and an OpenStreetMap extract around it in OSM XML (and PBF), placed by pixel coordinates.

The OSM file follows the OSM XML 0.6 format (``<osm version="0.6">`` with ``<node id lat lon>``, ``<way>`` with
``<nd ref>`` and ``<tag k v>``, and a ``type=multipolygon`` ``<relation>`` with outer/inner ``<member>`` ways).
With 32 px tiles on the 128x64 crop, the expected labels are :data:`EXPECTED_LABELS`.
"""

from __future__ import annotations

from pathlib import Path

import rasterio
from rasterio.warp import transform
from rasterio.windows import Window

from tests.helpers.data import shared_data

TILE = 32
#: (row_off, col_off) -> classes; tiles (0, 96) and (32, 96) have none.
EXPECTED_LABELS = {
    (0, 0): ["farmland"],
    (0, 32): ["building"],
    (0, 64): ["storage tank"],
    (32, 0): ["road"],
    (32, 32): ["road"],
    (32, 64): ["lake"],
}


def write_naip_crop(path: Path) -> Path:
    """A 128x64 crop of a real NAIP GeoTIFF (4 bands, EPSG:26914) at `path`."""
    source = shared_data("naip-nd", "m_4709963_se_14_1_20200831.tif")
    with rasterio.open(source) as src:
        window = Window(400, 300, 128, 64)
        profile = {**src.profile, "width": 128, "height": 64, "transform": src.window_transform(window)}
        data = src.read(window=window)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


class _Osm:
    """Collects OSM XML elements, placing nodes by raster pixel coordinates."""

    def __init__(self, raster: Path):
        with rasterio.open(raster) as src:
            self.crs, self.affine = src.crs, src.transform
        self.nodes: list[str] = []
        self.ways: list[str] = []
        self.relations: list[str] = []
        self.next_id = 1

    def node(self, col: float, row: float, tags: dict[str, str] | None = None) -> int:
        x, y = self.affine @ (col, row)
        lon, lat = (v[0] for v in transform(self.crs, "EPSG:4326", [x], [y]))
        node_id, self.next_id = self.next_id, self.next_id + 1
        body = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in (tags or {}).items())
        self.nodes.append(f'  <node id="{node_id}" version="1" lat="{lat:.7f}" lon="{lon:.7f}">{body}</node>')
        return node_id

    def way(self, points: list[tuple[float, float]], tags: dict[str, str], closed: bool = False) -> int:
        refs = [self.node(c, r) for c, r in points]
        refs += refs[:1] if closed else []
        way_id, self.next_id = self.next_id, self.next_id + 1
        body = "".join(f'<nd ref="{r}"/>' for r in refs) + "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
        self.ways.append(f'  <way id="{way_id}" version="1">{body}</way>')
        return way_id

    def multipolygon(self, outer: int, inner: int, tags: dict[str, str]) -> None:
        rel_id, self.next_id = self.next_id, self.next_id + 1
        members = f'<member type="way" ref="{outer}" role="outer"/><member type="way" ref="{inner}" role="inner"/>'
        tag_text = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in {"type": "multipolygon", **tags}.items())
        self.relations.append(f'  <relation id="{rel_id}" version="1">{members}{tag_text}</relation>')

    def xml(self) -> str:
        body = "\n".join([*self.nodes, *self.ways, *self.relations])
        return f"<?xml version='1.0' encoding='UTF-8'?>\n<osm version=\"0.6\" generator=\"graft-hf tests\">\n{body}\n</osm>\n"


def _rect(c0: float, r0: float, c1: float, r1: float) -> list[tuple[float, float]]:
    return [(c0, r0), (c1, r0), (c1, r1), (c0, r1)]


def write_osm_extract(raster: Path, path: Path) -> Path:
    """Write the OSM XML extract of :data:`EXPECTED_LABELS` for the crop at `raster`."""
    osm = _Osm(raster)
    # Farmland over tile (0, 0), reaching 0.2 px (0.6% < 1%) into tile (0, 32).
    osm.way(_rect(-4, -4, 32.2, 31.5), {"landuse": "farmland"}, closed=True)
    # A 5x5 px building (2.4% of tile (0, 32)): a closed way, so an area, not also a line.
    osm.way(_rect(40, 8, 45, 13), {"building": "yes"}, closed=True)
    osm.way([(36, 20), (60, 20)], {"highway": "footway"})  # not in the mapping
    osm.node(80, 16, {"man_made": "storage_tank"})
    # A road through tiles (32, 0) and (32, 32), entering tile (32, 64) by 2 px (< 10% of the side).
    osm.way([(-5, 48), (66, 48)], {"highway": "residential", "name": "Main Street"})
    # A lake with an island over tile (32, 64).
    outer = osm.way(_rect(64.5, 32.5, 95.5, 63.5), {}, closed=True)
    inner = osm.way(_rect(72, 40, 88, 56), {}, closed=True)
    osm.multipolygon(outer, inner, {"natural": "water", "water": "lake"})
    path.write_text(osm.xml())
    return path


def to_pbf(xml: Path, pbf: Path) -> Path:
    """The same extract as OSM PBF, written by pyosmium."""
    import osmium

    with osmium.SimpleWriter(str(pbf)) as writer:
        for obj in osmium.FileProcessor(str(xml)):
            writer.add(obj)
    return pbf
