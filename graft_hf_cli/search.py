"""``graft search INDEX_DIR --query "solar farm" -k 10``: text-to-image search of an index built by graft index.

Prints rank, score, tile id, latitude/longitude and date of each hit (``--json`` for machine-readable output);
``--grid out.png`` draws the hits as a retrieval grid. The model recorded in the index is used unless
``--model`` is given.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "search",
        help="search an index of satellite images with text queries",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("index", help="index folder written by graft index")
    parser.add_argument("-q", "--query", action="append", required=True, help="text query; repeatable")
    parser.add_argument("--model", help="model directory (default: the one that built the index)")
    parser.add_argument("--text-encoder", help="separate text encoder directory (e.g. all-MiniLM-L6-v2)")
    parser.add_argument("-k", type=int, default=10, help="hits per query (default: 10)")
    parser.add_argument("--approximate", action="store_true", help="use the faiss index")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--grid", help="write a retrieval grid PNG of the hits")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.set_defaults(handler=run)
    return parser


def _fmt(value: object, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)


def run(args: argparse.Namespace) -> int:
    from graft_hf.evaluation.archive import SearchConfig, hit_images, search_index

    if args.k <= 0:
        raise ValueError(f"-k must be positive, got {args.k}")
    config = SearchConfig(
        index=args.index,
        queries=list(args.query),
        model=args.model,
        text_encoder=args.text_encoder,
        k=args.k,
        approximate=args.approximate,
        device=args.device,
    )
    results, _ = search_index(config)
    if args.json:
        rows = [
            {
                "query": query,
                "hits": [
                    {
                        "rank": rank,
                        "score": hit.score,
                        "tile_id": hit.tile_id,
                        "lat": None if hit.lat is None or hit.lat != hit.lat else hit.lat,
                        "lon": None if hit.lon is None or hit.lon != hit.lon else hit.lon,
                        "date": hit.date or None,
                        "row": hit.row,
                    }
                    for rank, hit in enumerate(hits, 1)
                ],
            }
            for query, hits in zip(config.queries, results, strict=True)
        ]
        print(json.dumps(rows, indent=2))
    else:
        for query, hits in zip(config.queries, results, strict=True):
            print(f"query: {query}")
            print(f"{'rank':>4}  {'score':>7}  {'lat':>10}  {'lon':>11}  {'date':<10}  tile_id")
            for rank, hit in enumerate(hits, 1):
                print(
                    f"{rank:>4}  {hit.score:>7.4f}  {_fmt(hit.lat, '10.5f'):>10}  {_fmt(hit.lon, '11.5f'):>11}  "
                    f"{(hit.date or '-'):<10}  {hit.tile_id}"
                )
    if args.grid:
        from graft_hf.evaluation.plots import retrieval_grid

        captions = [
            [f"{_fmt(h.lat, '.4f')}, {_fmt(h.lon, '.4f')}" if h.lat is not None else str(h.tile_id) for h in hits]
            for hits in results
        ]
        images = [hit_images(args.index, hits) for hits in results]
        path = retrieval_grid(config.queries, images, args.grid, captions=captions)
        print(f"retrieval grid written to {path}")
    return 0
