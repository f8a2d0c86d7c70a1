"""``graft map``: region maps of text queries over a large raster (GRAFT section 4.5).

Standard library only at import time; the handler imports :mod:`graft_hf` lazily.
"""

from __future__ import annotations

import argparse
import json
import logging
import os

__all__ = ["add_parser", "config_from_args"]

logger = logging.getLogger(__name__)


def _numbers(kind: type, count: int, name: str):  # noqa: ANN202 - argparse type factory
    def parse(text: str):  # noqa: ANN202
        parts = [p for p in text.replace(" ", "").split(",") if p]
        try:
            values = tuple(kind(p) for p in parts)
        except ValueError:
            values = ()
        if count and len(values) != count:
            raise argparse.ArgumentTypeError(f"{name} expects {count} comma-separated numbers, got {text!r}")
        if not values:
            raise argparse.ArgumentTypeError(f"{name} expects comma-separated integers, got {text!r}")
        return values

    return parse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``graft map``."""
    parser = subparsers.add_parser(
        "map",
        help="score a large raster against text queries: score GeoTIFFs, PNG overlays, top-k GeoJSON",
        description=(
            "Tile a GeoTIFF/COG with windowed reads, embed the tiles with a GRAFT model and write per query a "
            "georeferenced float32 score GeoTIFF (cosine similarity, or softmax across queries), a PNG overlay and "
            "the top-k tiles as GeoJSON (EPSG:4326). Memory stays bounded by the batch; interrupted runs continue "
            "with --resume."
        ),
    )
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--raster", required=True, help="input GeoTIFF/COG (needs a CRS)")
    io.add_argument("--query", action="append", default=[], help="text query (repeatable)")
    io.add_argument(
        "--model",
        default=os.environ.get("GRAFT_MODEL"),
        help="GRAFT model directory (or Hub id where the Hub is reachable); default $GRAFT_MODEL",
    )
    io.add_argument("-o", "--output", help="output folder (default: <raster name>-graft-map in the current folder)")
    io.add_argument("--templates", help="prompt-template set for the queries, e.g. 'satellite' (default: as written)")
    io.add_argument("--top-k", type=int, default=10, help="tiles per query in topk.geojson")
    io.add_argument("--no-png", action="store_true", help="skip the PNG overlays")
    io.add_argument("--preview-size", type=int, default=1024, help="longest side of the PNG overlays")
    tiling = parser.add_argument_group("tiling")
    tiling.add_argument("--tile-size", type=int, help="model input side in pixels (default: the model's)")
    tiling.add_argument("--stride", type=int, help="tile step in model-input pixels (default: tile size)")
    tiling.add_argument(
        "--gsd",
        default="model",
        help="metres per model-input pixel: 'model' (the model's training GSD; windows are resampled), "
        "'native' (the raster's pixels as they are) or a number",
    )
    tiling.add_argument("--level", choices=("image", "patch"), default="image", help="score per tile or per patch")
    tiling.add_argument("--score", choices=("cosine", "softmax"), default="cosine", help="softmax is across queries")
    tiling.add_argument("--bands", type=_numbers(int, 0, "--bands"), help="1-based raster bands in sensor order")
    tiling.add_argument("--window", type=_numbers(int, 4, "--window"), help="pixel region COL_OFF,ROW_OFF,WIDTH,HEIGHT")
    tiling.add_argument(
        "--bounds",
        type=_numbers(float, 4, "--bounds"),
        help="region WEST,SOUTH,EAST,NORTH in degrees; write --bounds=-99.2,47,-99.1,47.1 when WEST is negative",
    )
    run = parser.add_argument_group("execution")
    run.add_argument("--batch-size", type=int, default=16)
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run in --output")
    run.add_argument("--overwrite", action="store_true", help="discard a previous run in --output")
    run.add_argument("--checkpoint-every", type=float, default=30.0, help="seconds between checkpoints")
    run.add_argument("--gdal-cache-mb", type=int, default=64, help="GDAL block cache size")
    run.add_argument("--no-progress", action="store_true")
    parser.set_defaults(handler=_run)


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 - returns RegionMapConfig (lazy import)
    """Fill :class:`graft_hf.tasks.region_map.RegionMapConfig` from parsed ``graft map`` arguments."""
    from graft_hf.tasks.region_map import RegionMapConfig

    if not args.model:
        raise ValueError("no model given: pass --model /path/to/graft-model (a saved GRAFT directory)")
    output = args.output or f"{os.path.splitext(os.path.basename(args.raster))[0]}-graft-map"
    return RegionMapConfig(
        raster=args.raster,
        queries=tuple(args.query),
        model=args.model,
        output_dir=output,
        tile_size=args.tile_size,
        stride=args.stride,
        gsd=args.gsd,
        level=args.level,
        score=args.score,
        templates=args.templates,
        batch_size=args.batch_size,
        top_k=args.top_k,
        bands=args.bands,
        window=args.window,
        bounds=args.bounds,
        resume=args.resume,
        overwrite=args.overwrite,
        png=not args.no_png,
        preview_max_side=args.preview_size,
        checkpoint_interval_s=args.checkpoint_every,
        device=args.device,
        gdal_cache_mb=args.gdal_cache_mb,
        progress=not args.no_progress,
    )


def _run(args: argparse.Namespace) -> int:
    from graft_hf.tasks.region_map import run_region_map

    result = run_region_map(config_from_args(args))
    summary = {
        "windows": result.num_windows,
        "windows_run": result.windows_run,
        "windows_nodata": result.windows_nodata,
        "area_km2": None if result.area_km2 is None else round(result.area_km2, 3),
        "seconds": round(result.seconds, 2),
        "scores": result.score_paths,
        "topk": result.topk_path,
    }
    logger.info("region map done: %s", json.dumps(summary))
    return 0
