"""``graft build-naip-osm --raster NAIP.tif --osm EXTRACT.osm.pbf -o OUTDIR``: the NAIP-OSM multi-label benchmark.

Cuts the NAIP GeoTIFFs into non-overlapping ``--tile-size`` tiles and labels each with the OpenStreetMap classes it
contains, read from the extract with pyosmium: an area class when it covers ``--min-area-fraction`` of the tile, a
line class when it runs ``--min-line-fraction`` of the tile side inside it, a point class when a tagged node lies
inside. Classes are a configurable mapping of OSM tags (``--tag-classes FILE``, YAML or JSON
``{class: [key=value | key | key=*, ...]}``; default: graft-hf's built-in list, written to the output as
tag_classes.json). Writes a parquet dataset with a card that ``graft eval --data OUTDIR`` scores as a multi-label
benchmark.
"""

from __future__ import annotations

import argparse

from graft_hf_cli._errors import speaks_flags
from graft_hf_cli._fields import add_fields, fields_from_args

__all__ = ["add_parser", "run"]

_CONFIG = ("graft_hf.evaluation.naip_osm", "NaipOsmConfig")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "build-naip-osm",
        help="NAIP tiles labelled with OpenStreetMap classes: a multi-label benchmark for graft eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_fields(
        parser,
        *_CONFIG,
        flags={"output_dir": ("-o", "--output"), "rasters": "--raster"},
        helps={"progress": "no progress bar", "rasters": "NAIP GeoTIFF to tile (repeatable)"},
        required=("rasters", "osm", "output_dir"),
        metavars={"output_dir": "OUTPUT", "rasters": "GEOTIFF"},
    )
    parser.set_defaults(handler=run)
    return parser


@speaks_flags
def run(args: argparse.Namespace) -> int:
    from graft_hf.evaluation.naip_osm import NaipOsmConfig, build_naip_osm

    config = NaipOsmConfig(**fields_from_args(args, *_CONFIG))
    summary = build_naip_osm(config)
    present = {name: n for name, n in summary["images_per_class"].items() if n}
    print(f"wrote {summary['tiles']} tiles to {config.output_dir}; images per class: {present}")
    if summary["skipped"]:
        print(f"skipped: {summary['skipped']}")
    return 0
