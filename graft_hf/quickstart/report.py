"""Evaluation and report of the quickstart's student, through the evaluation harness (the protocol `graft eval` uses).

The saved student is loaded as `graft eval` loads it: its image tower embeds the test tiles, and the text tower it
carries (the frozen text teacher that embedded the training observations, all-MiniLM-L6-v2) embeds CLIP's EuroSAT
prompts with the tokenizer saved in its processor; :func:`graft_hf.evaluation.evaluate_model` scores zero-shot
classification and class-prompt retrieval and writes the JSON, markdown, ``model-index`` and the two pictures.
This module adds the quickstart's own summary on top: data, observations, timings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graft_hf.evaluation.datasets import load_eval_dataset
from graft_hf.evaluation.encoders import load_encoder
from graft_hf.evaluation.harness import EvalReport, evaluate_model
from graft_hf.io import atomic_write
from graft_hf.quickstart.common import as_percent, time_line

__all__ = ["evaluate_student", "summarize_evaluation", "write_markdown_report"]


def evaluate_student(
    model_dir: str | os.PathLike,
    data: str,
    out_dir: str | os.PathLike,
    *,
    classnames: Sequence[str],
    templates: Sequence[str],
    limit: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[EvalReport, dict[str, Path]]:
    """Score a trained student on EuroSAT's test split and write the harness's report files into ``out_dir``.

    Args:
        model_dir: The trained GraftModel folder (with its text tower and processor).
        data: EuroSAT folder or Hub id.
        out_dir: Report folder (created).
        classnames: Prompt class names, one per label, in label order.
        templates: Prompt templates with one ``{}``.
        limit: Evaluate a seeded random subset of this many test tiles.
        seed: Seed of the subset.
        progress: Show a progress bar.

    Returns:
        The harness report and the files it wrote (``json``, ``markdown``, ``model_index``, ``confusion_matrix``,
        ``retrieval_grid``).
    """
    encoder = load_encoder(str(model_dir), baseline="graft")
    encoder.name = "graft-quickstart (EuroSAT, MiniLM alt-text)"
    dataset = load_eval_dataset(
        data, split="test", kind="eurosat", class_names=list(classnames), limit=limit, seed=seed
    )
    report = evaluate_model(encoder, dataset, templates=list(templates), progress=progress)
    return report, report.write(out_dir)


def summarize_evaluation(report: EvalReport) -> dict[str, Any]:
    """The figures the quickstart reports: top-1/top-5, per-class accuracy and retrieval, confusion matrix."""
    assert report.classification is not None, "EuroSAT is single-label"
    per_class = {
        name: {
            "prompt_name": row["prompt_name"],
            "tiles": row["support"],
            "accuracy": row["accuracy"],
            "mAP": row["retrieval_mAP"],
            "mAP@100": row["retrieval_mAP@100"],
            "mAP@20": row["retrieval_mAP@20"],
        }
        for name, row in report.per_class().items()
    }
    return {
        "top1": report.classification.top_k["top1"],
        "top5": report.classification.top_k.get("top5"),
        "mean_per_class_accuracy": report.classification.mean_per_class_accuracy,
        "per_class": per_class,
        "retrieval": report.retrieval.mean(),
        "confusion_matrix": report.classification.confusion_matrix.tolist(),
        "labels": list(report.class_names),
        "prompts": {"classnames": list(report.prompt_names), "templates": list(report.templates)},
    }


def write_markdown_report(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """The human-readable report: headline figures, per-class table, timings and the two pictures."""
    lines = [
        "# GRAFT quickstart: EuroSAT zero-shot benchmark",
        "",
        f"{report['benchmark']}.",
        "",
        f"- **Top-1 zero-shot accuracy: {as_percent(report['top1'])}** (top-5 {as_percent(report['top5'])}, mean "
        f"per-class {as_percent(report['mean_per_class_accuracy'])}; chance {as_percent(1 / len(report['labels']))})"
        f" on {report['test_tiles']} test tiles",
        f"- Retrieval with the class prompts: mAP {as_percent(report['retrieval']['mAP'])}, mAP@100 "
        f"{as_percent(report['retrieval']['mAP@100'])}, mAP@20 {as_percent(report['retrieval']['mAP@20'])}",
        f"- Trained on {report['train_tiles']} tiles with {report['pairs']['observations']} simulated observations "
        f"({report['pairs']['sampler']['distractor_rate']:.0%} distractors); no label was seen in training",
        time_line(report),
        f"- Prompts: {', '.join(repr(t) for t in report['prompts']['templates'])} with CLIP's EuroSAT class names",
        "",
        "| class | prompt name | tiles | accuracy | mAP | mAP@100 | mAP@20 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label in report["labels"]:
        row = report["per_class"][label]
        lines.append(
            f"| {label} | {row['prompt_name']} | {row['tiles']} | {as_percent(row['accuracy'])} | "
            f"{as_percent(row['mAP'])} | {as_percent(row['mAP@100'])} | {as_percent(row['mAP@20'])} |"
        )
    lines += [
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "Top tiles per class prompt (green: the tile is of that class):",
        "",
        "![retrieval grid](retrieval_grid.png)",
        "",
        f"Model: `{report['model']}`, with {report.get('text_tower') or 'its text teacher'} as its text tower and its "
        "tokenizer in the processor: load it with `AutoModel.from_pretrained` / `AutoProcessor.from_pretrained`, "
        '`pipeline("zero-shot-image-classification", model=...)` or `graft eval --model`. The harness\'s own files: '
        "`results.json` (with `results` in the model card's evaluation format, for `graft push --eval`), "
        "`results.md`, `model_index.yaml`.",
        "",
    ]
    return atomic_write(path, "\n".join(lines))
