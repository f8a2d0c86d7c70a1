"""``graft pairs embed``: precompute frozen teacher embeddings of the shards' ground photos (or photo texts).

Wired in by :mod:`graft_hf_cli.pairs`. The flags are read from :class:`graft_hf.pairs.config.EmbedConfig`'s source;
the handler imports graft_hf lazily.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from graft_hf_cli._fields import add_fields, fields_from_args

if TYPE_CHECKING:
    from graft_hf.pairs.config import EmbedConfig

__all__ = ["add_arguments", "config_from_args", "run"]

_MODULE, _CLASS = "graft_hf.pairs.config", "EmbedConfig"
_TEACHER_FIELDS = ("teacher", "teacher_kind", "pretrained", "open_clip_config", "teacher_id")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``graft pairs embed`` arguments to ``parser``: one per field of ``EmbedConfig``."""
    parser.description = (
        "Embed every ground photo of the pair shards once with a frozen teacher (L2-normalised, fp16, into "
        "photos[*].embedding), or the photos' text with --text (photos[*].text_embedding). Shards are rewritten "
        "atomically; shards already embedded by the same teacher are skipped, so an interrupted run resumes."
    )
    add_fields(parser, _MODULE, _CLASS, only=("pairs",), flags={"pairs": "pairs"})
    add_fields(
        parser, _MODULE, _CLASS, only=_TEACHER_FIELDS, required=("teacher",), group=parser.add_argument_group("teacher")
    )
    add_fields(parser, _MODULE, _CLASS, exclude=("pairs", *_TEACHER_FIELDS))


def config_from_args(args: argparse.Namespace) -> EmbedConfig:
    """Fill :class:`graft_hf.pairs.config.EmbedConfig` from parsed arguments."""
    from graft_hf.pairs.config import EmbedConfig

    return EmbedConfig(**fields_from_args(args, _MODULE, _CLASS))


def run(args: argparse.Namespace) -> int:
    """Handler of ``graft pairs embed``; prints the JSON report."""
    from graft_hf.pairs.embed import embed_pairs

    report = embed_pairs(config_from_args(args))
    print(json.dumps(report.to_dict(), indent=2))
    return 0
