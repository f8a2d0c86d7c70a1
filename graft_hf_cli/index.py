"""``graft index --model DIR --data PAIRS_OR_IMAGES -o INDEX_DIR``: embed a satellite archive for text search.

DATA is a pair-shard folder (or any ``datasets`` folder / Hub id with an image column; tile_id, center_lat,
center_lon and acquisition_date columns become the metadata), or a folder of image files (GeoTIFF centres
become lat/lon). The index is an EmbeddingIndex (a ``datasets`` dataset plus settings) that ``graft search``
queries; ``--approximate`` adds a faiss index for large archives.
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "index",
        help="embed satellite images (with tile id, lat/lon, date) into a searchable index",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="GRAFT model directory")
    parser.add_argument("--data", required=True, help="pair shards / datasets folder / Hub id, or an image folder")
    parser.add_argument("-o", "--output", required=True, help="index folder to write")
    parser.add_argument("--split", default="train", help="split of a datasets source (default: train)")
    parser.add_argument("--approximate", choices=("ivf", "hnsw"), help="also build a faiss index")
    parser.add_argument("--limit", type=int, help="index only the first N images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from graft_hf.evaluation.archive import IndexBuildConfig, build_index

    config = IndexBuildConfig(
        model=args.model,
        data=args.data,
        output=args.output,
        split=args.split,
        approximate=args.approximate,
        limit=args.limit,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.no_progress,
    )
    index = build_index(config)
    extra = f" (+ {args.approximate} approximate index)" if args.approximate else ""
    print(f"indexed {len(index)} images ({index.dim}-d){extra} into {args.output}")
    return 0
