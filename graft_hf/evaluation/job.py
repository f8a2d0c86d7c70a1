"""`graft eval` as a library call: :class:`EvalConfig` says what to score, :func:`run_eval` scores it and writes the
report.

The config is the single source of truth of the command's options (names, types, defaults, help); the command
line reads its flags from it. Errors name the config field they concern (``data: ...``), which the command line
turns into the flag.
"""

import logging
from pathlib import Path
from typing import Literal

from graft_hf.config import config_dataclass, require
from graft_hf.evaluation.datasets import load_eval_dataset
from graft_hf.evaluation.encoders import load_encoder
from graft_hf.evaluation.errors import renamed_parameters
from graft_hf.evaluation.harness import EvalReport, evaluate_model

logger = logging.getLogger(__name__)

__all__ = ["EvalConfig", "run_eval"]

# The command line reads choices from this module's source, so the kinds are spelled here; a test checks that
# they equal `datasets.DATASET_KINDS` and `encoders.BaselineKind`.
Baseline = Literal["auto", "graft", "transformers", "open_clip"]
DatasetKind = Literal["auto", "bigearthnet", "eurosat", "sat4", "sat6", "imagefolder", "classification", "multilabel"]


@config_dataclass
class EvalConfig:
    """What `graft eval` does: zero-shot classification and retrieval of one model (or baseline) on one dataset.

    Attributes:
        data: Dataset folder or Hub dataset id.
        output_dir: Output folder for the report files.
        model: GRAFT or CLIP model directory / Hub id (a report name for open_clip).
        baseline: How to read the model: `auto` (from its config), `graft`, `transformers` (any CLIP) or
            `open_clip`.
        arch: open_clip architecture, e.g. ViT-B-32 (RemoteCLIP, GeoRSCLIP).
        checkpoint: open_clip checkpoint file.
        open_clip_config: JSON file/folder of custom open_clip architectures.
        text_encoder: Separate text encoder directory (e.g. all-MiniLM-L6-v2).
        split: Split to evaluate.
        dataset_kind: Dataset layout (`auto`: detect).
        class_names: Class names in label-id order: the prompt names for named labels, required for unnamed
            integer labels.
        image_column: Image column (default: the first Image feature).
        label_column: Label column (default: label, labels, class, ...).
        limit: Evaluate a seeded random subset of this many images.
        templates: Template set (satellite, ground, simple, clip-eurosat), a template with '{}' or a file.
        batch_size: Images per forward pass.
        device: cpu, cuda or auto.
        multilabel_threshold: Multi-label decision threshold on class probabilities (default: 1 / num_classes).
        grid_queries: Class queries in the retrieval grid.
        grid_k: Images per query in the retrieval grid.
        progress: Show progress bars.
    """

    data: str
    output_dir: str
    model: str | None = None
    baseline: Baseline = "auto"
    arch: str | None = None
    checkpoint: str | None = None
    open_clip_config: str | None = None
    text_encoder: str | None = None
    split: str = "test"
    dataset_kind: DatasetKind = "auto"
    class_names: list[str] | None = None
    image_column: str | None = None
    label_column: str | None = None
    limit: int | None = None
    templates: str = "satellite"
    batch_size: int = 64
    device: str = "cpu"
    multilabel_threshold: float | None = None
    grid_queries: int = 10
    grid_k: int = 8
    progress: bool = True

    def validate_model(self) -> None:
        require(
            bool(self.model) or self.baseline == "open_clip" or bool(self.arch),
            "model",
            "pass a GRAFT or CLIP model directory (or an open_clip baseline: its architecture and checkpoint)",
        )

    def validate_sizes(self) -> None:
        for name in ("batch_size", "grid_queries", "grid_k"):
            require(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        require(self.limit is None or self.limit > 0, "limit", f"must be positive, got {self.limit}")


#: Parameters of `load_eval_dataset` whose config field has another name.
_DATASET_FIELDS = {"path": "data", "kind": "dataset_kind"}


def run_eval(config: EvalConfig) -> tuple[EvalReport, dict[str, Path]]:
    """Load the dataset and the model, score the model and write the report into `config.output_dir`.

    Returns:
        The report and the paths of the files written (see :meth:`EvalReport.write`).
    """
    with renamed_parameters(_DATASET_FIELDS):
        dataset = load_eval_dataset(
            config.data,
            split=config.split,
            kind=config.dataset_kind,
            class_names=config.class_names,
            image_column=config.image_column,
            label_column=config.label_column,
            limit=config.limit,
        )
    encoder = load_encoder(
        config.model or config.arch or "",
        baseline=config.baseline,
        arch=config.arch,
        checkpoint=config.checkpoint,
        open_clip_config=config.open_clip_config,
        text_encoder=config.text_encoder,
        device=config.device,
    )
    report = evaluate_model(
        encoder,
        dataset,
        class_names=config.class_names,
        templates=config.templates,
        batch_size=config.batch_size,
        progress=config.progress,
        multilabel_threshold=config.multilabel_threshold,
        top_k=config.grid_k,
    )
    return report, report.write(config.output_dir, grid_queries=config.grid_queries, grid_k=config.grid_k)
