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

__all__ = ["add_parser", "run"]

logger = logging.getLogger(__name__)
_KINDS = ("auto", "eurosat", "bigearthnet", "sat4", "sat6", "imagefolder", "classification", "multilabel")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval",
        help="zero-shot classification + text-to-image retrieval benchmark of a model or baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model = parser.add_argument_group("model")
    model.add_argument("--model", help="GRAFT or CLIP model directory / Hub id (a report name for open_clip)")
    model.add_argument("--baseline", choices=("auto", "graft", "transformers", "open_clip"), default="auto")
    model.add_argument("--arch", help="open_clip architecture, e.g. ViT-B-32 (RemoteCLIP, GeoRSCLIP)")
    model.add_argument("--checkpoint", help="open_clip checkpoint file")
    model.add_argument("--open-clip-config", help="JSON file/folder of custom open_clip architectures")
    model.add_argument("--text-encoder", help="separate text encoder directory (e.g. all-MiniLM-L6-v2)")
    data = parser.add_argument_group("data")
    data.add_argument("--data", required=True, help="dataset folder or Hub dataset id")
    data.add_argument("--split", default="test", help="split to evaluate (default: test)")
    data.add_argument("--dataset-kind", choices=_KINDS, default="auto", help="dataset layout (default: detect)")
    data.add_argument(
        "--class-names",
        help="class names in label-id order (comma-separated or a file, one per line): the prompt names for named "
        "labels, required for unnamed integer labels",
    )
    data.add_argument("--image-column", help="image column (default: the first Image feature)")
    data.add_argument("--label-column", help="label column (default: label, labels, class, ...)")
    data.add_argument("--limit", type=int, help="evaluate a seeded random subset of N images")
    parser.add_argument(
        "--templates", default="satellite", help="template set (satellite, ground, simple, clip-eurosat) or a file"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threshold", type=float, help="multi-label decision threshold on class probabilities")
    parser.add_argument("--grid-queries", type=int, default=10, help="class queries in the retrieval grid")
    parser.add_argument("--grid-k", type=int, default=8, help="images per query in the retrieval grid")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("-o", "--output", required=True, help="output folder for the report files")
    parser.set_defaults(handler=run)
    return parser


def _class_names(spec: str | None) -> list[str] | None:
    if spec is None:
        return None
    path = Path(spec)
    if path.is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [name.strip() for name in spec.split(",") if name.strip()]


def run(args: argparse.Namespace) -> int:
    from graft_hf.evaluation.datasets import load_eval_dataset
    from graft_hf.evaluation.encoders import load_encoder
    from graft_hf.evaluation.harness import evaluate_model

    if not args.model and args.baseline != "open_clip" and not args.arch:
        raise ValueError("pass --model DIR (or --baseline open_clip --arch NAME --checkpoint PATH)")
    names = _class_names(args.class_names)
    dataset = load_eval_dataset(
        args.data,
        split=args.split,
        kind=args.dataset_kind,
        class_names=names,
        image_column=args.image_column,
        label_column=args.label_column,
        limit=args.limit,
    )
    encoder = load_encoder(
        args.model or args.arch,
        baseline=args.baseline,
        arch=args.arch,
        checkpoint=args.checkpoint,
        open_clip_config=args.open_clip_config,
        text_encoder=args.text_encoder,
        device=args.device,
    )
    report = evaluate_model(
        encoder,
        dataset,
        class_names=names,
        templates=args.templates,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        multilabel_threshold=args.threshold,
        top_k=args.grid_k,
    )
    paths = report.write(args.output, grid_queries=args.grid_queries, grid_k=args.grid_k)
    summary = ", ".join(f"{k} {100 * v:.2f}%" for k, v in report.summary().items() if v == v)
    print(f"{report.model_name} on {dataset.name} ({dataset.split}, {len(dataset)} images): {summary}")
    print(f"report written to {paths['json'].parent}")
    return 0
