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

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "mosaic-benchmark",
        help="pixel-level EuroSAT mosaics benchmark (zero-shot segmentation vs the image-level baseline)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", default=None, help="EuroSAT folder or Hub dataset id (default: ../shared/data/eurosat-rgb)"
    )
    parser.add_argument("-o", "--output", default="runs/mosaic", help="run folder (default: %(default)s)")
    parser.add_argument(
        "--image-model",
        default=None,
        help="image-level GRAFT model for the baseline, e.g. runs/quickstart/train/model (default: train a reduced "
        "one on single tiles)",
    )
    parser.add_argument("--text-encoder", default=None, help="text teacher folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--train-mosaics", type=int, default=8000, help="training mosaics (default: %(default)s)")
    parser.add_argument("--test-mosaics", type=int, default=300, help="test mosaics (default: %(default)s)")
    parser.add_argument("--grid", type=int, default=4, help="tiles per mosaic side (default: %(default)s)")
    parser.add_argument(
        "--tile-size", type=int, default=32, help="px per tile in the mosaic, EuroSAT's 64 downsampled (default: 32)"
    )
    parser.add_argument("--patch-size", type=int, default=8, help="student patch size (default: %(default)s)")
    parser.add_argument("--hidden-size", type=int, default=192, help="student width (default: %(default)s)")
    parser.add_argument("--layers", type=int, default=4, help="student depth (default: %(default)s)")
    parser.add_argument("--heads", type=int, default=3, help="student attention heads (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=16, help="passes over the mosaics (default: %(default)s)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    parser.add_argument("--batch-size", type=int, default=64, help="mosaics per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=0.07, help="loss temperature (default: %(default)s)")
    parser.add_argument(
        "--max-observations", type=int, default=3, help="most observations per tile (default: %(default)s)"
    )
    parser.add_argument(
        "--distractor-rate", type=float, default=0.2, help="share of unrelated observations (default: %(default)s)"
    )
    parser.add_argument("--train-limit", type=int, default=None, help="draw training mosaics from N tiles")
    parser.add_argument("--test-limit", type=int, default=None, help="draw test mosaics from N tiles")
    parser.add_argument(
        "--image-model-steps", type=int, default=400, help="steps of the fallback image-level model (default: 400)"
    )
    parser.add_argument("--num-shards", type=int, default=8, help="pair shards (default: %(default)s)")
    parser.add_argument("--num-workers", type=int, default=1, help="loader worker processes (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import logging

    from graft_hf.quickstart.mosaic_run import MosaicConfig, run_mosaic_benchmark
    from graft_hf.quickstart.run import StudentArch, as_percent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = MosaicConfig(
        data=args.data,
        output_dir=args.output,
        image_model=args.image_model,
        text_encoder=args.text_encoder,
        train_mosaics=args.train_mosaics,
        test_mosaics=args.test_mosaics,
        grid=args.grid,
        tile_size=args.tile_size,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        temperature=args.temperature,
        max_observations=args.max_observations,
        distractor_rate=args.distractor_rate,
        num_shards=args.num_shards,
        num_workers=args.num_workers,
        student=StudentArch(
            image_size=args.grid * args.tile_size,
            patch_size=args.patch_size,
            hidden_size=args.hidden_size,
            num_layers=args.layers,
            num_heads=args.heads,
        ),
        image_model_steps=args.image_model_steps,
        seed=args.seed,
        threads=args.threads,
        progress=not args.no_progress,
    )
    report = run_mosaic_benchmark(config)
    pixel, base = report["pixel_level"], report["baseline"]
    print(
        f"EuroSAT mosaics: pixel-level mean per-class accuracy {as_percent(pixel['mean_accuracy'])}, mIoU "
        f"{as_percent(pixel['miou'])}; image-level broadcast baseline {as_percent(base['mean_accuracy'])}, mIoU "
        f"{as_percent(base['miou'])}; {report['seconds']['total']:.0f} s; report: {args.output}/report/report.md"
    )
    return 0
