"""The evaluation harness: zero-shot classification and class-prompt text-to-image retrieval, with reports.

`evaluate_model` embeds a dataset's images once, builds a zero-shot classifier from class-name prompts (a template
ensemble) with the encoder's text tower, and scores

* single-label data: top-1 / top-5 accuracy, mean per-class accuracy and the confusion matrix;
* multi-label data: per-class AP over images (mAP) and micro/macro F1 of the softmax probabilities at a
  threshold (default `1 / num_classes`: every class more likely than uniform);
* both: text-to-image retrieval where each class's ensembled prompt embedding is a query and the images of that
  class are relevant: mAP, mAP@100, mAP@20 (the GRAFT paper's metrics) and recall@k, per class and averaged.

`EvalReport.write(outdir)` writes ``results.json`` (the `graft_hf.hub.cards` evaluation format plus per-class
details), ``results.md``, ``model_index.yaml``, ``confusion_matrix.png`` and ``retrieval_grid.png``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import ModelCardData
from tqdm.auto import tqdm

from graft_hf.config import ConfigError
from graft_hf.evaluation.datasets import EvalDataset, load_eval_dataset
from graft_hf.evaluation.encoders import Encoder, ImageEncoder, graft_encoder, load_encoder
from graft_hf.evaluation.metrics import (
    ClassificationMetrics,
    MultiLabelMetrics,
    RetrievalMetrics,
    class_retrieval_metrics,
    classification_metrics,
    multilabel_metrics,
)
from graft_hf.evaluation.plots import plot_confusion_matrix, retrieval_grid
from graft_hf.evaluation.templates import CLIP_EUROSAT_TEMPLATES, TEMPLATE_SETS, get_templates
from graft_hf.evaluation.zeroshot import build_zero_shot_classifier, zero_shot_logits
from graft_hf.hub.cards import load_eval_results
from graft_hf.io import atomic_write
from graft_hf.modeling import GraftModel

#: What `evaluate_model` scores: a model, an encoder (or any object with encode_images/encode_texts) or a directory.
ModelLike = GraftModel | Encoder | ImageEncoder | str | os.PathLike

logger = logging.getLogger(__name__)

__all__ = ["CLIP_EUROSAT_TEMPLATES", "EvalReport", "embed_images", "evaluate_model", "resolve_templates"]

_EXTRA_TEMPLATE_SETS = {"clip-eurosat": CLIP_EUROSAT_TEMPLATES}
RETRIEVAL_TASK = "text-to-image-retrieval"
CLASSIFICATION_TASK = "zero-shot-image-classification"


def resolve_templates(templates: str | os.PathLike | Sequence[str] | None) -> tuple[str, ...]:
    """Prompt templates from a set name, a file, one template, or a list.

    Args:
        templates: `None` (the satellite ensemble), a name in `TEMPLATE_SETS` or `"clip-eurosat"`, a path to a
            text file (one template per line, `#` comments) or a JSON list, a single template with `{}`, or a
            list of templates.

    Returns:
        The validated templates.
    """
    if templates is None:
        return get_templates("satellite")
    if isinstance(templates, (str, os.PathLike)):
        text = os.fspath(templates)
        if text in _EXTRA_TEMPLATE_SETS:
            return _EXTRA_TEMPLATE_SETS[text]
        if text in TEMPLATE_SETS or "{}" in text:
            return get_templates(text)
        path = Path(text)
        if not path.is_file():
            known = sorted([*TEMPLATE_SETS, *_EXTRA_TEMPLATE_SETS])
            raise ValueError(f"unknown template set {text!r}: use one of {known}, a template with '{{}}', or a file")
        content = path.read_text()
        if path.suffix == ".json":
            loaded = json.loads(content)
            return get_templates(loaded["templates"] if isinstance(loaded, dict) else loaded)
        lines = [line.strip() for line in content.splitlines()]
        return get_templates([line for line in lines if line and not line.startswith("#")])
    return get_templates(list(templates))


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


@dataclass
class EvalReport:
    """Everything one evaluation measured, with writers for JSON, markdown, model-index YAML and figures.

    Attributes:
        model_name: Name of the evaluated model.
        dataset: The evaluated dataset (kept to draw the retrieval grid).
        class_names: Label names, one per class.
        prompt_names: Names the prompts were built from.
        templates: The prompt templates ensembled.
        classification: Single-label metrics (None for multi-label data).
        multilabel: Multi-label metrics (None for single-label data).
        retrieval: Class-prompt text-to-image retrieval metrics (one query per class).
        support: Images per class, int64 `(num_classes,)`.
        top_indices: Dataset rows of each class query's best-ranked images, `(num_classes, k)`.
        seconds: Wall time of the evaluation.
        image_embeds: `(num_images, dim)` image embeddings, not normalised (not serialised).
    """

    model_name: str
    dataset: EvalDataset = field(repr=False)
    class_names: list[str]
    prompt_names: list[str]
    templates: tuple[str, ...]
    classification: ClassificationMetrics | None
    multilabel: MultiLabelMetrics | None
    retrieval: RetrievalMetrics
    support: np.ndarray
    top_indices: np.ndarray = field(repr=False)
    seconds: float
    image_embeds: torch.Tensor | None = field(default=None, repr=False)

    @property
    def num_images(self) -> int:
        return len(self.dataset)

    def summary(self) -> dict[str, float]:
        """Headline numbers: accuracy (single-label) or multi-label mAP, and retrieval means."""
        out: dict[str, float] = {}
        if self.classification is not None:
            out.update({k: float(v) for k, v in self.classification.top_k.items()})
            out["mean_per_class_accuracy"] = self.classification.mean_per_class_accuracy
        if self.multilabel is not None:
            out["multilabel_mAP"] = self.multilabel.mean_average_precision
            out["micro_f1"], out["macro_f1"] = self.multilabel.micro_f1, self.multilabel.macro_f1
        out.update({f"retrieval_{k}": v for k, v in self.retrieval.mean().items()})
        return out

    # ------------------------------------------------------------------------------------------ serialisation
    def results(self) -> list[dict[str, Any]]:
        """Entries in the evaluation-JSON format of `graft_hf.hub.cards` (NaN metrics are left out)."""
        dataset = {"name": self.dataset.name, "type": self.dataset.dataset_type, "split": self.dataset.split}
        entries: list[dict[str, Any]] = []
        metrics: list[tuple[str, float, str]] = []
        if self.classification is not None:
            for key, value in self.classification.top_k.items():
                k = key.removeprefix("top")
                metrics.append(("accuracy" if k == "1" else f"top_{k}_accuracy", value, f"top-{k} accuracy"))
            metrics.append(
                ("mean_per_class_accuracy", self.classification.mean_per_class_accuracy, "mean per-class accuracy")
            )
            task_name = "Zero-shot classification"
        else:
            assert self.multilabel is not None
            metrics += [
                ("mAP", self.multilabel.mean_average_precision, "multi-label mAP"),
                ("f1", self.multilabel.micro_f1, "micro F1"),
                ("f1", self.multilabel.macro_f1, "macro F1"),
            ]
            task_name = "Zero-shot multi-label classification"
        entries.append({"task": CLASSIFICATION_TASK, "task_name": task_name, "dataset": dataset, "metrics": metrics})
        retrieval = [
            (k if k.startswith("mAP") else k.replace("@", "_at_"), v, f"retrieval {k}")
            for k, v in self.retrieval.mean().items()
        ]
        entries.append(
            {"task": RETRIEVAL_TASK, "task_name": "Text-to-image retrieval", "dataset": dataset, "metrics": retrieval}
        )
        out = []
        for entry in entries:
            kept = [
                {"type": t, "value": round(float(v), 6), "name": n}
                for t, v, n in entry["metrics"]
                if _finite(v) is not None
            ]
            if kept:
                out.append({**entry, "dataset": dict(dataset), "metrics": kept})
        return out

    def per_class(self) -> dict[str, dict[str, Any]]:
        """Class name -> prompt name, support, accuracy or AP, and retrieval metrics (None where undefined)."""
        retrieval = self.retrieval.per_class()
        out: dict[str, dict[str, Any]] = {}
        for c, name in enumerate(self.class_names):
            row: dict[str, Any] = {"prompt_name": self.prompt_names[c], "support": int(self.support[c])}
            if self.classification is not None:
                row["accuracy"] = _finite(self.classification.per_class_accuracy[c])
            if self.multilabel is not None:
                row["ap"] = _finite(self.multilabel.per_class_ap[c])
                row["f1"] = _finite(self.multilabel.per_class_f1[c])
            row.update({f"retrieval_{k}": _finite(v) for k, v in retrieval[name].items()})
            out[name] = row
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: `results` (loadable by `load_eval_results`) plus details."""
        data: dict[str, Any] = {
            "results": self.results(),
            "model": self.model_name,
            "dataset": {
                "name": self.dataset.name,
                "type": self.dataset.dataset_type,
                "split": self.dataset.split,
                "kind": self.dataset.kind,
                "num_images": self.num_images,
                "multilabel": self.dataset.multilabel,
            },
            "class_names": self.class_names,
            "templates": list(self.templates),
            "summary": {k: _finite(v) for k, v in self.summary().items()},
            "per_class": self.per_class(),
            "seconds": round(self.seconds, 3),
        }
        if self.classification is not None:
            data["confusion_matrix"] = self.classification.confusion_matrix.tolist()
        if self.multilabel is not None:
            data["multilabel_threshold"] = self.multilabel.threshold
        return data

    def markdown(self) -> str:
        """A markdown report: summary table and per-class table (values in %)."""
        kind = "multi-label" if self.dataset.multilabel else "single-label"
        lines = [
            f"# Zero-shot evaluation of {self.model_name} on {self.dataset.name} ({self.dataset.split})",
            "",
            f"{self.num_images} images, {len(self.class_names)} classes ({kind}), {len(self.templates)} prompt "
            f"templates, {self.seconds:.1f} s.",
            "",
            "| task | metric | value (%) |",
            "|---|---|---|",
        ]
        for entry in self.results():
            for metric in entry["metrics"]:
                lines.append(f"| {entry['task_name']} | {metric['name']} | {100 * metric['value']:.2f} |")
        rows = self.per_class()
        first = next(iter(rows.values()))
        columns = [k for k in first if k not in ("prompt_name", "support")]
        lines += ["", "## Per class", "", "| class | prompt | images | " + " | ".join(columns) + " |"]
        lines.append("|---" * (3 + len(columns)) + "|")
        for name, row in rows.items():
            values = " | ".join("n/a" if row[c] is None else f"{100 * row[c]:.1f}" for c in columns)
            lines.append(f"| {name} | {row['prompt_name']} | {row['support']} | {values} |")
        return "\n".join(lines) + "\n"

    def model_index_yaml(self) -> str:
        """The card's `model-index` metadata (YAML) for these results."""
        return (
            ModelCardData(model_name=self.model_name, eval_results=load_eval_results(self.results())).to_yaml() + "\n"
        )

    def write(self, outdir: str | os.PathLike, *, grid_queries: int = 10, grid_k: int = 8) -> dict[str, Path]:
        """Write all report files into `outdir`.

        Args:
            outdir: Output folder (created).
            grid_queries: Class queries shown in the retrieval grid (the first classes with images).
            grid_k: Images per query in the grid.

        Returns:
            Name -> path of `json`, `markdown`, `model_index`, `confusion_matrix` (single-label), `retrieval_grid`.
        """
        out = Path(outdir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "results.json", "markdown": out / "results.md", "model_index": out / "model_index.yaml"}
        atomic_write(paths["json"], json.dumps(self.to_dict(), indent=2) + "\n")
        atomic_write(paths["markdown"], self.markdown())
        atomic_write(paths["model_index"], self.model_index_yaml())
        if self.classification is not None:
            paths["confusion_matrix"] = plot_confusion_matrix(
                self.classification.confusion_matrix,
                self.class_names,
                out / "confusion_matrix.png",
                title=f"{self.model_name} on {self.dataset.name} ({self.dataset.split}): zero-shot",
            )
        queries = [c for c in range(len(self.class_names)) if self.support[c] > 0][:grid_queries]
        if queries:
            k = min(grid_k, self.top_indices.shape[1])
            rows = [[int(i) for i in self.top_indices[c, :k]] for c in queries]
            relevant = self._relevance()
            paths["retrieval_grid"] = retrieval_grid(
                [self.prompt_names[c] for c in queries],
                [[self.dataset.rgb_image(i) for i in row] for row in rows],
                out / "retrieval_grid.png",
                captions=[[", ".join(self.dataset.label_names(i)) for i in row] for row in rows],
                correct=[[bool(relevant[c, i]) for i in row] for c, row in zip(queries, rows, strict=True)],
            )
        logger.info("wrote evaluation report to %s", out)
        return paths

    def _relevance(self) -> np.ndarray:
        labels = self.dataset.labels
        if labels.ndim == 2:
            return labels.T.astype(bool)
        return np.arange(len(self.class_names))[:, None] == labels[None, :]


def _as_encoder(model_or_encoder: ModelLike, device: str) -> Encoder:
    if isinstance(model_or_encoder, Encoder):
        return model_or_encoder
    if isinstance(model_or_encoder, (str, os.PathLike)):
        return load_encoder(os.fspath(model_or_encoder), device=device)
    if hasattr(model_or_encoder, "encode_images") and hasattr(model_or_encoder, "encode_texts"):
        return Encoder(model_or_encoder, model_or_encoder, type(model_or_encoder).__name__)
    if isinstance(model_or_encoder, GraftModel):
        return graft_encoder(model_or_encoder, device=device)
    raise TypeError(
        f"cannot evaluate a {type(model_or_encoder).__name__}: pass a GraftModel, a model directory, or an "
        "Encoder (graft_hf.evaluation.encoders) with encode_images/encode_texts"
    )


@torch.inference_mode()
def embed_images(encoder: Encoder, dataset: EvalDataset, batch_size: int = 64, progress: bool = True) -> torch.Tensor:
    """`(num_images, dim)` float32 CPU image embeddings of a dataset, in order (not normalised)."""
    chunks = []
    total = math.ceil(len(dataset) / batch_size)
    for batch in tqdm(
        dataset.batches(batch_size), total=total, desc="embedding images", unit="batch", disable=not progress
    ):
        chunks.append(encoder.encode_images(batch).float().cpu())
    return torch.cat(chunks)


def _prompt_names(data: EvalDataset, class_names: Sequence[str] | None) -> list[str]:
    """The names prompts are built from (one per class), checking the dataset has images."""
    if len(data) == 0:
        raise ValueError(f"dataset {data.name} ({data.split}) has no images")
    prompt_names = list(class_names) if class_names is not None else list(data.prompt_names)
    if len(prompt_names) != data.num_classes:
        raise ConfigError("class_names", f"got {len(prompt_names)} for a dataset with {data.num_classes} classes")
    return prompt_names


def _zero_shot_classifier(
    encoder: Encoder, prompt_names: list[str], templates: tuple[str, ...], dim: int
) -> torch.Tensor:
    """`(num_classes, dim)` class embeddings from the encoder's text side, checked against the image space."""
    classifier = build_zero_shot_classifier(encoder.encode_texts, prompt_names, templates)
    if classifier.shape[1] != dim:
        raise ConfigError(
            "text_encoder",
            f"image embeddings have dim {dim} but text embeddings have dim {classifier.shape[1]}; use a text encoder "
            "trained into the same space as the image tower",
        )
    return classifier


def _classification_metrics(
    data: EvalDataset, logits: torch.Tensor, multilabel_threshold: float | None
) -> tuple[ClassificationMetrics | None, MultiLabelMetrics | None, np.ndarray]:
    """Single-label or multi-label metrics of the zero-shot logits, and the number of images per class."""
    labels = torch.as_tensor(data.labels)
    if data.multilabel:
        threshold = multilabel_threshold if multilabel_threshold is not None else 1.0 / data.num_classes
        metrics = multilabel_metrics(logits.softmax(-1), labels, threshold, data.class_names)
        return None, metrics, data.labels.sum(axis=0).astype(np.int64)
    ks = tuple(k for k in (1, 5) if k == 1 or k < data.num_classes)
    metrics = classification_metrics(logits, labels, ks, data.class_names)
    return metrics, None, np.bincount(data.labels, minlength=data.num_classes).astype(np.int64)


def evaluate_model(
    model_or_encoder: ModelLike,
    dataset: EvalDataset | str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    templates: str | os.PathLike | Sequence[str] | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = True,
    map_ks: Sequence[int] = (100, 20),
    recall_ks: Sequence[int] = (1, 5, 10),
    multilabel_threshold: float | None = None,
    top_k: int = 8,
    keep_embeddings: bool = False,
) -> EvalReport:
    """Zero-shot classification and class-prompt text-to-image retrieval of one model on one dataset.

    Args:
        model_or_encoder: A `GraftModel`, an :class:`Encoder` (any image + text encoder, e.g. a GRAFT image
            tower with a MiniLM text encoder, or a CLIP/open_clip baseline from `load_encoder`), any object with
            `encode_images`/`encode_texts`, or a model directory.
        dataset: An :class:`EvalDataset` or a path/Hub id for `load_eval_dataset` (test split, auto kind).
        class_names: Names to build prompts from (one per class), overriding the dataset's readable names.
        templates: See :func:`resolve_templates` (default: the satellite ensemble).
        batch_size: Images per forward pass.
        device: Device for models loaded here (`"cpu"`, `"cuda"`, `"auto"`).
        progress: Show a progress bar while embedding images.
        map_ks: Depths for retrieval mAP@k.
        recall_ks: Depths for retrieval recall@k.
        multilabel_threshold: Decision threshold on the class softmax for multi-label F1 (default 1/num_classes).
        top_k: Best-ranked images kept per class query (for the retrieval grid).
        keep_embeddings: Keep the image embeddings on the report.

    Returns:
        An :class:`EvalReport`.
    """
    if batch_size <= 0:
        raise ConfigError("batch_size", f"must be positive, got {batch_size}")
    data = dataset if isinstance(dataset, EvalDataset) else load_eval_dataset(dataset)
    prompt_names = _prompt_names(data, class_names)
    temps = resolve_templates(templates)
    encoder = _as_encoder(model_or_encoder, device).for_sensor(data.sensor)
    started = time.perf_counter()
    image_embeds = embed_images(encoder, data, batch_size, progress)  # (num_images, dim)
    classifier = _zero_shot_classifier(encoder, prompt_names, temps, image_embeds.shape[1])  # (num_classes, dim)
    logits = zero_shot_logits(image_embeds, classifier)  # (num_images, num_classes), scaled cosine
    classification, multilabel, support = _classification_metrics(data, logits, multilabel_threshold)
    labels = torch.as_tensor(data.labels)
    retrieval = class_retrieval_metrics(classifier, image_embeds, labels, data.class_names, map_ks, recall_ks)
    cosine = F.normalize(classifier, dim=-1) @ F.normalize(image_embeds, dim=-1).T  # (num_classes, num_images)
    seconds = time.perf_counter() - started
    logger.info("evaluated %s on %d images of %s in %.1f s", encoder.name, len(data), data.name, seconds)
    return EvalReport(
        model_name=encoder.name,
        dataset=data,
        class_names=list(data.class_names),
        prompt_names=prompt_names,
        templates=temps,
        classification=classification,
        multilabel=multilabel,
        retrieval=retrieval,
        support=support,
        top_indices=torch.topk(cosine, k=min(top_k, len(data)), dim=1).indices.numpy(),
        seconds=seconds,
        image_embeds=image_embeds if keep_embeddings else None,
    )
