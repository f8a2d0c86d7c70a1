"""``graft quickstart``: the complete EuroSAT benchmark (GRAFT alt-text mode) in one resumable command.

Writes the EuroSAT training tiles as pair shards with simulated ground observations, embeds the observations
with all-MiniLM-L6-v2, trains a ViT student from scratch with GRAFT's loss, and scores zero-shot classification
and retrieval on the test split with CLIP's EuroSAT prompts. The report (``report/report.md``, ``report.json``,
confusion matrix, retrieval grid, ``results.json`` for the model card) lands in ``--output``. Rerunning
the command after a kill resumes: finished shards, embeddings and checkpoints are kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from graft_hf_cli._fields import add_fields, fields_from_args

if TYPE_CHECKING:
    from graft_hf.quickstart.config import QuickstartConfig

__all__ = ["OUTPUT_AND_DATA", "add_parser", "build_config", "default_eurosat_path", "run"]

CONFIG = "graft_hf.quickstart.config"
# Flags both benchmarks spell the same way: -o/--output, --data with the command line's default, --no-progress.
OUTPUT_AND_DATA = {
    "flags": {"output_dir": ("-o", "--output")},
    "metavars": {"output_dir": "DIR", "data": "DATA"},
    "helps": {
        "data": "EuroSAT folder or Hub dataset id (default: ../shared/data/eurosat-rgb beside the repository)",
        "progress": "no progress bars",
    },
}


def default_eurosat_path() -> Path:
    """``../shared/data/eurosat-rgb`` beside the repository, the benchmarks' default data on the command line.

    Looks beside the current directory first, then beside the source tree of this command line.
    """
    candidates = [
        Path.cwd() / ".." / "shared" / "data" / "eurosat-rgb",
        Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "eurosat-rgb",
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return candidates[0]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "quickstart",
        help="run the EuroSAT benchmark end to end (pairs, embeddings, training, zero-shot report)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_fields(parser, CONFIG, "QuickstartConfig", **OUTPUT_AND_DATA)
    parser.set_defaults(handler=run)
    return parser


def build_config(args: argparse.Namespace) -> QuickstartConfig:
    """The run's config from the parsed flags; no ``--data`` means the shared EuroSAT folder."""
    from graft_hf.quickstart.config import QuickstartConfig

    values = fields_from_args(args, CONFIG, "QuickstartConfig")
    return QuickstartConfig(**values | {"data": values["data"] or str(default_eurosat_path())})


def run(args: argparse.Namespace) -> int:
    from graft_hf.quickstart.common import as_percent
    from graft_hf.quickstart.run import run_quickstart

    config = build_config(args)
    report = run_quickstart(config)
    print(
        f"EuroSAT zero-shot top-1 {as_percent(report['top1'])} (chance 10%), retrieval mAP "
        f"{as_percent(report['retrieval']['mAP'])}, {report['seconds']['total']:.0f} s; report: "
        f"{config.output_dir}/report/report.md"
    )
    return 0
