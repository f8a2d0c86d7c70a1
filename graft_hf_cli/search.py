"""``graft search INDEX_DIR --query "solar farm" -k 10``: text-to-image search of an index built by graft index.

Prints rank, score, tile id, latitude/longitude and date of each hit (``--json`` for machine-readable output);
``--grid out.png`` draws the hits as a retrieval grid. The model recorded in the index is used unless
``--model`` is given.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from graft_hf_cli._errors import speaks_flags
from graft_hf_cli._fields import add_fields, fields_from_args

if TYPE_CHECKING:
    from graft_hf.index import SearchResult

__all__ = ["add_parser", "run"]

_CONFIG = ("graft_hf.evaluation.archive", "SearchConfig")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "search",
        help="search an index of satellite images with text queries",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_fields(
        parser,
        *_CONFIG,
        flags={"index": "index", "queries": ("-q", "--query"), "k": "-k"},
        helps={"queries": "text query; repeatable", "approximate": "use the faiss index"},
        required=("queries",),
        metavars={"queries": "QUERY"},
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--grid", help="write a retrieval grid PNG of the hits")
    parser.set_defaults(handler=run)
    return parser


def _fmt(value: object, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)


def _hit_record(rank: int, hit: SearchResult) -> dict[str, object]:
    return {
        "rank": rank,
        "score": hit.score,
        "tile_id": hit.tile_id,
        "lat": None if hit.lat is None or hit.lat != hit.lat else hit.lat,
        "lon": None if hit.lon is None or hit.lon != hit.lon else hit.lon,
        "date": hit.date or None,
        "row": hit.row,
    }


def _print_table(queries: list[str], results: list[list[SearchResult]]) -> None:
    for query, hits in zip(queries, results, strict=True):
        print(f"query: {query}")
        print(f"{'rank':>4}  {'score':>7}  {'lat':>10}  {'lon':>11}  {'date':<10}  tile_id")
        for rank, hit in enumerate(hits, 1):
            print(
                f"{rank:>4}  {hit.score:>7.4f}  {_fmt(hit.lat, '10.5f'):>10}  {_fmt(hit.lon, '11.5f'):>11}  "
                f"{(hit.date or '-'):<10}  {hit.tile_id}"
            )


def _write_grid(index_dir: str, queries: list[str], results: list[list[SearchResult]], path: str) -> None:
    from graft_hf.evaluation.archive import hit_images
    from graft_hf.evaluation.plots import retrieval_grid

    captions = [
        [f"{_fmt(h.lat, '.4f')}, {_fmt(h.lon, '.4f')}" if h.lat is not None else str(h.tile_id) for h in hits]
        for hits in results
    ]
    images = [hit_images(index_dir, hits) for hits in results]
    print(f"retrieval grid written to {retrieval_grid(queries, images, path, captions=captions)}")


@speaks_flags
def run(args: argparse.Namespace) -> int:
    from graft_hf.evaluation.archive import SearchConfig, search_index

    config = SearchConfig(**fields_from_args(args, *_CONFIG))
    results, _ = search_index(config)
    if args.json:
        rows = [
            {"query": query, "hits": [_hit_record(rank, hit) for rank, hit in enumerate(hits, 1)]}
            for query, hits in zip(config.queries, results, strict=True)
        ]
        print(json.dumps(rows, indent=2))
    else:
        _print_table(config.queries, results)
    if args.grid:
        _write_grid(config.index, config.queries, results, args.grid)
    return 0
