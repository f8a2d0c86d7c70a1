"""``graft pairs filter``: remove duplicate, indoor and near-duplicate photos from a photo table before the build.

Wired in by :mod:`graft_hf_cli.pairs`. The flags are read from :class:`graft_hf.pairs.filter.FilterConfig`'s
source; the handler imports graft_hf lazily.
"""

from __future__ import annotations

import argparse
import json

from graft_hf_cli._fields import add_fields, fields_from_args

__all__ = ["add_arguments", "run"]

_MODULE, _CLASS = "graft_hf.pairs.filter", "FilterConfig"
_SCORER = ("teacher", "teacher_kind", "pretrained", "classifier", "outdoor_labels", "outdoor_threshold", "rescore")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``graft pairs filter`` arguments: one per field of ``FilterConfig``."""
    parser.description = (
        "Optional stage before graft pairs build: drop repeated photo ids, unreadable images, indoor photos (an "
        "outdoor score from the CLIP teacher's prompt ensembles, or from an image classifier, below "
        "--outdoor-threshold) and near-duplicate photos (pHash within --max-hash-distance bits). Writes the kept "
        "photos with image_hash and outdoor_score columns, and OUTPUT.scored.parquet with every row and its "
        "filter_reason (filter it again with another threshold without rescoring)."
    )
    add_fields(parser, _MODULE, _CLASS, only=("photos", "output"), flags={"output": ("-o", "--output")},
               required=("photos", "output"))  # fmt: skip
    add_fields(parser, _MODULE, _CLASS, only=_SCORER, flags={"outdoor_labels": "--outdoor-label"},
               group=parser.add_argument_group("outdoor score"))  # fmt: skip
    add_fields(parser, _MODULE, _CLASS, exclude=("photos", "output", *_SCORER))


def run(args: argparse.Namespace) -> int:
    """Handler of ``graft pairs filter``; prints the JSON report."""
    from graft_hf.pairs.filter import FilterConfig, filter_photos

    values = {k: v for k, v in fields_from_args(args, _MODULE, _CLASS).items() if v is not None}
    print(json.dumps(filter_photos(FilterConfig(**values)), indent=2))
    return 0
