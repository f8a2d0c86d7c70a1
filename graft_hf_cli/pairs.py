"""``graft pairs``: build ground-satellite pair shards (``build``) and embed their photos (``embed``).

Standard library only at import time; the handlers import :mod:`graft_hf` lazily.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
from typing import TYPE_CHECKING

from graft_hf_cli._fields import add_fields, fields_from_args, read_fields

if TYPE_CHECKING:
    from graft_hf.pairs.config import PairsBuildConfig

__all__ = ["add_parser", "config_from_args"]

logger = logging.getLogger(__name__)

_MODULE = "graft_hf.pairs.config"
#: The photo table's roles: the fields of PhotoColumns (read from its source, nothing imported).
_PHOTO_ROLES = tuple(read_fields(_MODULE, "PhotoColumns"))
_GROUPS = {
    "sampling (GRAFT section 3.2)": (
        "sensor", "seed", "crop_size", "footprint_size", "max_photos_per_tile", "exclusive_assignment",
        "max_cloud_cover", "unknown_cloud_cover", "scene_choice", "max_nodata_fraction",
    ),
    "resolution (crops warped to the sensor's training GSD)": ("gsd", "native_gsd", "resampling"),
    "random-tile ablation (GRAFT section 4.4)": ("tile_placement", "random_tiles"),
    "output": (
        "crop_format", "crop_quality", "tiles_per_shard", "row_group_size", "include_bands", "include_photo_bytes", "download_photo_urls",
        "s2_rgb_max", "s2_offset",
    ),
    "execution": ("workers", "num_shards", "shard_index", "read_mode", "strict_rasters", "progress"),
}  # fmt: skip


def _add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``graft pairs build`` flags: one per field of ``PairsBuildConfig`` (plus ``--column ROLE=NAME``)."""
    inputs = parser.add_argument_group("inputs and output")
    add_fields(
        parser,
        _MODULE,
        "PairsBuildConfig",
        only=("photos", "catalog", "rasters", "output_dir"),
        flags={"rasters": "--raster", "output_dir": ("-o", "--output")},
        helps={"rasters": "raster path or URL (repeatable) when there is no --catalog"},
        required=("photos", "output_dir"),
        metavars={"rasters": "RASTER", "output_dir": "OUTPUT"},
        group=inputs,
    )
    inputs.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="ROLE=NAME",
        help=f"photo table column for ROLE, one of {', '.join(_PHOTO_ROLES)} (default: common aliases)",
    )
    parser.set_defaults(_field_flags={**parser.get_default("_field_flags"), "columns": "--column"})
    for title, names in _GROUPS.items():
        add_fields(
            parser,
            _MODULE,
            "PairsBuildConfig",
            only=names,
            flags={"include_photo_bytes": "--no-photo-bytes"},
            helps={"include_photo_bytes": "do not store the photos' image bytes", "progress": "no progress bar"},
            group=parser.add_argument_group(title),
        )


def _photo_columns(items: list[str]) -> dict[str, str]:
    columns = {}
    for item in items:
        role, sep, name = item.partition("=")
        if not sep or role not in _PHOTO_ROLES or not name:
            raise ValueError(f"--column expects ROLE=NAME with ROLE in {', '.join(_PHOTO_ROLES)}, got {item!r}")
        columns[role] = name
    return columns


def config_from_args(args: argparse.Namespace) -> PairsBuildConfig:
    """Fill :class:`graft_hf.pairs.config.PairsBuildConfig` from parsed ``graft pairs build`` arguments.

    Flags left at ``None`` (not given, no literal default) keep the dataclass default, e.g. the Sentinel-2 scaling
    from the sensor registry.
    """
    from graft_hf.pairs.config import PairsBuildConfig, PhotoColumns

    values = {k: v for k, v in fields_from_args(args, _MODULE, "PairsBuildConfig").items() if v is not None}
    return PairsBuildConfig(**values, columns=PhotoColumns(**_photo_columns(args.column)))


def _run_build(args: argparse.Namespace) -> int:
    from graft_hf.pairs.builder import build_pairs

    result = build_pairs(config_from_args(args))
    if result["complete"]:
        summary = {k: result[k] for k in ("photos", "tiles", "shards")}
        logger.info("wrote %s: %s", args.output_dir, json.dumps(summary))
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

    from graft_hf_cli import _pairs_filter

    filter_parser = commands.add_parser("filter", help="drop duplicate, indoor and near-duplicate photos (optional)")
    _pairs_filter.add_arguments(filter_parser)
    filter_parser.set_defaults(handler=_pairs_filter.run)

    if importlib.util.find_spec(f"{__package__}._pairs_embed") is not None:
        embed_module = importlib.import_module(f"{__package__}._pairs_embed")
        embed = commands.add_parser("embed", help="compute frozen CLIP embeddings of the shards' ground photos")
        embed_module.add_arguments(embed)
        embed.set_defaults(handler=embed_module.run)
