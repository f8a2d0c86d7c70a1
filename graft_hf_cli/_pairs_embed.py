"""``graft pairs embed``: precompute frozen teacher embeddings of the shards' ground photos (or photo texts).

Wired in by :mod:`graft_hf_cli.pairs`. Standard library only at import time; the handler imports graft_hf lazily.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_arguments", "config_from_args", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``graft pairs embed`` arguments to ``parser``."""
    parser.description = (
        "Embed every ground photo of the pair shards once with a frozen teacher (L2-normalised, fp16, into "
        "photos[*].embedding), or the photos' text with --text (photos[*].text_embedding). Shards are rewritten "
        "atomically; shards already embedded by the same teacher are skipped, so an interrupted run resumes."
    )
    parser.add_argument("pairs", help="folder of pair shards written by `graft pairs build` (or one .parquet file)")
    teacher = parser.add_argument_group("teacher")
    teacher.add_argument(
        "--teacher",
        required=True,
        help="local transformers CLIP (or text encoder) directory, a Hub id if cached, or an open_clip model name",
    )
    teacher.add_argument(
        "--teacher-kind",
        choices=("auto", "clip", "open_clip", "sentence"),
        default="auto",
        help="auto: open_clip when --pretrained is given, else from the directory's config.json",
    )
    teacher.add_argument("--pretrained", help="open_clip checkpoint path (with an open_clip model name as --teacher)")
    teacher.add_argument("--open-clip-config", help="JSON config of a custom open_clip architecture to register")
    teacher.add_argument("--teacher-id", help="identity recorded in the shards (default: kind + model path)")
    parser.add_argument("--text", action="store_true", help="embed photo text into text_embedding (alt-text ablation)")
    parser.add_argument("--batch-size", type=int, default=64, help="photos or texts per forward pass")
    parser.add_argument("--rows-per-batch", type=int, default=64, help="tiles read and written at a time")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--overwrite", action="store_true", help="re-embed shards already done by this teacher")
    parser.add_argument("--report", help="also write the JSON report to this path")


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 - returns EmbedConfig (lazy import)
    """Fill :class:`graft_hf.pairs.embed.EmbedConfig` from parsed arguments."""
    from graft_hf.pairs.embed import EmbedConfig

    if args.batch_size < 1 or args.rows_per_batch < 1:
        raise ValueError("--batch-size and --rows-per-batch must be positive")
    return EmbedConfig(
        pairs=args.pairs,
        teacher=args.teacher,
        teacher_kind=args.teacher_kind,
        pretrained=args.pretrained,
        open_clip_config=args.open_clip_config,
        text=args.text,
        batch_size=args.batch_size,
        rows_per_batch=args.rows_per_batch,
        device=args.device,
        overwrite=args.overwrite,
        teacher_id=args.teacher_id,
        report=args.report,
    )


def run(args: argparse.Namespace) -> int:
    """Handler of ``graft pairs embed``; prints the JSON report."""
    from graft_hf.pairs.embed import embed_pairs

    report = embed_pairs(config_from_args(args))
    print(json.dumps(report.to_dict(), indent=2))
    return 0
