"""``graft collect``: the front end of a GRAFT dataset. ``photos`` (Flickr API or YFCC100M -> photo table),
``download`` (URLs -> image files), ``imagery`` (STAC -> the scenes under the photos) and ``sign`` (fresh
Planetary Computer tokens for a collection).

Standard library only at import time; flags are read from ``graft_hf.collect.config``'s source and the handlers
import graft_hf lazily.
"""

from __future__ import annotations

import argparse
import json
import logging

from graft_hf_cli._fields import add_fields, fields_from_args

__all__ = ["add_parser"]

logger = logging.getLogger(__name__)

_MODULE = "graft_hf.collect.config"
_OUTPUT = {"output": ("-o", "--output")}


def _given(args: argparse.Namespace, cls: str) -> dict:
    """The config fields set on the command line (flags left at ``None`` keep the dataclass default)."""
    return {k: v for k, v in fields_from_args(args, _MODULE, cls).items() if v is not None}


def _bbox(text: str) -> tuple[float, ...]:
    from graft_hf.collect.region import parse_bbox  # stdlib-only module apart from shapely/numpy, only on use

    try:
        return parse_bbox(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(getattr(error, "reason", error))) from error


def _add_photos(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "photos",
        help="geotagged photos of a region and date range (Flickr API or a YFCC100M dump) -> photo table",
        description=(
            "Collect geotagged ground photos over a region (--bbox or --region) and capture-date range into a "
            "parquet photo table, sampled uniformly over a grid of cells (GRAFT section 3.2). The Flickr API key "
            "and secret are read from FLICKR_API_KEY and FLICKR_API_SECRET; --yfcc reads a YFCC100M metadata dump "
            "instead. Rerunning after a kill resumes from the finished query cells."
        ),
    )
    where = parser.add_argument_group("region, dates and source")
    where.add_argument(
        "--bbox",
        type=_bbox,
        metavar="WEST,SOUTH,EAST,NORTH",
        help="region as a box in degrees (WGS84); write --bbox=... when WEST is negative",
    )
    add_fields(
        parser, _MODULE, "CollectPhotosConfig", only=("region", "start", "end", "yfcc", "output"), flags=_OUTPUT,
        required=("output", "start", "end"), metavars={"region": "FILE.geojson", "yfcc": "PATH"}, group=where,
    )  # fmt: skip
    parser.set_defaults(_field_flags={**parser.get_default("_field_flags"), "bbox": "--bbox"})
    add_fields(
        parser, _MODULE, "CollectPhotosConfig", only=("min_accuracy", "licenses", "non_commercial"),
        flags={"licenses": "--license"}, metavars={"licenses": "ID"}, group=parser.add_argument_group("filters"),
    )  # fmt: skip
    add_fields(
        parser, _MODULE, "CollectPhotosConfig", only=("cell_size_km", "max_photos_per_cell", "seed"),
        group=parser.add_argument_group("uniform sampling"),
    )  # fmt: skip
    add_fields(
        parser, _MODULE, "CollectPhotosConfig",
        only=("endpoint", "per_page", "result_cap", "min_cell_degrees", "requests_per_second", "max_retries",
              "backoff_seconds", "timeout", "flush_rows", "state_dir", "progress"),
        group=parser.add_argument_group("Flickr API and execution"),
    )  # fmt: skip
    parser.set_defaults(handler=_run_photos)


def _run_photos(args: argparse.Namespace) -> int:
    from graft_hf.collect.config import CollectPhotosConfig
    from graft_hf.collect.photos import collect_photos

    values = _given(args, "CollectPhotosConfig")
    report = collect_photos(CollectPhotosConfig(**values))  # --bbox is parsed into the bbox field
    print(json.dumps({k: report[k] for k in ("photos_found", "photos_kept", "output", "cells_csv")}, indent=2))
    return 0


def _add_download(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "download",
        help="photo URLs -> resized JPEG files in shard folders + a photo table pointing at them",
        description=(
            "Download the photos of a photo table (retries with backoff, timeouts, failures counted by reason), "
            "resize them for the teacher and write OUTPUT/photos.parquet whose image column points at the files, "
            "which graft pairs build reads in place. Resumable by shard; split across machines with "
            "--num-shards/--shard-index."
        ),
    )
    add_fields(
        parser, "graft_hf.collect.config", "DownloadConfig", flags={"output_dir": ("-o", "--output")},
        required=("photos", "output_dir"), metavars={"output_dir": "OUTPUT"},
    )  # fmt: skip
    parser.set_defaults(handler=_run_download)


def _run_download(args: argparse.Namespace) -> int:
    from graft_hf.collect.config import DownloadConfig
    from graft_hf.collect.download import download_photos

    result = download_photos(DownloadConfig(**_given(args, "DownloadConfig")))
    keys = ("complete", "shards_done", "shards_total", "photos_requested", "photos_downloaded", "failures")
    print(json.dumps({k: result[k] for k in keys if k in result}, indent=2))
    return 0


def _add_imagery(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "imagery",
        help="the scenes under the photos from a STAC API -> a STAC ItemCollection for graft pairs build --catalog",
        description=(
            "Search a STAC API (default: Microsoft Planetary Computer) for the scenes under the photos: NAIP, the "
            "newest scene; Sentinel-2 L2A, the scene closest in time with a catalogued cloud cover below "
            "--max-cloud-cover (scenes without a cloud value are counted apart and left out unless "
            "--include-unknown-cloud). Planetary Computer asset URLs are signed."
        ),
    )
    add_fields(
        parser, _MODULE, "ImageryConfig", flags=_OUTPUT, required=("photos", "output"),
        metavars={"output": "ITEMS.json"},
    )  # fmt: skip
    parser.set_defaults(handler=_run_imagery)


def _run_imagery(args: argparse.Namespace) -> int:
    from graft_hf.collect.config import ImageryConfig
    from graft_hf.collect.imagery import collect_imagery

    report = collect_imagery(ImageryConfig(**_given(args, "ImageryConfig")))
    print(json.dumps(report, indent=2))
    return 0


def _add_sign(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sign",
        help="re-sign the Planetary Computer URLs of an ItemCollection (and its VRTs) with fresh tokens",
        description="Replace the SAS tokens of every Planetary Computer URL in ITEMS.json (in place) before a build.",
    )
    parser.add_argument("items", metavar="ITEMS.json", help="ItemCollection written by graft collect imagery")
    parser.add_argument("--sas-url", default=None, help="token endpoint (default: PC_SDK_SAS_URL or the public one)")
    parser.set_defaults(handler=_run_sign)


def _run_sign(args: argparse.Namespace) -> int:
    from graft_hf.collect.imagery import sign_item_collection

    print(json.dumps(sign_item_collection(args.items, args.sas_url), indent=2))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``graft collect`` with its ``photos``, ``download``, ``imagery`` and ``sign`` subcommands."""
    parser = subparsers.add_parser("collect", help="collect ground photos, their images and the imagery under them")
    commands = parser.add_subparsers(dest="collect_command", metavar="SUBCOMMAND")
    parser.set_defaults(handler=lambda _args: (parser.print_help(), 2)[1])
    _add_photos(commands)
    _add_download(commands)
    _add_imagery(commands)
    _add_sign(commands)
