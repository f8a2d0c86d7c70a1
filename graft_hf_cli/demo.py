"""``graft demo``: serve the Gradio demo (retrieval, segmentation, region maps) locally, as the Space does.

``graft demo-gallery`` (module ``demo_gallery``) builds the gallery folder this command serves.
Standard library only at import time; the handler imports :mod:`graft_hf` lazily.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["add_parser", "limits_from_args"]


def _yes_no(text: str) -> bool:
    value = text.strip().lower()
    if value in ("yes", "y", "true", "1"):
        return True
    if value in ("no", "n", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``graft demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="serve the Gradio demo: text-to-image retrieval, segmentation, region maps",
        description=(
            "Start the GRAFT demo web app (the same code as the Hugging Face Space in spaces/): text-to-image "
            "retrieval over a precomputed gallery (build one with `graft demo-gallery`), open-vocabulary "
            "segmentation of an uploaded image or GeoTIFF, and a region map of a query over an uploaded GeoTIFF."
        ),
    )
    parser.add_argument(
        "--model", default=os.environ.get("GRAFT_MODEL"), help="GRAFT model directory or Hub id (default $GRAFT_MODEL)"
    )
    parser.add_argument("--gallery", required=True, help="gallery folder written by `graft demo-gallery`")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", type=_yes_no, default=False, metavar="{yes,no}", help="Gradio share link (no)")
    parser.add_argument(
        "--templates", default="satellite", help="prompt-template set for queries, or 'none' for the text as typed"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    limits = parser.add_argument_group("input limits")
    limits.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MB")
    limits.add_argument("--max-pixels", type=int, default=2048 * 2048, help="largest image to segment, in pixels")
    limits.add_argument("--max-map-pixels", type=int, default=4096 * 4096, help="largest GeoTIFF to map, in pixels")
    limits.add_argument("--max-map-windows", type=int, default=4096, help="most model tiles per region map")
    limits.add_argument("--max-query-chars", type=int, default=200, help="longest query")
    limits.add_argument("--max-queries", type=int, default=8, help="most queries per segmentation")
    limits.add_argument("--k-max", type=int, default=24, help="most retrieval results")
    parser.set_defaults(handler=_run)


def limits_from_args(args: argparse.Namespace):  # noqa: ANN201 - returns DemoLimits (lazy import)
    """Fill :class:`graft_hf.demo.DemoLimits` from parsed ``graft demo`` arguments."""
    from graft_hf.demo.limits import DemoLimits

    return DemoLimits(
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=args.max_pixels,
        max_map_pixels=args.max_map_pixels,
        max_map_windows=args.max_map_windows,
        max_query_chars=args.max_query_chars,
        max_queries=args.max_queries,
        k_max=args.k_max,
        k_default=min(DemoLimits.k_default, args.k_max),
    )


def _run(args: argparse.Namespace) -> int:
    if not args.model:
        raise ValueError("no model given: pass --model /path/to/graft-model (a saved GRAFT directory) or a Hub id")
    from graft_hf.demo.app import build_demo, launch_demo

    limits = limits_from_args(args)
    templates = None if args.templates.lower() == "none" else args.templates
    demo = build_demo(args.model, args.gallery, limits=limits, templates=templates, device=args.device)
    launch_demo(demo, host=args.host, port=args.port, share=args.share, limits=limits)
    return 0
