"""``graft mosaic-benchmark``: GRAFT's pixel-level model (eq. 3) on EuroSAT mosaics, in one resumable command.

Steps (each resumes where a killed run stopped):

1. **mosaics** -- training mosaics from EuroSAT training tiles, with simulated observations inside each tile's
   block, written as pair shards (:func:`graft_hf.quickstart.mosaic.write_mosaic_pairs`); test mosaics from test
   tiles are laid out in memory;
2. **embed** -- the observations embedded by the all-MiniLM-L6-v2 text teacher (``embed_pairs(text=True)``);
3. **train** -- a scratch ViT whose patch grid resolves the tiles, trained with the pixel-level loss on the
   streaming loader and the Accelerate loop (:func:`graft_hf.training.train`, ``task=pixel``); the saved model
   carries the text teacher as its text tower, with its tokenizer in the processor;
4. **image model** -- the baseline's image-level model: ``image_model`` (e.g. the quickstart's student) or, when
   not given, a reduced ``graft quickstart`` run trained here on single tiles;
5. **evaluate** -- zero-shot segmentation of the test mosaics against the broadcast baseline
   (:mod:`graft_hf.quickstart.mosaic_eval`); writes ``report/report.md``, ``report.json`` and the pictures.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graft_hf.evaluation.encoders import load_encoder
from graft_hf.evaluation.plots import plot_confusion_matrix
from graft_hf.evaluation.zeroshot import build_zero_shot_classifier
from graft_hf.io import write_json
from graft_hf.modeling import GraftModel
from graft_hf.pairs.embed import load_teacher
from graft_hf.quickstart.common import (
    as_percent,
    benchmark_train_config,
    embed_fields,
    embed_observations,
    start_run,
    timer_fields,
    train_or_resume,
)
from graft_hf.quickstart.config import MissingInputError, MosaicConfig, QuickstartConfig, mosaic_student
from graft_hf.quickstart.eurosat import EuroSATSplit, load_eurosat_split
from graft_hf.quickstart.mosaic import EUROSAT_TILE_SIZE, MosaicSet, build_mosaics, write_mosaic_pairs
from graft_hf.quickstart.mosaic_eval import (
    broadcast_baseline,
    evaluate_mosaics,
    predict_pixel_maps,
    render_mosaic_examples,
    write_mosaic_report,
)
from graft_hf.quickstart.observations import EUROSAT_CLASSNAMES, EUROSAT_LABELS, EUROSAT_TEMPLATES
from graft_hf.quickstart.run import run_quickstart

# MosaicConfig and mosaic_student live in config.py; they stay importable from here.
__all__ = ["MosaicConfig", "mosaic_student", "run_mosaic_benchmark"]

logger = logging.getLogger(__name__)


def run_mosaic_benchmark(config: MosaicConfig) -> dict[str, Any]:
    """Run (or resume) the mosaic benchmark and write its report.

    Args:
        config: The run; ``data`` is required.

    Returns:
        The report dict (also ``<output_dir>/report/report.json``).
    """
    _check_image_model(config)
    out, encoder_path, timer = start_run(config, "mosaic benchmark", "mosaic_config.json")
    with timer.step("load"):
        train_split = load_eurosat_split(config.data, "train", config.train_limit, config.seed)
        test_split = load_eurosat_split(config.data, "test", config.test_limit, config.seed)
        teacher = load_teacher(encoder_path, "sentence", device="cpu")
    with timer.step("mosaics"):
        pairs_summary = _write_training_mosaics(config, train_split, out / "pairs")
        test_mosaics = build_mosaics(
            test_split, config.test_mosaics, config.grid, config.tile_size, config.seed + 1, name="test"
        )
    with timer.step("embed"):
        embed_report = embed_observations(out / "pairs", encoder_path, teacher, rows_per_batch=256)
    with timer.step("train"):
        train_config = benchmark_train_config(
            config,
            "pixel",
            out / "pairs",
            out / "train",
            teacher.dim,
            text_tower=encoder_path,
            shuffle_buffer=1024,
            max_photos=config.grid**2 * config.max_observations,  # every observation of the mosaic
        )
        model_dir = train_or_resume(train_config, out / "train", "mosaic benchmark")
    with timer.step("image_model"):
        image_model_dir, image_model_source = _image_model(config, out)
    with timer.step("evaluate"):
        evaluation, files = _evaluate(config, model_dir, image_model_dir, test_mosaics, out / "report")
    report = {
        "benchmark": "EuroSAT mosaics, zero-shot segmentation, GRAFT pixel-level (eq. 3) alt-text mode",
        "data": config.data,
        "setup": _setup(config, test_mosaics),
        "train_tiles": len(train_split),
        "test_tiles": len(test_split),
        "test_mosaics": len(test_mosaics),
        "test_pixels": int(len(test_mosaics) * test_mosaics.size**2),
        "pairs": pairs_summary,
        "embed": embed_fields(embed_report),
        "model": str(model_dir),
        "image_model": str(image_model_dir),
        "image_model_source": image_model_source,
        **evaluation,
        **timer_fields(timer),
        "files": files,
    }
    _write_report(report, out / "report")
    return report


def _check_image_model(config: MosaicConfig) -> None:
    if config.image_model is not None and not (Path(config.image_model) / "config.json").is_file():
        raise MissingInputError(
            "image_model",
            f"{config.image_model!r} is not a GRAFT model folder (no config.json); pass the quickstart's trained "
            "student (e.g. runs/quickstart/train/model) or leave it out to train one",
        )


def _write_training_mosaics(config: MosaicConfig, split: EuroSATSplit, pairs: Path) -> dict[str, Any]:
    """Lay out the training mosaics and write them with their observations as pair shards; returns the summary."""
    mosaics = build_mosaics(split, config.train_mosaics, config.grid, config.tile_size, config.seed, name="train")
    return write_mosaic_pairs(mosaics, pairs, config.sampler(), num_shards=config.num_shards, progress=config.progress)


def _image_model(config: MosaicConfig, out: Path) -> tuple[str, str]:
    """The baseline's image-level model folder and where it came from."""
    if config.image_model is not None:
        return config.image_model, "given with --image-model"
    logger.info("mosaic benchmark: no image_model given, training a reduced image-level student on single tiles")
    quick = QuickstartConfig(
        data=config.data,
        output_dir=str(out / "image_model"),
        text_encoder=config.text_encoder,
        train_limit=config.image_train_limit,
        test_limit=max(10, min(500, config.test_limit or 500)),
        max_steps=config.image_model_steps,
        batch_size=max(config.batch_size, 16),
        num_shards=min(config.num_shards, 4),
        num_workers=config.num_workers,
        save_every=config.save_every,
        student=dataclasses.replace(config.student, image_size=EUROSAT_TILE_SIZE, patch_size=8),
        seed=config.seed,
        threads=config.threads,
        progress=config.progress,
    )
    report = run_quickstart(quick)
    return report["model"], (
        f"trained here: reduced quickstart, {report['train_tiles']} tiles, {config.image_model_steps} steps, "
        f"single-tile top-1 {100 * report['top1']:.1f}% on {report['test_tiles']} test tiles"
    )


def _load_model(model_dir: str | Path, name: str, classifier: torch.Tensor) -> GraftModel:
    model = GraftModel.from_pretrained(str(model_dir))
    if model.config.projection_dim != classifier.shape[1]:
        raise ValueError(
            f"the {name} model embeds in {model.config.projection_dim} dimensions but the text teacher in "
            f"{classifier.shape[1]}: use a model trained against the same teacher"
        )
    return model


def _evaluate(
    config: MosaicConfig,
    model_dir: Path,
    image_model_dir: str,
    mosaics: MosaicSet,
    report_dir: Path,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Segment the test mosaics with both models: the report's metrics and baseline classes, and the two pictures.

    The class prompts are embedded by the text tower the pixel-level model carries (the text teacher, with the
    tokenizer saved in its processor); the image-level baseline is scored against the same class embeddings.
    """
    text = load_encoder(str(model_dir), baseline="graft").text_encoder
    classifier = build_zero_shot_classifier(text.encode_texts, list(EUROSAT_CLASSNAMES), list(EUROSAT_TEMPLATES))
    pixel_model = _load_model(model_dir, "pixel-level", classifier)
    image_model = _load_model(image_model_dir, "image-level", classifier)
    pixel_maps = predict_pixel_maps(pixel_model, mosaics, classifier, progress=config.progress)
    baseline_maps, baseline_classes = broadcast_baseline(image_model, mosaics, classifier)
    metrics = evaluate_mosaics(pixel_maps, baseline_maps, mosaics, EUROSAT_LABELS)
    examples_png = render_mosaic_examples(
        mosaics, pixel_maps, baseline_maps, EUROSAT_LABELS, report_dir / "mosaic_examples.png", config.examples
    )
    pixel = metrics["pixel_level"]
    confusion_png = plot_confusion_matrix(
        np.asarray(pixel["confusion"]),
        list(EUROSAT_LABELS),
        report_dir / "confusion_pixel_level.png",
        title=f"Mosaic pixels, pixel-level model, mean accuracy {100 * pixel['mean_accuracy']:.1f}%",
    )
    fields = {
        "baseline_class_counts": {name: int((baseline_classes == i).sum()) for i, name in enumerate(EUROSAT_LABELS)},
        "labels": list(EUROSAT_LABELS),
        "prompts": {"classnames": list(EUROSAT_CLASSNAMES), "templates": list(EUROSAT_TEMPLATES)},
        **metrics,
    }
    return fields, {"examples": str(examples_png), "confusion_pixel_level": str(confusion_png)}


def _setup(config: MosaicConfig, mosaics: MosaicSet) -> dict[str, Any]:
    """The report's ``setup`` entry: mosaic geometry, student and training settings."""
    return {
        "grid": config.grid,
        "tile_size": config.tile_size,
        "mosaic_size": mosaics.size,
        "gsd": mosaics.gsd,
        "patch_grid": config.student.image_size // config.student.patch_size,
        "patches_per_tile": config.tile_size // config.student.patch_size,
        "student": dataclasses.asdict(config.student),
        "epochs": config.epochs,
        "max_steps": config.max_steps,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "temperature": config.temperature,
    }


def _write_report(report: dict[str, Any], report_dir: Path) -> None:
    write_json(report_dir / "report.json", report)
    write_mosaic_report(report, report_dir / "report.md")
    pixel, base = report["pixel_level"], report["baseline"]
    logger.info(
        "mosaic benchmark done in %.0f s: pixel-level mean accuracy %s mIoU %s, baseline %s / %s",
        report["seconds"]["total"],
        as_percent(pixel["mean_accuracy"]),
        as_percent(pixel["miou"]),
        as_percent(base["mean_accuracy"]),
        as_percent(base["miou"]),
    )
