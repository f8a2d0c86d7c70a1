"""`graft eval-fewshot` as a library call: k-shot classifiers on a model's frozen features, mean and spread over seeds.

:class:`FewShotConfig` names the model (GRAFT or any baseline `load_encoder` reads), the dataset and its train and
test splits; :func:`run_fewshot` draws every (shots, seed) support set from the training labels first, embeds only
the union of those images and the test split, fits the classifiers (:mod:`graft_hf.evaluation.fewshot`) and writes
``results.json`` and ``results.md``.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from graft_hf.config import ConfigError, config_dataclass, require
from graft_hf.evaluation.datasets import EvalDataset, load_eval_dataset
from graft_hf.evaluation.encoders import load_encoder
from graft_hf.evaluation.errors import renamed_parameters
from graft_hf.evaluation.fewshot import FewShotRun, few_shot_runs, sample_support, summarise_runs
from graft_hf.evaluation.harness import embed_images
from graft_hf.io import write_report

logger = logging.getLogger(__name__)

__all__ = ["FewShotConfig", "FewShotReport", "run_fewshot"]

Baseline = Literal["auto", "graft", "transformers", "open_clip"]
DatasetKind = Literal["auto", "bigearthnet", "eurosat", "sat4", "sat6", "imagefolder", "classification", "multilabel"]


@config_dataclass
class FewShotConfig:
    """What `graft eval-fewshot` does: k-shot classification on frozen image features of one model, over seeds.

    Attributes:
        data: Dataset folder or Hub dataset id (with a training and a test split).
        output_dir: Output folder for results.json and results.md.
        model: GRAFT or CLIP model directory / Hub id (a report name for open_clip).
        baseline: How to read the model: `auto` (from its config), `graft`, `transformers` (any CLIP) or
            `open_clip`.
        arch: open_clip architecture, e.g. ViT-B-32 (RemoteCLIP, GeoRSCLIP).
        checkpoint: open_clip checkpoint file.
        open_clip_config: JSON file/folder of custom open_clip architectures.
        train_split: Split the support sets are drawn from.
        test_split: Split that is scored.
        dataset_kind: Dataset layout (`auto`: detect).
        class_names: Class names in label-id order (required for unnamed integer labels).
        image_column: Image column (default: the first Image feature).
        label_column: Label column (default: label, labels, class, ...).
        limit: Score a seeded random subset of this many test images.
        shots: Support images per class (repeatable), e.g. 1 and 5.
        seeds: Number of seeds (support draws) per shot count; seeds are 0 .. seeds-1.
        classifier: `linear` (L2-penalised logistic regression) or `prototype` (nearest class mean).
        regularization: Inverse L2 strength C of the linear classifier (scikit-learn's LogisticRegression C).
        batch_size: Images per forward pass.
        device: cpu, cuda or auto.
        progress: Show progress bars.
    """

    data: str
    output_dir: str
    model: str | None = None
    baseline: Baseline = "auto"
    arch: str | None = None
    checkpoint: str | None = None
    open_clip_config: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    dataset_kind: DatasetKind = "auto"
    class_names: list[str] | None = None
    image_column: str | None = None
    label_column: str | None = None
    limit: int | None = None
    shots: list[int] | None = None
    seeds: int = 10
    classifier: Literal["linear", "prototype"] = "linear"
    regularization: float = 1.0
    batch_size: int = 64
    device: str = "cpu"
    progress: bool = True

    def validate_model(self) -> None:
        require(
            bool(self.model) or self.baseline == "open_clip" or bool(self.arch),
            "model",
            "pass a GRAFT or CLIP model directory (or an open_clip baseline: its architecture and checkpoint)",
        )

    def validate_sizes(self) -> None:
        for name in ("batch_size", "seeds"):
            require(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        require(self.limit is None or self.limit > 0, "limit", f"must be positive, got {self.limit}")
        require(all(k > 0 for k in self.shots or []), "shots", f"must be positive, got {self.shots}")
        require(self.regularization > 0, "regularization", f"must be positive, got {self.regularization}")

    @property
    def shot_counts(self) -> list[int]:
        """The shot counts evaluated (default 1 and 5)."""
        return sorted(set(self.shots or [1, 5]))


@dataclass
class FewShotReport:
    """Few-shot scores of one model on one dataset.

    Attributes:
        model_name: The encoder's report name.
        train: The training split (support pool).
        test: The scored test split.
        classifier: `linear` or `prototype`.
        regularization: C of the linear classifier.
        runs: One entry per (shots, seed).
        seconds: Wall time.
    """

    model_name: str
    train: EvalDataset
    test: EvalDataset
    classifier: str
    regularization: float
    runs: list[FewShotRun]
    seconds: float

    @property
    def metric(self) -> str:
        return "mAP" if self.test.multilabel else "accuracy"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "dataset": {
                "name": self.test.name,
                "train_split": self.train.split,
                "test_split": self.test.split,
                "train_images": len(self.train),
                "test_images": len(self.test),
                "multilabel": self.test.multilabel,
            },  # fmt: skip
            "class_names": list(self.test.class_names),
            "classifier": self.classifier,
            "regularization": self.regularization,
            "metric": self.metric,
            "summary": {str(k): v for k, v in summarise_runs(self.runs).items()},
            "runs": [{"shots": r.shots, "seed": r.seed, "score": r.score, "support": r.support} for r in self.runs],
            "seconds": round(self.seconds, 3),
        }

    def markdown(self) -> str:
        lines = [
            f"# Few-shot {self.classifier} classification on frozen {self.model_name} features: {self.test.name}",
            "",
            f"Support sets from {self.train.split} ({len(self.train)} images), scored on {self.test.split} "
            f"({len(self.test)} images), {self.metric} in %.",
            "",
            "| shots | mean | std | min | max | seeds |",
            "|---|---|---|---|---|---|",
        ]
        for k, row in summarise_runs(self.runs).items():
            lines.append(
                f"| {k} | {100 * row['mean']:.2f} | {100 * row['std']:.2f} | {100 * row['min']:.2f} | "
                f"{100 * row['max']:.2f} | {row['seeds']} |"
            )
        return "\n".join(lines) + "\n"

    def write(self, outdir: str | Path) -> dict[str, Path]:
        """Write ``results.json`` and ``results.md`` into `outdir` (created)."""
        return write_report(outdir, self.to_dict(), self.markdown())


def _load_split(config: FewShotConfig, field: Literal["train_split", "test_split"], limit: int | None) -> EvalDataset:
    with renamed_parameters({"path": "data", "kind": "dataset_kind", "split": field}):
        return load_eval_dataset(
            config.data, split=getattr(config, field), kind=config.dataset_kind, class_names=config.class_names,
            image_column=config.image_column, label_column=config.label_column, limit=limit,
        )  # fmt: skip


def _supports(train: EvalDataset, config: FewShotConfig) -> dict[tuple[int, int], np.ndarray]:
    """Support rows of every (shots, seed), drawn from the training labels alone."""
    try:
        return {
            (k, seed): sample_support(train.labels, k, seed, train.num_classes)
            for k in config.shot_counts
            for seed in range(config.seeds)
        }
    except ValueError as error:
        raise ConfigError("shots", f"{error} in split {train.split!r}; use fewer shots") from error


def run_fewshot(config: FewShotConfig) -> tuple[FewShotReport, dict[str, Path]]:
    """Draw the support sets, embed them and the test split, score every (shots, seed) and write the report."""
    train = _load_split(config, "train_split", None)
    test = _load_split(config, "test_split", config.limit)
    if list(train.class_names) != list(test.class_names):
        raise ConfigError(
            "class_names",
            f"the {train.split} and {test.split} splits have different classes ({train.class_names} vs "
            f"{test.class_names}); pass class_names to fix one order",
        )
    supports = _supports(train, config)
    rows = np.unique(np.concatenate(list(supports.values())))  # every support image, embedded once
    position = {int(r): i for i, r in enumerate(rows)}
    encoder = load_encoder(
        config.model or config.arch or "", baseline=config.baseline, arch=config.arch, checkpoint=config.checkpoint,
        open_clip_config=config.open_clip_config, device=config.device,
    ).for_sensor(test.sensor)  # fmt: skip
    started = time.perf_counter()
    pool = train.select(rows)
    train_embeds = embed_images(encoder, pool, config.batch_size, config.progress)
    test_embeds = embed_images(encoder, test, config.batch_size, config.progress)
    local = {key: np.array([position[int(r)] for r in value]) for key, value in supports.items()}
    runs = few_shot_runs(
        train_embeds, pool.labels, test_embeds, test.labels, test.num_classes, shots=config.shot_counts,
        seeds=range(config.seeds), classifier=config.classifier, C=config.regularization, supports=local,
    )  # fmt: skip
    for run in runs:  # report rows of the training split, not of the embedded pool
        run.support = [int(rows[i]) for i in run.support]
    report = FewShotReport(
        encoder.name, train, test, config.classifier, config.regularization, runs, time.perf_counter() - started
    )
    return report, report.write(config.output_dir)
