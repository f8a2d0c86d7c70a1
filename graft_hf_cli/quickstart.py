"""``graft quickstart``: the complete EuroSAT benchmark (GRAFT alt-text mode) in one resumable command.

Writes the EuroSAT training tiles as pair shards with simulated ground observations, embeds the observations
with all-MiniLM-L6-v2, trains a ViT student from scratch with GRAFT's loss, and scores zero-shot classification
and retrieval on the test split with CLIP's EuroSAT prompts. The report (``report/report.md``, ``report.json``,
confusion matrix, retrieval grid, ``results.json`` for the model card) lands in ``--output``. Rerunning
the command after a kill resumes: finished shards, embeddings and checkpoints are kept.
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "quickstart",
        help="run the EuroSAT benchmark end to end (pairs, embeddings, training, zero-shot report)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", default=None, help="EuroSAT folder or Hub dataset id (default: ../shared/data/eurosat-rgb)"
    )
    parser.add_argument("-o", "--output", default="runs/quickstart", help="run folder (default: %(default)s)")
    parser.add_argument("--text-encoder", default=None, help="text teacher folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--epochs", type=int, default=8, help="passes over the training tiles (default: %(default)s)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps (reduced runs)")
    parser.add_argument("--batch-size", type=int, default=128, help="tiles per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--train-limit", type=int, default=None, help="use N training tiles (class-stratified)")
    parser.add_argument("--test-limit", type=int, default=None, help="evaluate on N test tiles (class-stratified)")
    parser.add_argument(
        "--distractor-rate", type=float, default=0.2, help="share of unrelated observations (default: %(default)s)"
    )
    parser.add_argument("--num-workers", type=int, default=1, help="loader worker processes (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import logging

    from graft_hf.quickstart.run import QuickstartConfig, as_percent, run_quickstart

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = QuickstartConfig(
        data=args.data,
        output_dir=args.output,
        text_encoder=args.text_encoder,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        distractor_rate=args.distractor_rate,
        num_workers=args.num_workers,
        seed=args.seed,
        threads=args.threads,
        progress=not args.no_progress,
    )
    report = run_quickstart(config)
    print(
        f"EuroSAT zero-shot top-1 {as_percent(report['top1'])} (chance 10%), retrieval mAP "
        f"{as_percent(report['retrieval']['mAP'])}, {report['seconds']['total']:.0f} s; report: "
        f"{args.output}/report/report.md"
    )
    return 0
