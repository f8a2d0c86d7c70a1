"""``graft eval-fewshot --model DIR --data PATH_OR_ID -o OUTDIR``: k-shot classification on frozen features.

The few-shot baselines of GRAFT's Tables 1-2: for every ``--shots`` k (default 1 and 5) and each of ``--seeds``
seeds (default 10), k training images per class (``--train-split``) are drawn, a classifier is fitted on the
model's frozen image embeddings (``--classifier linear``: L2-penalised logistic regression with
``--regularization`` C; ``prototype``: nearest class mean) and the test split is scored (accuracy, or mAP for
multi-label data). Reports the mean and spread over seeds. The model flags are ``graft eval``'s, so GRAFT and any
baseline (``--baseline transformers`` / ``open_clip``) are scored the same way. Writes results.json (every run with
its support rows) and results.md to OUTDIR.
"""

from __future__ import annotations

import argparse

from graft_hf_cli._errors import speaks_flags
from graft_hf_cli._fields import add_fields, fields_from_args

__all__ = ["add_parser", "run"]

_CONFIG = ("graft_hf.evaluation.fewshot_job", "FewShotConfig")
_MODEL = ("model", "baseline", "arch", "checkpoint", "open_clip_config")
_DATA = ("data", "train_split", "test_split", "dataset_kind", "image_column", "label_column", "limit")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from graft_hf_cli.eval import add_class_names_flag

    parser = subparsers.add_parser(
        "eval-fewshot",
        help="k-shot classification on frozen features over seeds (mean and spread), GRAFT or a baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_fields(parser, *_CONFIG, only=_MODEL, group=parser.add_argument_group("model"))
    data = parser.add_argument_group("data")
    add_fields(parser, *_CONFIG, only=_DATA, required=("data",), group=data)
    add_class_names_flag(parser, data, _CONFIG)
    add_fields(
        parser,
        *_CONFIG,
        exclude=(*_MODEL, *_DATA, "class_names"),
        flags={"output_dir": ("-o", "--output"), "shots": "--shots"},
        helps={"progress": "no progress bars", "shots": "support images per class (repeatable; default 1 and 5)"},
        required=("output_dir",),
        metavars={"output_dir": "OUTPUT"},
    )
    parser.set_defaults(handler=run)
    return parser


@speaks_flags
def run(args: argparse.Namespace) -> int:
    from graft_hf.evaluation.fewshot_job import FewShotConfig, run_fewshot
    from graft_hf_cli.eval import parse_class_names

    config = FewShotConfig(**fields_from_args(args, *_CONFIG), class_names=parse_class_names(args.class_names_spec))
    report, paths = run_fewshot(config)
    for k, row in report.to_dict()["summary"].items():
        print(
            f"{report.model_name} on {report.test.name}, {k}-shot {report.classifier}: {report.metric} "
            f"{100 * row['mean']:.2f} ± {100 * row['std']:.2f}% over {row['seeds']} seeds"
        )
    print(f"report written to {paths['json'].parent}")
    return 0
