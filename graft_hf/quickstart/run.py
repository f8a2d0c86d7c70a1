"""``graft quickstart``: the complete EuroSAT benchmark of GRAFT in its alt-text mode, in one resumable command.

Steps (each one resumes where a killed run stopped):

1. **pairs** -- the EuroSAT training tiles with 1 to 25 simulated ground observations each, written as pair shards
   (:func:`graft_hf.quickstart.eurosat.write_eurosat_pairs`);
2. **embed** -- the observations embedded by the frozen text teacher, all-MiniLM-L6-v2, into the shards'
   ``text_embedding`` field (:func:`graft_hf.pairs.embed.embed_pairs`);
3. **train** -- a ViT student trained from scratch with the image-level multi-positive loss (paper eq. 2) on the
   streaming loader and the Accelerate loop (:func:`graft_hf.training.train`), checkpointing as it goes; the saved
   model (``train/model``) carries all-MiniLM-L6-v2 as its text tower and its tokenizer in the processor, so it
   answers text queries by itself (``AutoModel``, ``pipeline("zero-shot-image-classification")``, ``graft eval``);
4. **evaluate** -- zero-shot classification of the EuroSAT test split with CLIP's EuroSAT class names and
   templates (wording that never appears in an observation), and text-to-image retrieval per class, through the
   evaluation harness (:func:`graft_hf.evaluation.evaluate_model`) with the saved model's own text tower; writes
   ``report.md``, ``report.json``, the harness's ``results.json`` (model-card evaluation format), ``results.md``,
   ``model_index.yaml``, a confusion matrix and a retrieval grid.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from graft_hf.io import write_json
from graft_hf.pairs.embed import load_teacher
from graft_hf.quickstart.common import (
    StepTimer,
    as_percent,
    benchmark_train_config,
    embed_fields,
    embed_observations,
    start_run,
    text_encoder_path,
    timer_fields,
    train_or_resume,
)
from graft_hf.quickstart.config import QuickstartConfig, StudentArch
from graft_hf.quickstart.eurosat import load_eurosat_split, write_eurosat_pairs
from graft_hf.quickstart.observations import EUROSAT_CLASSNAMES, EUROSAT_TEMPLATES
from graft_hf.quickstart.report import evaluate_student, summarize_evaluation, write_markdown_report

# The config and the shared helpers live in config.py and common.py; their names stay importable from here.
__all__ = [
    "QuickstartConfig",
    "StepTimer",
    "StudentArch",
    "as_percent",
    "embed_observations",
    "run_quickstart",
    "text_encoder_path",
    "train_or_resume",
]

logger = logging.getLogger(__name__)


def run_quickstart(config: QuickstartConfig) -> dict[str, Any]:
    """Run (or resume) the whole benchmark and write its report.

    Args:
        config: The run; ``data`` is required.

    Returns:
        The report dict (also ``<output_dir>/report/report.json``).
    """
    out, encoder_path, timer = start_run(config, "quickstart", "quickstart_config.json")
    with timer.step("load"):
        train_split = load_eurosat_split(config.data, "train", config.train_limit, config.seed)
        teacher = load_teacher(encoder_path, "sentence", device="cpu")
    with timer.step("pairs"):
        pairs_summary = write_eurosat_pairs(
            train_split, out / "pairs", config.sampler(), num_shards=config.num_shards, progress=config.progress
        )
    with timer.step("embed"):
        embed_report = embed_observations(out / "pairs", encoder_path, teacher)
    with timer.step("train"):
        train_config = benchmark_train_config(
            config,
            "image",
            out / "pairs",
            out / "train",
            teacher.dim,
            text_tower=encoder_path,
            shuffle_buffer=2048,
            max_photos=config.max_observations,
        )
        model_dir = train_or_resume(train_config, out / "train", "quickstart")
    with timer.step("evaluate"):
        evaluation, files = evaluate_student(
            model_dir,
            config.data,
            out / "report",
            classnames=EUROSAT_CLASSNAMES,
            templates=EUROSAT_TEMPLATES,
            limit=config.test_limit,
            seed=config.seed,
            progress=config.progress,
        )
    report = {
        "benchmark": "EuroSAT zero-shot, GRAFT alt-text mode (simulated ground observations, MiniLM teacher)",
        "data": config.data,
        "train_tiles": len(train_split),
        "test_tiles": evaluation.num_images,
        "pairs": pairs_summary,
        "embed": embed_fields(embed_report),
        "model": str(model_dir),
        "text_tower": getattr(teacher, "name", encoder_path),
        **timer_fields(timer),
        **summarize_evaluation(evaluation),
        "files": {name: str(path) for name, path in files.items()},
    }
    _write_report(report, out / "report")
    return report


def _write_report(report: dict[str, Any], report_dir: Path) -> None:
    write_json(report_dir / "report.json", report)
    write_markdown_report(report, report_dir / "report.md")
    logger.info(
        "quickstart done in %.0f s: top-1 %s (report: %s)",
        report["seconds"]["total"],
        as_percent(report["top1"]),
        report_dir / "report.md",
    )
