"""``graft index --model DIR --data PAIRS_OR_IMAGES -o INDEX_DIR``: embed a satellite archive for text search.

DATA is a pair-shard folder (or any ``datasets`` folder / Hub id with an image column; tile_id, center_lat,
center_lon and acquisition_date columns become the metadata), or a folder of image files (GeoTIFF centres
become lat/lon). The index is an EmbeddingIndex (a ``datasets`` dataset plus settings) that ``graft search``
queries; ``--approximate`` adds a faiss index for large archives.
"""

from __future__ import annotations

import argparse

from graft_hf_cli._errors import speaks_flags
from graft_hf_cli._fields import add_fields, fields_from_args

__all__ = ["add_parser", "run"]

_CONFIG = ("graft_hf.evaluation.archive", "IndexBuildConfig")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "index",
        help="embed satellite images (with tile id, lat/lon, date) into a searchable index",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_fields(
        parser,
        *_CONFIG,
        flags={"output": ("-o", "--output")},
        helps={
            "progress": "no progress bars",
            "model": "GRAFT (or CLIP) model folder, Hub id or registered name (graft-naip-vitb16) whose image tower "
            "embeds the archive",
        },
        required=("model", "data", "output"),
    )
    parser.set_defaults(handler=run)
    return parser


@speaks_flags
def run(args: argparse.Namespace) -> int:
    from graft_hf.evaluation.archive import IndexBuildConfig, build_index

    config = IndexBuildConfig(**fields_from_args(args, *_CONFIG))
    index = build_index(config)
    extra = f" (+ {config.approximate} approximate index)" if config.approximate else ""
    print(f"indexed {len(index)} images ({index.dim}-d){extra} into {config.output}")
    return 0
