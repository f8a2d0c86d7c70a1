"""``graft eval --model DIR --data PATH_OR_ID -o OUTDIR``: zero-shot classification and retrieval benchmark.

Scores a GRAFT model, or a baseline through the same protocol (``--baseline transformers`` for any CLIP
directory, ``--baseline open_clip --arch ViT-B-32 --checkpoint PATH`` for RemoteCLIP / GeoRSCLIP checkpoints), on
EuroSAT, BigEarthNet, SAT-4/SAT-6, UC Merced-style image folders or any labelled ``datasets`` folder. Writes
results.json (model-card evaluation format), results.md, model_index.yaml, confusion_matrix.png and
retrieval_grid.png into OUTDIR.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from graft_hf_cli._errors import name_flag, speaks_flags
from graft_hf_cli._fields import add_fields, fields_from_args, read_fields

__all__ = ["add_class_names_flag", "add_parser", "parse_class_names", "run"]

logger = logging.getLogger(__name__)
_CONFIG = ("graft_hf.evaluation.job", "EvalConfig")
_MODEL = ("model", "baseline", "arch", "checkpoint", "open_clip_config", "text_encoder")
_DATA = ("data", "split", "dataset_kind", "image_column", "label_column", "limit")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval",
        help="zero-shot classification + text-to-image retrieval benchmark of a model or baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    helps = {
        "model": "GRAFT model folder, Hub id or registered name (graft-naip-vitb16: the folder of that name, else "
        "graft-hf/graft-naip-vitb16); a CLIP folder / Hub id for --baseline transformers; a report name for open_clip"
    }
    add_fields(parser, *_CONFIG, only=_MODEL, helps=helps, group=parser.add_argument_group("model"))
    data = parser.add_argument_group("data")
    add_fields(parser, *_CONFIG, only=_DATA, required=("data",), group=data)
    add_class_names_flag(parser, data, _CONFIG)
    add_fields(
        parser,
        *_CONFIG,
        exclude=(*_MODEL, *_DATA, "class_names"),
        flags={"output_dir": ("-o", "--output"), "multilabel_threshold": "--threshold"},
        helps={"progress": "no progress bars"},
        required=("output_dir",),
        metavars={"output_dir": "OUTPUT", "multilabel_threshold": "THRESHOLD"},
    )
    parser.set_defaults(handler=run)
    return parser


def add_class_names_flag(
    parser: argparse.ArgumentParser, group: argparse._ArgumentGroup, config: tuple[str, str]
) -> None:
    """``--class-names`` (comma-separated or a file) for a config's `class_names` list, read by `parse_class_names`."""
    group.add_argument(
        "--class-names",
        dest="class_names_spec",
        metavar="CLASS_NAMES",
        help=f"{read_fields(*config)['class_names'].help} Comma-separated, or a file with one name per line.",
    )
    name_flag(parser, "class_names", "--class-names")


def parse_class_names(spec: str | None) -> list[str] | None:
    """The names of ``--class-names``: one per line of a file, or comma-separated."""
    if spec is None:
        return None
    path = Path(spec)
    if path.is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [name.strip() for name in spec.split(",") if name.strip()]


@speaks_flags
def run(args: argparse.Namespace) -> int:
    from graft_hf.evaluation.job import EvalConfig, run_eval

    config = EvalConfig(**fields_from_args(args, *_CONFIG), class_names=parse_class_names(args.class_names_spec))
    report, paths = run_eval(config)
    dataset = report.dataset
    summary = ", ".join(f"{k} {100 * v:.2f}%" for k, v in report.summary().items() if v == v)
    print(f"{report.model_name} on {dataset.name} ({dataset.split}, {len(dataset)} images): {summary}")
    print(f"report written to {paths['json'].parent}")
    return 0
