"""``graft demo-gallery``: embed gallery tiles once for the demo's text-to-image retrieval.

Standard library only at import time; the handler imports :mod:`graft_hf` lazily.
"""

from __future__ import annotations

import argparse
import logging
import os

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
    parser.add_argument(
        "--model", default=os.environ.get("GRAFT_MODEL"), help="GRAFT model directory or Hub id (default $GRAFT_MODEL)"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pairs", help="pairs parquet file or folder of shards")
    source.add_argument("--geotiffs", nargs="+", help="GeoTIFF tiles or folders of them")
    parser.add_argument("-o", "--output", required=True, help="gallery folder to write")
    parser.add_argument("--limit", type=int, help="stop after this many tiles (pairs only)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--thumbnail-size", type=int, default=128, help="longest side of the stored thumbnails")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if not args.model:
        raise ValueError("no model given: pass --model /path/to/graft-model (a saved GRAFT directory) or a Hub id")
    if args.limit is not None and args.limit <= 0:
        raise ValueError(f"--limit must be positive, got {args.limit}")
    from graft_hf.demo.gallery import build_gallery, records_from_geotiffs, records_from_pairs
    from graft_hf.tasks.map_setup import load_map_model

    model, image_processor, _ = load_map_model(args.model, args.device)
    records = records_from_pairs(args.pairs, args.limit) if args.pairs else records_from_geotiffs(args.geotiffs)
    index = build_gallery(
        model, records, args.output, image_processor=image_processor, batch_size=args.batch_size,
        thumbnail_size=args.thumbnail_size, model_name=args.model,
    )  # fmt: skip
    logger.info("gallery of %d tiles written to %s; serve it with `graft demo --gallery %s`", len(index),
                args.output, args.output)  # fmt: skip
    return 0
