"""``graft demo``: serve the Gradio demo (retrieval, segmentation, region maps) locally, as the Space does.

``graft demo-gallery`` (module ``demo_gallery``) builds the gallery folder this command serves. The flags are read
from the jobs' config dataclasses (``graft_hf.demo.config``, ``graft_hf.demo.limits.DemoLimits``).
Standard library only at import time; the handler imports :mod:`graft_hf` lazily.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from graft_hf_cli._fields import add_fields, fields_from_args

if TYPE_CHECKING:
    from graft_hf.demo.limits import DemoLimits

__all__ = ["add_model_fields", "add_parser", "limits_from_args"]

CONFIGS = "graft_hf.demo.config"
_LIMITS = "graft_hf.demo.limits"


def _yes_no(text: str) -> bool:
    value = text.strip().lower()
    if value in ("yes", "y", "true", "1"):
        return True
    if value in ("no", "n", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


def add_model_fields(
    parser: argparse.ArgumentParser,
    cls: str,
    only: tuple[str, ...],
    *,
    flags: dict[str, str | tuple[str, ...]] | None = None,
    required: tuple[str, ...] = (),
) -> None:
    """``--model`` (default ``$GRAFT_MODEL``) and the flags ``only`` of a demo job's config (a ``DemoModelConfig``)."""
    helps = {"model": "GRAFT model folder, Hub id or registered name such as graft-naip-vitb16 (default $GRAFT_MODEL)"}
    add_fields(parser, CONFIGS, cls, only=("model", *only), flags=flags, helps=helps, required=required)
    parser.set_defaults(model=os.environ.get("GRAFT_MODEL"))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``graft demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="serve the Gradio demo: text-to-image retrieval, segmentation, region maps",
        description=(
            "Start the GRAFT demo web app (the same code as the Hugging Face Space in spaces/): text-to-image "
            "retrieval over a precomputed gallery (build one with `graft demo-gallery`), open-vocabulary "
            "segmentation of an uploaded image or GeoTIFF, and a region map of a query over an uploaded GeoTIFF. "
            "Without --model (and GRAFT_MODEL) it serves the model of `graft quickstart` (runs/quickstart) with a "
            "gallery of 1,000 EuroSAT test tiles, built on first use."
        ),
    )
    add_model_fields(parser, "DemoConfig", ("gallery", "host", "port"))
    parser.add_argument("--share", type=_yes_no, default=False, metavar="{yes,no}", help="Gradio share link (no)")
    add_fields(parser, CONFIGS, "DemoConfig", only=("templates", "device"))
    limits = parser.add_argument_group("input limits")
    limits.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MB (default: 20)")
    add_fields(
        parser, _LIMITS, "DemoLimits", group=limits,
        only=("max_pixels", "max_map_pixels", "max_map_windows", "max_query_chars", "max_queries", "k_max"),
    )  # fmt: skip
    parser.set_defaults(handler=_run)


def limits_from_args(args: argparse.Namespace) -> DemoLimits:
    """Fill :class:`graft_hf.demo.DemoLimits` from parsed ``graft demo`` arguments."""
    from graft_hf.demo.limits import DemoLimits

    values = fields_from_args(args, _LIMITS, "DemoLimits")
    k_max = values.get("k_max", DemoLimits.k_max)
    return DemoLimits(
        **values, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), k_default=min(DemoLimits.k_default, k_max)
    )


def _quickstart_defaults(values: dict) -> dict:
    """No --model: the model of a `graft quickstart` run here, with its EuroSAT demo gallery (built on first use)."""
    from graft_hf.config import ConfigError
    from graft_hf.demo.quickstart import QUICKSTART_RUN, quickstart_gallery, quickstart_model
    from graft_hf_cli.quickstart import default_eurosat_path

    model = quickstart_model(QUICKSTART_RUN)
    if model is None:
        raise ConfigError(
            "model",
            "no model given: pass a GRAFT model folder, Hub id or registered name, or set $GRAFT_MODEL; after "
            f"`graft quickstart`, `graft demo` alone serves its model ({QUICKSTART_RUN}/train/model)",
        )
    values["model"] = str(model)
    if values.get("gallery") is None:
        values["gallery"] = str(
            quickstart_gallery(str(default_eurosat_path()), QUICKSTART_RUN, device=values["device"])
        )
    return values


def _run(args: argparse.Namespace) -> int:
    from graft_hf.demo.app import build_demo_from_config, launch_demo
    from graft_hf.demo.config import DemoConfig

    values = fields_from_args(args, CONFIGS, "DemoConfig")
    if not values.get("model"):
        values = _quickstart_defaults(values)
    config = DemoConfig(**values, share=args.share, limits=limits_from_args(args))
    demo = build_demo_from_config(config)
    launch_demo(demo, host=config.host, port=config.port, share=config.share, limits=config.limits)
    return 0
