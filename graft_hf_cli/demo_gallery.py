"""``graft demo-gallery``: embed gallery tiles once for the demo's text-to-image retrieval.

The flags are read from ``graft_hf.demo.config.GalleryConfig``.
Standard library only at import time; the handler imports :mod:`graft_hf` lazily.
"""

from __future__ import annotations

import argparse
import logging

from graft_hf_cli._fields import fields_from_args
from graft_hf_cli.demo import CONFIGS, add_model_fields

__all__ = ["add_parser"]

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``graft demo-gallery``."""
    parser = subparsers.add_parser(
        "demo-gallery",
        help="build the retrieval gallery of `graft demo` from pairs shards or GeoTIFF tiles",
        description=(
            "Embed satellite tiles with a GRAFT model and save them with their coordinates and thumbnails as the "
            "gallery folder that `graft demo --gallery` and the Space serve. Sources: pairs shards written by "
            "`graft pairs` (--pairs) or georeferenced GeoTIFF tiles (--geotiffs, one gallery item per file)."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pairs", help="pairs parquet file or folder of shards")
    source.add_argument("--geotiffs", nargs="+", help="GeoTIFF tiles or folders of them")
    add_model_fields(
        parser, "GalleryConfig", ("output_dir", "limit", "batch_size", "thumbnail_size", "device"),
        flags={"output_dir": ("-o", "--output")}, required=("output_dir",),
    )  # fmt: skip
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from graft_hf.demo.config import GalleryConfig
    from graft_hf.demo.gallery import build_gallery_from_config

    config = GalleryConfig(**fields_from_args(args, CONFIGS, "GalleryConfig"), pairs=args.pairs, geotiffs=args.geotiffs)
    index = build_gallery_from_config(config)
    logger.info("gallery of %d tiles written to %s; serve it with `graft demo --gallery %s`", len(index),
                config.output_dir, config.output_dir)  # fmt: skip
    return 0
