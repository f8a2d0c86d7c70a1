"""``graft pairs``: build ground-satellite pair shards (``build``) and embed their photos (``embed``).

Standard library only at import time; the handlers import :mod:`graft_hf` lazily.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging

__all__ = ["add_parser", "config_from_args"]

logger = logging.getLogger(__name__)

_PHOTO_ROLES = ("photo_id", "lat", "lon", "time", "image", "url", "text", "license", "owner", "embedding")


def _add_build_arguments(parser: argparse.ArgumentParser) -> None:
    io = parser.add_argument_group("inputs and output")
    io.add_argument("--photos", required=True, help="CSV or Parquet table of geotagged ground photos")
    io.add_argument("--catalog", help="raster catalogue: STAC ItemCollection (.json/.geojson) or CSV")
    io.add_argument(
        "--raster", action="append", default=[], help="raster path/URL (repeatable) when there is no --catalog"
    )
    io.add_argument("-o", "--output", required=True, help="output folder (shards, README.md, build_report.json)")
    io.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="ROLE=NAME",
        help=f"photo table column for ROLE, one of {', '.join(_PHOTO_ROLES)} (default: common aliases)",
    )
    sampling = parser.add_argument_group("sampling (GRAFT section 3.2)")
    sampling.add_argument("--sensor", choices=("naip", "sentinel2"), default="naip")
    sampling.add_argument("--seed", type=int, default=0)
    sampling.add_argument("--crop-size", type=int, default=448, help="stored crop side in pixels")
    sampling.add_argument("--footprint-size", type=int, default=224, help="footprint side in pixels")
    sampling.add_argument("--max-photos-per-tile", type=int, default=25)
    sampling.add_argument(
        "--exclusive-assignment", action="store_true", help="a photo joins only the first tile covering it"
    )
    sampling.add_argument("--max-cloud-cover", type=float, default=1.0, help="percent; cloudier scenes are unused")
    sampling.add_argument("--scene-choice", choices=("auto", "newest", "closest_time"), default="auto")
    sampling.add_argument("--max-nodata-fraction", type=float, default=0.5)
    output = parser.add_argument_group("output")
    output.add_argument("--tiles-per-shard", type=int, default=256)
    output.add_argument("--row-group-size", type=int, default=32)
    output.add_argument("--include-bands", action="store_true", help="also store the raw multi-band crop (.npy)")
    output.add_argument("--no-photo-bytes", action="store_true", help="do not store the photos' image bytes")
    output.add_argument("--download-photo-urls", action="store_true", help="fetch photos given only by URL")
    output.add_argument("--s2-rgb-max", type=float, default=3000.0, help="Sentinel-2 value mapped to 255")
    output.add_argument("--s2-offset", type=float, default=0.0, help="subtracted from Sentinel-2 values first")
    run = parser.add_argument_group("execution")
    run.add_argument("--workers", type=int, default=1, help="processes on this machine")
    run.add_argument("--num-shards", type=int, default=1, help="jobs the build is split over (Slurm array, ...)")
    run.add_argument("--shard-index", type=int, default=0, help="this job's index in [0, --num-shards)")
    run.add_argument("--read-mode", choices=("window", "full"), default="window")
    run.add_argument("--no-progress", action="store_true")


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 - returns PairsBuildConfig (lazy import)
    """Fill :class:`graft_hf.pairs.config.PairsBuildConfig` from parsed ``graft pairs build`` arguments."""
    from graft_hf.pairs.config import PairsBuildConfig, PhotoColumns

    columns = {}
    for item in args.column:
        role, sep, name = item.partition("=")
        if not sep or role not in _PHOTO_ROLES or not name:
            raise ValueError(f"--column expects ROLE=NAME with ROLE in {', '.join(_PHOTO_ROLES)}, got {item!r}")
        columns[role] = name
    return PairsBuildConfig(
        photos=args.photos,
        output_dir=args.output,
        catalog=args.catalog,
        rasters=tuple(args.raster),
        sensor=args.sensor,
        seed=args.seed,
        crop_size=args.crop_size,
        footprint_size=args.footprint_size,
        max_photos_per_tile=args.max_photos_per_tile,
        exclusive_assignment=args.exclusive_assignment,
        max_cloud_cover=args.max_cloud_cover,
        scene_choice=args.scene_choice,
        max_nodata_fraction=args.max_nodata_fraction,
        tiles_per_shard=args.tiles_per_shard,
        row_group_size=args.row_group_size,
        workers=args.workers,
        num_shards=args.num_shards,
        shard_index=args.shard_index,
        read_mode=args.read_mode,
        include_bands=args.include_bands,
        include_photo_bytes=not args.no_photo_bytes,
        download_photo_urls=args.download_photo_urls,
        s2_rgb_max=args.s2_rgb_max,
        s2_offset=args.s2_offset,
        columns=PhotoColumns(**columns),
        progress=not args.no_progress,
    )


def _run_build(args: argparse.Namespace) -> int:
    from graft_hf.pairs.builder import build_pairs

    result = build_pairs(config_from_args(args))
    if result["complete"]:
        summary = {k: result[k] for k in ("photos", "tiles", "shards")}
        logger.info("wrote %s: %s", args.output, json.dumps(summary))
    else:
        logger.info(
            "job %d finished; %d of %d shards exist (rerun or let the other jobs finish)",
            args.shard_index,
            result["shards_done"],
            result["shards_total"],
        )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``graft pairs`` with its ``build`` (and, when available, ``embed``) subcommands."""
    parser = subparsers.add_parser("pairs", help="build and embed ground-satellite pair datasets")
    commands = parser.add_subparsers(dest="pairs_command", metavar="SUBCOMMAND")
    parser.set_defaults(handler=lambda _args: (parser.print_help(), 2)[1])

    build = commands.add_parser(
        "build",
        help="sample tiles around photo geotags and write parquet shards + dataset card",
        description=(
            "Sample satellite tiles centred on ground-photo geotags (GRAFT section 3.2), cut crops from the "
            "catalogue's rasters and write deterministic, resumable parquet shards loadable with "
            "datasets.load_dataset(OUTPUT, streaming=True)."
        ),
    )
    _add_build_arguments(build)
    build.set_defaults(handler=_run_build)

    if importlib.util.find_spec(f"{__package__}._pairs_embed") is not None:
        embed_module = importlib.import_module(f"{__package__}._pairs_embed")
        embed = commands.add_parser("embed", help="compute frozen CLIP embeddings of the shards' ground photos")
        embed_module.add_arguments(embed)
        embed.set_defaults(handler=embed_module.run)
