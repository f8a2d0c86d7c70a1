"""``graft mosaic-benchmark``: GRAFT's pixel-level model (eq. 3) on EuroSAT mosaics, in one resumable command.

Builds 4 x 4 mosaics of real EuroSAT tiles (training tiles for training, test tiles for evaluation) with
simulated ground observations placed inside each tile's block, embeds them with all-MiniLM-L6-v2, trains a
scratch ViT with the pixel-level loss, and scores zero-shot segmentation of the test mosaics (per-class accuracy,
mIoU) against broadcasting the image-level model's single prediction to every pixel. The report
(``report/report.md``, ``report.json``, example maps, confusion matrix) lands in ``--output``. Rerunning the
command after a kill resumes: finished shards, embeddings and checkpoints are kept.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from graft_hf_cli._fields import add_fields, fields_from_args
from graft_hf_cli.quickstart import CONFIG, OUTPUT_AND_DATA, default_eurosat_path

if TYPE_CHECKING:
    from graft_hf.quickstart.config import MosaicConfig

__all__ = ["add_parser", "build_config", "run"]

STUDENT_FLAGS = {
    "patch_size": "--patch-size",
    "hidden_size": "--hidden-size",
    "num_layers": "--layers",
    "num_heads": "--heads",
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "mosaic-benchmark",
        help="pixel-level EuroSAT mosaics benchmark (zero-shot segmentation vs the image-level baseline)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_fields(parser, CONFIG, "MosaicConfig", **OUTPUT_AND_DATA)
    add_fields(parser, CONFIG, "StudentArch", only=tuple(STUDENT_FLAGS), flags=STUDENT_FLAGS)
    parser.set_defaults(handler=run)
    return parser


def build_config(args: argparse.Namespace) -> MosaicConfig:
    """The run's config from the parsed flags: the student's input is the mosaic (``grid * tile_size`` px)."""
    from graft_hf.config import ConfigError
    from graft_hf.quickstart.config import MosaicConfig, StudentArch

    values = fields_from_args(args, CONFIG, "MosaicConfig")
    values["data"] = values["data"] or str(default_eurosat_path())
    arch = fields_from_args(args, CONFIG, "StudentArch")
    try:
        student = StudentArch(image_size=values["grid"] * values["tile_size"], **arch)
        return MosaicConfig(**values, student=student)
    except ConfigError as error:
        # The student's fields have flags of their own (--patch-size, --layers...): name those, not "student.".
        raise ConfigError((error.key or "").removeprefix("student.") or None, error.reason) from None


def run(args: argparse.Namespace) -> int:
    from graft_hf.quickstart.common import as_percent
    from graft_hf.quickstart.mosaic_run import run_mosaic_benchmark

    config = build_config(args)
    report = run_mosaic_benchmark(config)
    pixel, base = report["pixel_level"], report["baseline"]
    print(
        f"EuroSAT mosaics: pixel-level mean per-class accuracy {as_percent(pixel['mean_accuracy'])}, mIoU "
        f"{as_percent(pixel['miou'])}; image-level broadcast baseline {as_percent(base['mean_accuracy'])}, mIoU "
        f"{as_percent(base['miou'])}; {report['seconds']['total']:.0f} s; report: {config.output_dir}/report/report.md"
    )
    return 0
