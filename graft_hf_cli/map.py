"""``graft map``: region maps of text queries over a large raster (GRAFT section 4.5).

Standard library only at import time; the handler imports :mod:`graft_hf` lazily. Flags, defaults and help come
from :class:`graft_hf.tasks.map_setup.RegionMapConfig`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from graft_hf_cli._errors import name_flag, speaks_flags
from graft_hf_cli._fields import MISSING, add_fields, fields_from_args, read_fields

if TYPE_CHECKING:
    from graft_hf.tasks.map_setup import RegionMapConfig

__all__ = ["add_parser", "config_from_args"]

logger = logging.getLogger(__name__)
_CONFIG = ("graft_hf.tasks.map_setup", "RegionMapConfig")


def _numbers(kind: type, count: int, name: str) -> Callable[[str], tuple]:
    """An argparse type for `count` comma-separated numbers (any number when `count` is 0)."""

    def parse(text: str) -> tuple:
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


def _add_by_hand(
    parser: argparse.ArgumentParser, group: argparse._ArgumentGroup, name: str, flag: str, **kwargs
) -> None:
    """A flag whose syntax `add_fields` cannot derive from the field type; default and help still come from it."""
    spec = read_fields(*_CONFIG)[name]
    default = None if spec.default is MISSING else spec.default
    help_text = kwargs.pop("help", spec.help) + (f" (default: {default})" if default is not None else "")
    group.add_argument(flag, dest=name, default=default, help=help_text.replace("%", "%%"), **kwargs)
    name_flag(parser, name, flag)


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
    _add_io_flags(parser, parser.add_argument_group("inputs and outputs"))
    _add_tiling_flags(parser, parser.add_argument_group("tiling"))
    add_fields(
        parser,
        *_CONFIG,
        only=("batch_size", "device", "resume", "overwrite", "checkpoint_interval_s", "gdal_cache_mb", "progress"),
        flags={"checkpoint_interval_s": "--checkpoint-every"},
        helps={"progress": "no progress bars"},
        metavars={"checkpoint_interval_s": "SECONDS"},
        group=parser.add_argument_group("execution"),
    )
    parser.set_defaults(handler=_run)


def _add_io_flags(parser: argparse.ArgumentParser, io: argparse._ArgumentGroup) -> None:
    add_fields(
        parser,
        *_CONFIG,
        only=("raster", "queries", "model", "output_dir"),
        flags={"queries": "--query", "output_dir": ("-o", "--output")},
        helps={
            "model": "GRAFT model folder, Hub id or registered name such as graft-naip-vitb16-pixel; default "
            "$GRAFT_MODEL",
            "output_dir": "output folder (default: <raster name>-graft-map in the current folder)",
        },
        required=("raster",),
        metavars={"queries": "QUERY", "output_dir": "OUTPUT"},
        group=io,
    )
    parser.set_defaults(model=os.environ.get("GRAFT_MODEL"))
    _add_by_hand(parser, io, "templates", "--templates")
    add_fields(
        parser,
        *_CONFIG,
        only=("top_k", "png", "preview_max_side"),
        flags={"preview_max_side": "--preview-size"},
        helps={"png": "skip the PNG overlays"},
        metavars={"preview_max_side": "PIXELS"},
        group=io,
    )


def _add_tiling_flags(parser: argparse.ArgumentParser, tiling: argparse._ArgumentGroup) -> None:
    add_fields(parser, *_CONFIG, only=("tile_size", "stride"), group=tiling)
    _add_by_hand(parser, tiling, "gsd", "--gsd")
    add_fields(parser, *_CONFIG, only=("level", "score"), group=tiling)
    _add_by_hand(
        parser,
        tiling,
        "bands",
        "--bands",
        type=_numbers(int, 0, "--bands"),
        help="1-based raster bands in sensor order",
    )
    _add_by_hand(
        parser,
        tiling,
        "window",
        "--window",
        type=_numbers(int, 4, "--window"),
        help="pixel region COL_OFF,ROW_OFF,WIDTH,HEIGHT",
    )
    _add_by_hand(
        parser,
        tiling,
        "bounds",
        "--bounds",
        type=_numbers(float, 4, "--bounds"),
        help="region WEST,SOUTH,EAST,NORTH in degrees; write --bounds=-99.2,47,-99.1,47.1 when WEST is negative",
    )


def config_from_args(args: argparse.Namespace) -> RegionMapConfig:
    """Fill :class:`graft_hf.tasks.region_map.RegionMapConfig` from parsed ``graft map`` arguments."""
    from graft_hf.tasks.region_map import RegionMapConfig

    values = fields_from_args(args, *_CONFIG)
    if not values.get("model"):
        raise ValueError(
            "no model given: pass --model (a saved GRAFT folder, a Hub id or a registered name such as "
            "graft-naip-vitb16-pixel)"
        )
    values.setdefault("queries", ())
    stem = os.path.splitext(os.path.basename(values["raster"]))[0]
    values["output_dir"] = values.get("output_dir") or f"{stem}-graft-map"
    return RegionMapConfig(**values)


@speaks_flags
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
