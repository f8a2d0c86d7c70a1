"""Evaluation and report of the quickstart's student: zero-shot EuroSAT classification and retrieval, as pictures.

The student's image tower embeds the test tiles; the frozen text teacher (the one that embedded the training
observations) embeds CLIP's EuroSAT prompts. Classification averages the templates per class (CLIP's prompt
ensemble); retrieval uses each class's prompt embedding as a query over the whole test split.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from graft_hf.quickstart.eurosat import EuroSATSplit

__all__ = ["embed_tiles", "evaluate_student", "write_markdown_report"]

logger = logging.getLogger(__name__)

GRID_QUERIES_PER_CLASS = 8


@torch.inference_mode()
def embed_tiles(model: Any, split: EuroSATSplit, batch_size: int = 256, progress: bool = True) -> torch.Tensor:
    """L2-normalised image embeddings of every tile of a split, shape ``(num_tiles, projection_dim)``.

    Tiles are fed at the model's input size (no resizing for 64 px EuroSAT and a 64 px student), normalised with
    the model's processor statistics (CLIP's).
    """
    from tqdm.auto import tqdm

    from graft_hf import build_processor

    processor = build_processor(model.config).image_processor
    size = model.config.vision_config.image_size
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    model.eval()
    chunks = []
    for start in tqdm(
        range(0, len(split), batch_size), desc="embed test tiles", unit="batch", disable=not progress or None
    ):
        images = []
        for index in range(start, min(start + batch_size, len(split))):
            image = split.decode(index)
            if image.size != (size, size):
                image = image.resize((size, size), resample=3)  # bicubic, like the processor
            images.append(np.asarray(image))
        pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
        pixels = (pixels - mean) / std
        chunks.append(torch.nn.functional.normalize(model.get_image_features(pixel_values=pixels).float(), dim=-1))
    return torch.cat(chunks)


def evaluate_student(
    model_dir: str | os.PathLike,
    split: EuroSATSplit,
    encode_text: Callable[[list[str]], torch.Tensor],
    out_dir: str | os.PathLike,
    *,
    classnames: Sequence[str],
    templates: Sequence[str],
    label_names: Sequence[str],
    progress: bool = True,
) -> dict[str, Any]:
    """Score a trained student on a labelled split and write the pictures and the eval-results JSON.

    Args:
        model_dir: The trained GraftModel folder.
        split: The test split.
        encode_text: The text teacher: list of prompts to ``(num_prompts, dim)`` embeddings.
        out_dir: Report folder (created).
        classnames: Prompt class names, one per label, in label order.
        templates: Prompt templates with one ``{}``.
        label_names: Dataset label names (for the tables).
        progress: Show progress bars.

    Returns:
        ``top1``, ``top5``, ``per_class`` (accuracy, retrieval mAP, mAP@100, mAP@20 per label), ``retrieval``
        (means), ``confusion_matrix`` (counts), and the written files.
    """
    from graft_hf.evaluation.metrics import class_retrieval_metrics, confusion_matrix, per_class_accuracy
    from graft_hf.evaluation.plots import plot_confusion_matrix, retrieval_grid
    from graft_hf.evaluation.zeroshot import build_zero_shot_classifier, classify
    from graft_hf.modeling import GraftModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if len(classnames) != len(label_names):
        raise ValueError(f"{len(classnames)} class names for {len(label_names)} labels")
    model = GraftModel.from_pretrained(str(model_dir))
    image_embeds = embed_tiles(model, split, progress=progress)
    classifier = build_zero_shot_classifier(encode_text, list(classnames), list(templates))
    if classifier.shape[1] != image_embeds.shape[1]:
        raise ValueError(
            f"the text encoder gives {classifier.shape[1]}-d embeddings but the student {image_embeds.shape[1]}-d: "
            "evaluate with the teacher the student was trained against"
        )
    prediction = classify(image_embeds, classifier, k=5, classnames=list(classnames))
    labels = torch.from_numpy(split.labels)
    num_classes = len(label_names)
    predictions = prediction.predictions
    top1 = float((predictions == labels).float().mean())
    top5 = float((prediction.top_k_indices == labels[:, None]).any(dim=1).float().mean())
    accuracy = per_class_accuracy(predictions.numpy(), split.labels, num_classes)
    matrix = confusion_matrix(predictions.numpy(), split.labels, num_classes)
    retrieval = class_retrieval_metrics(classifier, image_embeds, split.labels, list(label_names))
    per_retrieval = retrieval.per_class()
    per_class = {
        name: {
            "accuracy": float(accuracy[i]),
            "tiles": int((split.labels == i).sum()),
            "mAP": per_retrieval[name]["mAP"],
            "mAP@100": per_retrieval[name]["mAP@100"],
            "mAP@20": per_retrieval[name]["mAP@20"],
        }
        for i, name in enumerate(label_names)
    }
    confusion_png = plot_confusion_matrix(
        matrix, list(label_names), out / "confusion_matrix.png", title=f"EuroSAT zero-shot, top-1 {100 * top1:.1f}%"
    )
    grid_png = _retrieval_grid(classifier, image_embeds, split, classnames, out / "retrieval_grid.png", retrieval_grid)
    means = retrieval.mean()
    eval_results = [
        {
            "task": "zero-shot-image-classification",
            "task_name": "Zero-shot classification",
            "dataset": {"name": "EuroSAT", "type": "eurosat", "split": "test"},
            "metrics": [
                {"type": "accuracy", "value": top1, "name": "top-1 accuracy"},
                {"type": "accuracy", "value": top5, "name": "top-5 accuracy"},
            ],
        },
        {
            "task": "text-to-image-retrieval",
            "task_name": "Text-to-image retrieval (class prompts)",
            "dataset": {"name": "EuroSAT", "type": "eurosat", "split": "test"},
            "metrics": [
                {"type": "map", "value": means["mAP"], "name": "mAP"},
                {"type": "map", "value": means["mAP@100"], "name": "mAP@100"},
                {"type": "map", "value": means["mAP@20"], "name": "mAP@20"},
            ],
        },
    ]
    import json

    (out / "eval_results.json").write_text(json.dumps({"results": eval_results}, indent=2) + "\n")
    return {
        "top1": top1,
        "top5": top5,
        "per_class": per_class,
        "retrieval": means,
        "confusion_matrix": matrix.tolist(),
        "labels": list(label_names),
        "prompts": {"classnames": list(classnames), "templates": list(templates)},
        "files": {
            "confusion_matrix": str(confusion_png),
            "retrieval_grid": str(grid_png),
            "eval_results": str(out / "eval_results.json"),
        },
    }


def _retrieval_grid(
    classifier: torch.Tensor,
    image_embeds: torch.Tensor,
    split: EuroSATSplit,
    classnames: Sequence[str],
    path: Path,
    draw: Callable[..., Path],
) -> Path:
    """Top tiles for each class prompt, green border when the tile belongs to that class."""
    scores = classifier @ image_embeds.T  # (classes, tiles)
    k = min(GRID_QUERIES_PER_CLASS, scores.shape[1])
    top = scores.topk(k, dim=1).indices.tolist()
    images = [[split.decode(i) for i in row] for row in top]
    correct = [[int(split.labels[i]) == c for i in row] for c, row in enumerate(top)]
    captions = [[split.label_names[int(split.labels[i])] for i in row] for row in top]
    return draw(list(classnames), images, path, captions=captions, correct=correct)


def write_markdown_report(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """The human-readable report: headline figures, per-class table, timings and the two pictures."""
    from graft_hf.quickstart.run import as_percent

    path = Path(path)
    lines = [
        "# GRAFT quickstart: EuroSAT zero-shot benchmark",
        "",
        f"{report['benchmark']}.",
        "",
        f"- **Top-1 zero-shot accuracy: {as_percent(report['top1'])}** (top-5 {as_percent(report['top5'])}; chance "
        f"{as_percent(1 / len(report['labels']))}) on {report['test_tiles']} test tiles",
        f"- Retrieval with the class prompts: mAP {as_percent(report['retrieval']['mAP'])}, mAP@100 "
        f"{as_percent(report['retrieval']['mAP@100'])}, mAP@20 {as_percent(report['retrieval']['mAP@20'])}",
        f"- Trained on {report['train_tiles']} tiles with {report['pairs']['observations']} simulated observations "
        f"({report['pairs']['sampler']['distractor_rate']:.0%} distractors); no label was seen in training",
        f"- Time: {report['seconds']['total']:.0f} s in all on {report['threads']} threads ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in report["seconds"].items() if k != "total")
        + ")",
        f"- Prompts: {', '.join(repr(t) for t in report['prompts']['templates'])} with CLIP's EuroSAT class names",
        "",
        "| class | prompt name | tiles | accuracy | mAP | mAP@100 | mAP@20 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, classname in zip(report["labels"], report["prompts"]["classnames"], strict=True):
        row = report["per_class"][label]
        lines.append(
            f"| {label} | {classname} | {row['tiles']} | {as_percent(row['accuracy'])} | {as_percent(row['mAP'])} | "
            f"{as_percent(row['mAP@100'])} | {as_percent(row['mAP@20'])} |"
        )
    lines += [
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "Top tiles per class prompt (green: the tile is of that class):",
        "",
        "![retrieval grid](retrieval_grid.png)",
        "",
        f"Model: `{report['model']}` (load with `AutoModel.from_pretrained`; its image embeddings live in the text "
        "teacher's space).",
        "",
    ]
    path.write_text("\n".join(lines))
    return path
