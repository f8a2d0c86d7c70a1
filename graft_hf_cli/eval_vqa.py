"""``graft eval-vqa --model DIR --data RSVQA_DIR -o OUTDIR``: question answering on RSVQA-HR (GRAFT's Table 4).

Reads an RSVQA split (``USGS_split_test_questions.json``, ``..._answers.json``, ``..._images.json``), samples
``--num-questions`` questions (500, as the paper) with ``--seed``, answers each with a program over GRAFT's
detections (the planner flags are ``graft ask``'s) on its image, and reports accuracy per question type (presence,
comparison, count, area) and their average. Images come from ``--images`` (default: the split's ``Data`` folder)
named by ``--image-pattern``, so NAIP crops of the same places can stand in for RSVQA's aerial images, as in the
paper. Areas are scored in RSVQA-HR's five area bins, counts exactly (``--count-buckets``: RSVQA-LR's bins); a
refused or unanswerable question counts as wrong. Writes results.json, results.md and predictions.jsonl to OUTDIR.
"""

from __future__ import annotations

import argparse

from graft_hf_cli._errors import speaks_flags
from graft_hf_cli._fields import add_fields, fields_from_args

__all__ = ["add_parser", "run"]

_CONFIG = ("graft_hf.evaluation.vqa", "VQAEvalConfig")
_VQA = ("graft_hf.tasks.vqa", "VQAConfig")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from graft_hf_cli.ask import add_planner_arguments

    parser = subparsers.add_parser(
        "eval-vqa",
        help="question answering on an RSVQA split: accuracy per question type and average (GRAFT Table 4)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_fields(
        parser,
        *_CONFIG,
        flags={"output_dir": ("-o", "--output"), "types": "--type"},
        helps={"types": "question type to ask (repeatable)",
               "num_questions": "questions to sample (the paper's protocol: 500); 0 asks every question",
               "templates": "prompt-template set of the detector's queries, or 'none' to embed the names as written"},
        required=("model", "data", "output_dir"),
        metavars={"output_dir": "OUTPUT"},
    )  # fmt: skip
    add_planner_arguments(parser, parser.add_argument_group("planner"))
    parser.set_defaults(handler=run)
    return parser


@speaks_flags
def run(args: argparse.Namespace) -> int:
    from graft_hf.evaluation.vqa import HR_QUESTION_TYPES, VQAEvalConfig, run_vqa_eval
    from graft_hf.tasks.vqa import VQAConfig
    from graft_hf_cli.ask import build_planner

    values = fields_from_args(args, *_CONFIG)
    if values.get("num_questions") == 0:
        values["num_questions"] = None
    if isinstance(values.get("templates"), str) and values["templates"].lower() in ("none", ""):
        values["templates"] = None
    config = VQAEvalConfig(**values)
    report = run_vqa_eval(config, build_planner(args), VQAConfig(**fields_from_args(args, *_VQA)))
    for name, row in report.per_type().items():
        print(f"{HR_QUESTION_TYPES.get(name, name):>10}: {row['accuracy']:.2%} ({row['correct']}/{row['total']})")
    if report.records:
        print(f"{'average':>10}: {report.average_accuracy:.2%} (overall {report.overall_accuracy:.2%})")
    print(f"results written to {config.output_dir}")
    return 0
