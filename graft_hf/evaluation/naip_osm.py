"""The NAIP-OSM multi-label benchmark builder: NAIP tiles labelled with the OpenStreetMap features they contain.

GRAFT's NAIP-OSM benchmark labels NAIP tiles with OpenStreetMap classes. The paper's class list is in its appendix,
which is not available offline, so the classes here come from a documented, configurable mapping of class names to
OSM tag rules (:data:`DEFAULT_TAG_CLASSES`; pass your own as a YAML or JSON file ``{class: [rule, ...]}``). A rule is
``key=value`` (that tag), ``key`` or ``key=*`` (any value of the key); an object belongs to every class one of
whose rules its tags match.

The OSM extract (``.osm.pbf``, ``.osm``, ``.osm.bz2``, ...) is read with pyosmium (libosmium), which assembles
node locations into lines and closed ways and multipolygon relations into areas. Geometries are reprojected into
each raster's CRS, and a tile of `tile_size` pixels gets a class when

* the class's areas cover at least `min_area_fraction` of the tile, or
* its lines (ways that are not areas) run inside the tile for at least `min_line_fraction` of the tile's side, or
* one of its points (tagged nodes) lies inside the tile.

The result is a `datasets` parquet folder (``data/<split>-*.parquet`` with ``image``, ``labels`` (class names),
``raster``, ``row_off``, ``col_off``, ``lon``, ``lat``) with a dataset card and the mapping used, which
``graft eval --data OUT`` reads as a multi-label dataset.
"""

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import rasterio
import shapely
import yaml
from huggingface_hub import DatasetCardData
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from shapely.geometry import box, mapping, shape
from tqdm.auto import tqdm

from graft_hf.config import ConfigError, config_dataclass, require
from graft_hf.extras import require as require_extra
from graft_hf.io import atomic_write, write_json
from graft_hf.modeling import get_sensor
from graft_hf.pairs.card import SUMMARY_TEMPLATE, pairs_dataset_card
from graft_hf.pairs.raster import encode_png, to_rgb

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TAG_CLASSES",
    "NaipOsmConfig",
    "OsmFeatures",
    "TagRule",
    "build_naip_osm",
    "load_tag_classes",
    "read_osm_features",
    "tile_labels",
]

#: Default class -> OSM tag rules: land use and land cover, water, transport, buildings and structures that are
#: visible from above at NAIP's 0.6-1 m. Edit or replace it (`tag_classes`) to follow another class list.
DEFAULT_TAG_CLASSES: dict[str, tuple[str, ...]] = {
    "building": ("building",),
    "road": (
        "highway=motorway", "highway=trunk", "highway=primary", "highway=secondary", "highway=tertiary",
        "highway=unclassified", "highway=residential", "highway=service", "highway=track",
    ),
    "railway": ("railway=rail",),
    "river": ("waterway=river", "waterway=stream", "waterway=canal", "water=river"),
    "lake": ("natural=water", "water=lake", "water=pond", "water=reservoir", "landuse=reservoir"),
    "wetland": ("natural=wetland",),
    "forest": ("landuse=forest", "natural=wood"),
    "grassland": ("natural=grassland", "landuse=meadow", "landuse=grass"),
    "farmland": ("landuse=farmland",),
    "orchard": ("landuse=orchard", "landuse=vineyard"),
    "residential area": ("landuse=residential",),
    "commercial area": ("landuse=commercial", "landuse=retail"),
    "industrial area": ("landuse=industrial",),
    "parking lot": ("amenity=parking",),
    "park": ("leisure=park",),
    "sports field": ("leisure=pitch", "leisure=track"),
    "golf course": ("leisure=golf_course",),
    "cemetery": ("landuse=cemetery", "amenity=grave_yard"),
    "quarry": ("landuse=quarry",),
    "airport": ("aeroway=aerodrome", "aeroway=runway"),
    "bridge": ("bridge=yes", "man_made=bridge"),
    "dam": ("waterway=dam",),
    "power line": ("power=line",),
    "wind turbine": ("generator:source=wind",),
    "solar farm": ("plant:source=solar", "generator:source=solar"),
    "storage tank": ("man_made=storage_tank",),
    "silo": ("man_made=silo",),
    "water tower": ("man_made=water_tower",),
}  # fmt: skip


@dataclass(frozen=True)
class TagRule:
    """One OSM tag rule: `key` with `value`, or with any value when `value` is None."""

    key: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> "TagRule":
        key, _, value = text.partition("=")
        if not key.strip():
            raise ValueError(f"tag rule {text!r} has no key; write key=value, key or key=*")
        value = value.strip()
        return cls(key.strip(), None if value in ("", "*") else value)

    def matches(self, tags: Mapping[str, str]) -> bool:
        found = tags.get(self.key)
        return found is not None and (self.value is None or found == self.value)


def _parse_mapping(mapping: Mapping[str, Sequence[str]]) -> dict[str, tuple[TagRule, ...]]:
    if not isinstance(mapping, Mapping) or not mapping:
        raise ValueError("a tag-class mapping is a non-empty {class name: [tag rule, ...]} object")
    out = {}
    for name, rules in mapping.items():
        if isinstance(rules, str) or not isinstance(rules, Sequence) or not rules:
            raise ValueError(f"class {name!r}: give a non-empty list of tag rules (key=value, key or key=*)")
        out[str(name)] = tuple(TagRule.parse(str(rule)) for rule in rules)
    return out


def load_tag_classes(source: str | os.PathLike | Mapping[str, Sequence[str]] | None = None) -> dict:
    """Class name -> :class:`TagRule` tuple from a mapping, a YAML/JSON file, or `None` (the defaults).

    Raises:
        FileNotFoundError: A file that does not exist.
        ValueError: A malformed mapping, naming the class.
    """
    if source is None:
        return _parse_mapping(DEFAULT_TAG_CLASSES)
    if isinstance(source, Mapping):
        return _parse_mapping(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"tag-class mapping {path} not found; pass a YAML or JSON file {{class: [rules]}}")
    loaded = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    try:
        return _parse_mapping(loaded)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


@dataclass
class OsmFeatures:
    """Tagged OSM geometries (EPSG:4326 lon/lat) per class.

    Attributes:
        areas: Class -> polygons and multipolygons.
        lines: Class -> lines (ways that were not assembled into areas).
        points: Class -> tagged nodes.
    """

    areas: dict[str, list] = field(default_factory=dict)
    lines: dict[str, list] = field(default_factory=dict)
    points: dict[str, list] = field(default_factory=dict)

    def count(self) -> dict[str, int]:
        names = set(self.areas) | set(self.lines) | set(self.points)
        return {n: len(self.areas.get(n, [])) + len(self.lines.get(n, [])) + len(self.points.get(n, [])) for n in names}


def read_osm_features(path: str | os.PathLike, tag_classes: Mapping[str, tuple[TagRule, ...]]) -> OsmFeatures:
    """Read the geometries of the objects matching `tag_classes` from an OSM file with pyosmium.

    Args:
        path: ``.osm.pbf``, ``.osm`` (XML), ``.osm.bz2``, ... (any format libosmium reads).
        tag_classes: From :func:`load_tag_classes`.

    Returns:
        The :class:`OsmFeatures`; broken geometries (missing nodes, invalid rings) are skipped and counted in the log.
    """
    require_extra("osmium", "osm", "reading OpenStreetMap extracts")
    import osmium
    import osmium.filter
    import osmium.geom

    if not Path(path).is_file():
        raise FileNotFoundError(f"OSM extract {path} not found; pass a .osm.pbf or .osm file")
    wkb = osmium.geom.WKBFactory()
    keys = sorted({rule.key for rules in tag_classes.values() for rule in rules})
    features, way_lines, area_ways, broken = OsmFeatures(), {}, set(), 0
    processor = osmium.FileProcessor(os.fspath(path)).with_locations().with_areas()
    for obj in processor.with_filter(osmium.filter.KeyFilter(*keys)):
        tags = dict(obj.tags)
        classes = [name for name, rules in tag_classes.items() if any(rule.matches(tags) for rule in rules)]
        if not classes:
            continue
        kind = obj.type_str()
        try:
            if kind == "n":
                geometry = shapely.from_wkb(wkb.create_point(obj))
            elif kind == "w":
                geometry = shapely.from_wkb(wkb.create_linestring(obj))
            elif kind == "a":
                geometry = shapely.from_wkb(wkb.create_multipolygon(obj))
            else:
                continue
        except (RuntimeError, osmium.InvalidLocationError):
            broken += 1
            continue
        if kind == "w":
            way_lines[obj.id] = (classes, geometry)
            continue
        if kind == "a" and obj.from_way():
            area_ways.add(obj.orig_id())
        target = features.points if kind == "n" else features.areas
        for name in classes:
            target.setdefault(name, []).append(geometry)
    for way_id, (classes, geometry) in way_lines.items():
        if way_id not in area_ways:  # a closed way that became an area is not also a line
            for name in classes:
                features.lines.setdefault(name, []).append(geometry)
    logger.info("read %s from %s (%d broken geometries skipped)", features.count(), path, broken)
    return features


def _project(geometries: list, crs: object, bounds_lonlat: tuple[float, float, float, float]) -> list:
    """The geometries overlapping `bounds_lonlat`, reprojected from EPSG:4326 into `crs`."""
    area = box(*bounds_lonlat)
    return [shape(transform_geom("EPSG:4326", crs, mapping(g))) for g in geometries if g.intersects(area)]


def tile_labels(
    tile: shapely.Polygon,
    areas: Mapping[str, shapely.STRtree],
    lines: Mapping[str, shapely.STRtree],
    points: Mapping[str, shapely.STRtree],
    min_area_fraction: float,
    min_line_fraction: float,
) -> list[str]:
    """Classes present in one tile (a polygon in the geometries' CRS), by the rules of the module docstring."""
    side = float(np.sqrt(tile.area))
    present = set()
    for name, tree in areas.items():
        hits = tree.geometries.take(tree.query(tile, predicate="intersects"))
        if len(hits) and shapely.union_all(shapely.intersection(hits, tile)).area >= min_area_fraction * tile.area:
            present.add(name)
    for name, tree in lines.items():
        hits = tree.geometries.take(tree.query(tile, predicate="intersects"))
        if len(hits) and shapely.length(shapely.intersection(hits, tile)).sum() >= min_line_fraction * side:
            present.add(name)
    for name, tree in points.items():
        if len(tree.query(tile, predicate="intersects")):
            present.add(name)
    return sorted(present)


# -------------------------------------------------------------------------------------------------- the builder
@config_dataclass
class NaipOsmConfig:
    """What `graft build-naip-osm` does: NAIP tiles labelled from an OSM extract, written as a multi-label dataset.

    Attributes:
        rasters: NAIP GeoTIFFs to tile (repeatable).
        osm: OSM extract covering them (.osm.pbf, .osm, .osm.bz2).
        output_dir: Output folder of the dataset.
        tag_classes: YAML/JSON file {class: [key=value | key | key=*, ...]} (default: the built-in mapping).
        tile_size: Tile side in pixels (non-overlapping tiles; partial edge tiles are dropped).
        sensor: Sensor of the rasters (picks the RGB bands).
        min_area_fraction: An area class is present when it covers at least this fraction of the tile.
        min_line_fraction: A line class is present when it runs at least this fraction of the tile side inside it.
        max_nodata_fraction: Skip tiles with more nodata pixels than this fraction.
        keep_unlabelled: Keep tiles without any class (dropped by default).
        split: Split name of the written parquet files.
        limit: Stop after this many tiles.
        progress: Show a progress bar.
    """

    rasters: list[str]
    osm: str
    output_dir: str
    tag_classes: str | None = None
    tile_size: int = 224
    sensor: str = "naip"
    min_area_fraction: float = 0.01
    min_line_fraction: float = 0.1
    max_nodata_fraction: float = 0.01
    keep_unlabelled: bool = False
    split: str = "test"
    limit: int | None = None
    progress: bool = True

    def validate_values(self) -> None:
        require(bool(self.rasters), "rasters", "pass at least one NAIP GeoTIFF")
        require(self.tile_size > 0, "tile_size", f"must be positive, got {self.tile_size}")
        for name in ("min_area_fraction", "min_line_fraction", "max_nodata_fraction"):
            value = getattr(self, name)
            require(0.0 <= value <= 1.0, name, f"must lie in [0, 1], got {value}")
        require(self.limit is None or self.limit > 0, "limit", f"must be positive, got {self.limit}")


@dataclass
class _RasterIndex:
    """One raster's class geometries in its CRS, as spatial indexes."""

    areas: dict[str, shapely.STRtree]
    lines: dict[str, shapely.STRtree]
    points: dict[str, shapely.STRtree]


def _raster_index(features: OsmFeatures, src: rasterio.DatasetReader) -> _RasterIndex:
    bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)

    def index(groups: dict[str, list]) -> dict[str, shapely.STRtree]:
        projected = {name: _project(geoms, src.crs, bounds) for name, geoms in groups.items()}
        return {name: shapely.STRtree(geoms) for name, geoms in projected.items() if geoms}

    return _RasterIndex(index(features.areas), index(features.lines), index(features.points))


def _tiles(
    path: str, config: NaipOsmConfig, features: OsmFeatures, skipped: dict[str, int]
) -> Iterator[dict[str, object]]:
    """The labelled tiles of one raster, as dataset rows."""
    with rasterio.open(path) as src:
        if src.crs is None:
            raise ConfigError("rasters", f"{path} has no CRS; NAIP-OSM labels need georeferenced rasters")
        bands = [i + 1 for i in get_sensor(config.sensor).rgb_band_indices(list(src.descriptions))]
        index = _raster_index(features, src)
        size = config.tile_size
        for row in range(0, src.height - size + 1, size):
            for col in range(0, src.width - size + 1, size):
                window = Window(col, row, size, size)
                data = src.read(bands, window=window)
                if np.all(data == 0, axis=0).mean() > config.max_nodata_fraction:
                    skipped["mostly nodata"] = skipped.get("mostly nodata", 0) + 1
                    continue
                left, bottom, right, top = window_bounds(window, src.transform)
                labels = tile_labels(
                    box(left, bottom, right, top), index.areas, index.lines, index.points,
                    config.min_area_fraction, config.min_line_fraction,
                )  # fmt: skip
                if not labels and not config.keep_unlabelled:
                    skipped["no class present"] = skipped.get("no class present", 0) + 1
                    continue
                lon, lat = transform_geom(src.crs, "EPSG:4326", mapping(box(left, bottom, right, top).centroid))[
                    "coordinates"
                ]
                yield {
                    "image": {"bytes": encode_png(to_rgb(data, config.sensor)), "path": None},
                    "labels": labels,
                    "raster": Path(path).name,
                    "row_off": row,
                    "col_off": col,
                    "lon": float(lon),
                    "lat": float(lat),
                }


def _write_card(out: Path, config: NaipOsmConfig, summary: dict) -> None:
    card_data = DatasetCardData(
        license="odbl",
        pretty_name="NAIP-OSM multi-label tiles",
        tags=["geospatial", "remote-sensing", "satellite-imagery", "openstreetmap", "multi-label", "graft"],
        configs=[{"config_name": "default", "data_files": [{"split": config.split, "path": f"data/{config.split}-*"}]}],
    )
    description = (
        f"NAIP tiles of {config.tile_size} px labelled with the OpenStreetMap classes they contain (labels from "
        "OpenStreetMap, ODbL; NAIP imagery is public domain). Classes come from the tag mapping in "
        "`tag_classes.json`; an area class counts when it covers at least "
        f"{config.min_area_fraction:.0%} of a tile, a line class when it runs {config.min_line_fraction:.0%} of "
        "the tile side inside it, a point class when a point lies inside. Built by graft-hf's "
        "`graft build-naip-osm`."
    )
    text = pairs_dataset_card(
        card_data,
        SUMMARY_TEMPLATE,
        title="NAIP-OSM",
        description=description,
        summary_json=json.dumps(summary, indent=2),
    )
    atomic_write(out / "README.md", str(text))


def build_naip_osm(config: NaipOsmConfig) -> dict[str, object]:
    """Tile the rasters, label every tile from the OSM extract and write the dataset into `config.output_dir`.

    Returns:
        The build summary (also in ``summary.json``): tiles written, images per class, skip reasons.
    """
    from datasets import Dataset, Features, Image, List, Value

    for path in config.rasters:
        if not Path(path).is_file():
            raise ConfigError("rasters", f"raster {path} not found; pass existing NAIP GeoTIFFs")
    tag_classes = load_tag_classes(config.tag_classes)
    features = read_osm_features(config.osm, tag_classes)
    skipped: dict[str, int] = {}
    rows: list[dict[str, object]] = []
    bar = tqdm(desc="labelling tiles", unit="tile", disable=not config.progress)
    for path in config.rasters:
        for row in _tiles(path, config, features, skipped):
            rows.append(row)
            bar.update()
            if config.limit is not None and len(rows) >= config.limit:
                break
        if config.limit is not None and len(rows) >= config.limit:
            break
    bar.close()
    if not rows:
        raise ValueError(f"no tile got a class (skipped: {skipped}); check that the OSM extract covers the rasters")
    out = Path(config.output_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    schema = Features(
        {"image": Image(), "labels": List(Value("string")), "raster": Value("string"), "row_off": Value("int32"),
         "col_off": Value("int32"), "lon": Value("float64"), "lat": Value("float64")}
    )  # fmt: skip
    columns = {name: [row[name] for row in rows] for name in schema}
    table = Dataset.from_dict(columns, features=schema).data.table  # keeps the features in the schema metadata
    pq.write_table(table, out / "data" / f"{config.split}-00000-of-00001.parquet")
    per_class = {name: sum(name in row["labels"] for row in rows) for name in tag_classes}
    summary = {"tiles": len(rows), "images_per_class": per_class, "skipped": skipped, "osm_objects": features.count()}
    write_json(
        out / "tag_classes.json", {n: [f"{r.key}={r.value or '*'}" for r in rs] for n, rs in tag_classes.items()}
    )
    write_json(out / "summary.json", summary)
    _write_card(out, config, summary)
    logger.info("wrote %d NAIP-OSM tiles to %s", len(rows), out)
    return summary
