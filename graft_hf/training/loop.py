"""The Accelerate training loop: ``train(config)`` from checks to a ``save_pretrained`` GRAFT directory.

Read :func:`train` top to bottom: checks (config, data, teacher) before any compute (:func:`plan_run`) -> student,
task, optimizer, schedule -> optional resume -> epochs of micro-batches with gradient accumulation -> logging,
validation, checkpoints -> export. The loop knows nothing about GRAFT's losses: the task returns
``(losses, logs)``.

Several processes: ``accelerate launch -m graft_hf_cli train CONFIG`` or ``torchrun ... -m graft_hf_cli train``.
Ranks read disjoint shards; an epoch ends on every rank as soon as one rank runs out of batches, so collective
ops never wait on a finished rank.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.state import AcceleratorState, is_initialized
from accelerate.utils import ProjectConfiguration, is_tensorboard_available, set_seed
from tqdm.auto import tqdm
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from graft_hf import build_processor
from graft_hf.config import ConfigError
from graft_hf.io import atomic_write, write_json
from graft_hf.pairs.loader import build_pairs_dataloader
from graft_hf.training.checkpoint import (
    RESUME_LOG,
    TrainingState,
    TrainProgress,
    check_resume_settings,
    load_checkpoint,
    resume_checkpoint,
    run_settings,
    save_checkpoint,
)
from graft_hf.training.data import PairsInfo, inspect_pairs
from graft_hf.training.lora import apply_lora, export_student
from graft_hf.training.sections import StudentSection, TrainConfig
from graft_hf.training.task import (
    ClipPhotoPreprocess,
    GraftTrainingTask,
    batch_to_device,
    build_student,
    freeze_unused_heads,
    load_teacher_clip,
)
from graft_hf.training.validation import evaluate

if TYPE_CHECKING:
    from transformers import CLIPModel

logger = logging.getLogger(__name__)

__all__ = ["RunPlan", "TargetPlan", "build_optimization", "build_task", "evaluate", "plan_run", "plan_targets", "train"]


# ------------------------------------------------------------------------------------ checks before any compute
@dataclass(frozen=True)
class TargetPlan:
    """Which loader target feeds the run, and its dimension (from the shards; ``None``: the teacher's)."""

    loader_target: str
    dim: int | None

    @property
    def on_the_fly(self) -> bool:
        return self.loader_target == "pixels"


def plan_targets(config: TrainConfig, info: PairsInfo) -> TargetPlan:
    """Decide between precomputed and on-the-fly targets and check the shards can supply them."""
    target, mode, path = config.loss.target, config.teacher.targets, config.data.path
    if target in ("text", "image+text"):
        if info.text_embedding_dim is None:
            raise ValueError(
                f"loss.target={target!r} needs precomputed photo text embeddings (`text_embedding`) in {path!r}, but "
                "the first tiles have none; embed the photo texts (graft_hf.pairs.EmbedConfig(text=True), "
                "`graft pairs embed`) or set loss.target=image"
            )
        if target == "text":
            return TargetPlan("text_embedding", info.text_embedding_dim)
        if info.embedding_dim is None:
            raise ValueError("loss.target='image+text' needs precomputed photo image embeddings too (`embedding`)")
        if info.embedding_dim != info.text_embedding_dim:
            raise ValueError(
                f"image and text embeddings differ in size ({info.embedding_dim} vs {info.text_embedding_dim}); "
                "both must come from the same teacher"
            )
        return TargetPlan("image+text", info.embedding_dim)
    if mode == "precomputed" or (mode == "auto" and info.embedding_dim is not None):
        if info.embedding_dim is None:
            raise ValueError(
                f"teacher.targets=precomputed but the shards at {path!r} carry no photo embeddings; embed them "
                "(`graft pairs embed`) or set teacher.targets=on_the_fly"
            )
        return TargetPlan("embedding", info.embedding_dim)
    if not info.has_photo_images:
        raise ValueError(
            f"on-the-fly targets need the photos' image bytes, but the shards at {path!r} carry neither photo images "
            "nor embeddings; rebuild the pairs with photo images or precomputed embeddings"
        )
    if not config.teacher.name_or_path:
        raise ValueError("on-the-fly targets need a teacher: set teacher.name_or_path to a local CLIP directory")
    return TargetPlan("pixels", None)


@dataclass(frozen=True)
class RunPlan:
    """What the checks before any compute decided.

    Attributes:
        micro_batch: Per-process batch of one forward pass.
        targets: The loader target and its dimension.
        total_steps: Optimizer steps of the whole run (the LR schedule's length).
        max_epochs: Epochs to run at most (unbounded when ``train.max_steps`` is set).
        resume_from: Checkpoint to resume from, ``None`` for a fresh start.
    """

    micro_batch: int
    targets: TargetPlan
    total_steps: int
    max_epochs: int
    resume_from: Path | None


def _steps_per_epoch(config: TrainConfig, info: PairsInfo, micro: int, world: int) -> int | None:
    rows = config.data.num_tiles or info.num_rows
    if rows is None:
        return None
    return max(1, rows // world // micro // config.train.grad_accum)


def plan_run(
    config: TrainConfig,
    num_processes: int,
    resume: bool | str | os.PathLike = False,
    *,
    resume_log: str | os.PathLike | None = None,
) -> RunPlan:
    """Every check that can fail before compute: config, shards and their targets, run length, checkpoint.

    Args:
        config: The run configuration.
        num_processes: Processes of the launch.
        resume: As in :func:`train`.
        resume_log: File the resume decision is appended to (one process passes it).

    Raises:
        ConfigError: A config key to change (named); key ``resume`` when the checkpoint was made with other
            run-defining settings (:class:`graft_hf.resume.ResumeRefusedError`, naming each changed setting).
        FileNotFoundError: No shards, or ``resume`` finds no checkpoint.
        ValueError: The shards cannot supply the targets, a split is empty, or a checkpoint file is damaged
            (:class:`graft_hf.training.checkpoint.CheckpointError`).
    """
    config.check_run(num_processes)
    micro = config.micro_batch_size(num_processes)
    info = inspect_pairs(config.data, config.data.split)
    if config.data.val_split:
        inspect_pairs(config.data, config.data.val_split)
    targets = plan_targets(config, info)
    run = config.train
    steps_per_epoch = _steps_per_epoch(config, info, micro, num_processes)
    if run.max_steps is None and steps_per_epoch is None:
        raise ConfigError(
            "train.max_steps",
            f"cannot count the tiles of {config.data.path!r} (remote or non-parquet shards): set train.max_steps, "
            "or data.num_tiles to the number of training tiles",
        )
    total_steps = run.max_steps or run.epochs * steps_per_epoch  # type: ignore[operator]
    max_epochs = run.epochs if run.max_steps is None else 1 << 30
    resume_from = resume_checkpoint(resume, Path(config.output_dir) / "checkpoints")
    if resume_from is not None:
        check_resume_settings(resume_from, run_settings(config, num_processes), log=resume_log)
    return RunPlan(micro, targets, total_steps, max_epochs, resume_from)


# ------------------------------------------------------------------------------------ student, task, optimizer
def build_task(
    config: TrainConfig, plan: TargetPlan, clip: CLIPModel | None, rank: int = 0, world_size: int = 1
) -> GraftTrainingTask:
    """Student (from the teacher CLIP or from scratch), optional LoRA, and the task module around it.

    Raises:
        ValueError: The target dimension differs from the student's embedding dimension.
    """
    student = build_student(
        config.student.init,
        clip=clip,
        use_patch_head=config.task == "pixel",
        sensor=config.student.sensor,
        config_overrides=config.student.config,
    )
    if plan.dim is not None and plan.dim != student.config.projection_dim:
        raise ValueError(
            f"the targets in the shards are {plan.dim}-d but the student embeds into {student.config.projection_dim}"
            f"-d: set student.config.projection_dim={plan.dim} (student.init=scratch) or embed the pairs with the "
            "student's teacher"
        )
    if clip is not None and plan.on_the_fly and clip.config.projection_dim != student.config.projection_dim:
        raise ValueError("the teacher CLIP and the student have different projection_dim; use the same CLIP")
    if config.student.gradient_checkpointing:
        _enable_checkpointing(student)
    freeze_unused_heads(student, config.task)
    if config.student.lora.enabled:
        student = apply_lora(student, config.student.lora)
    gather = config.loss.gather_negatives and world_size > 1
    task = GraftTrainingTask(
        student,
        teacher=clip if plan.on_the_fly else None,
        task=config.task,
        text_weight=config.loss.text_weight if config.loss.target == "image+text" else 0.0,
        temperature=config.loss.temperature,
        rank=rank if gather else 0,
        world_size=world_size if gather else 1,
        teacher_dtype=config.teacher.dtype,
    )
    return task.train()


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # As open_clip: no decay on 1-d parameters (biases, norm gains, class embedding) and the logit scale.
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "logit_scale" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimization(
    task: torch.nn.Module, config: TrainConfig, total_steps: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (decoupled weight decay on matrices only) and transformers' linear warm-up + cosine schedule.

    The LR multiplier before optimizer step ``s`` (0-based) is ``s / warmup`` during warm-up (the first step runs
    at LR 0), then a half cosine from 1 down to ``optim.min_lr_ratio`` at ``total_steps``
    (``transformers.get_cosine_with_min_lr_schedule_with_warmup``).
    """
    optimizer = torch.optim.AdamW(
        _param_groups(task, config.optim.weight_decay),
        lr=config.optim.lr,
        betas=tuple(config.optim.betas),  # type: ignore[arg-type]
        eps=config.optim.eps,
    )
    warmup = config.optim.warmup_steps
    warmup = warmup if warmup is not None else int(config.optim.warmup_ratio * total_steps)
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer,
        num_warmup_steps=max(warmup, 0),
        num_training_steps=total_steps,
        min_lr_rate=config.optim.min_lr_ratio,
    )
    return optimizer, scheduler


def _accelerator(config: TrainConfig) -> Accelerator:
    """The run's Accelerator.

    Accelerate keeps the mixed precision and the device in a process-wide state that it refuses to change (and
    has no public reset), so a later run in the same process must agree with the first one; this is checked
    here, before any compute, naming the config key.
    """
    precision, cpu = config.train.mixed_precision, config.train.cpu
    if is_initialized():
        state = AcceleratorState()
        reason = "Accelerate fixes it once per process; run this training in a new process"
        if state.mixed_precision != precision:
            already = f"{precision!r}, but this process already trained with {state.mixed_precision!r}"
            raise ConfigError("train.mixed_precision", f"{already}: {reason}")
        if cpu and state.device.type != "cpu":
            raise ConfigError("train.cpu", f"true, but this process already trained on {state.device}: {reason}")
    out = Path(config.output_dir)
    return Accelerator(
        mixed_precision=precision,
        log_with=_tracker(config),
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
        cpu=cpu,
    )


def _tracker(config: TrainConfig) -> str | None:
    """The Accelerate tracker, ``None`` for none (Accelerate silently drops a tracker whose package is missing)."""
    tracker = config.train.tracker
    if tracker in ("", "none"):
        return None
    if tracker == "tensorboard" and not is_tensorboard_available():
        logger.warning(
            "train.tracker=tensorboard but tensorboard is not installed: no TensorBoard logs (metrics.jsonl is "
            "written anyway); pip install 'graft-hf[train]' or set train.tracker=none"
        )
        return None
    return tracker


def _build_training(
    config: TrainConfig, plan: RunPlan, accelerator: Accelerator
) -> tuple[GraftTrainingTask, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Teacher, seeded student and task, optimizer and schedule, prepared by Accelerate."""
    needs_clip = config.student.init == "from_clip" or plan.targets.on_the_fly
    clip = load_teacher_clip(config.teacher.name_or_path) if needs_clip else None  # type: ignore[arg-type]
    set_seed(config.seed)
    task = build_task(config, plan.targets, clip, rank=accelerator.process_index, world_size=accelerator.num_processes)
    task = task.to_device(accelerator.device)
    if plan.targets.on_the_fly and accelerator.device.type == "cpu" and config.teacher.dtype == "float16":
        logger.warning("teacher.dtype=float16 on the CPU is very slow; pass teacher.dtype=float32 for CPU runs")
    optimizer, scheduler = build_optimization(task, config, plan.total_steps)
    task, optimizer = accelerator.prepare(task, optimizer)
    return task, optimizer, scheduler


# ------------------------------------------------------------------------------------------------------ the run
def train(config: TrainConfig, resume: bool | str | os.PathLike = False) -> Path:
    """Train a GRAFT model; returns the final ``save_pretrained`` directory (``<output_dir>/model``).

    One process trains with one ``train.mixed_precision``: Accelerate keeps the precision in a process-wide state
    that it does not let change, so a second call in the same process must use the same precision (``graft
    train`` runs one training per process).

    Args:
        config: The run configuration.
        resume: ``True`` resumes from the latest checkpoint in ``<output_dir>/checkpoints`` (fails if none),
            a path resumes from that checkpoint, ``False`` starts fresh.

    Raises:
        graft_hf.resume.ResumeRefusedError: The checkpoint was made with other run-defining settings (each one
            named; only :data:`graft_hf.training.checkpoint.SAFE_TO_CHANGE` may differ).
        graft_hf.training.checkpoint.CheckpointError: A checkpoint file is missing, damaged or does not fit the run.
    """
    accelerator = _accelerator(config)
    log = Path(config.output_dir) / RESUME_LOG if accelerator.is_main_process else None
    plan = plan_run(config, accelerator.num_processes, resume, resume_log=log)
    run = _Run(config, plan, accelerator)
    if plan.resume_from is not None:
        run.progress = load_checkpoint(run.state, plan.resume_from)
    run.start()
    while run.progress.step < plan.total_steps and run.progress.epoch < plan.max_epochs:
        run.train_epoch()
    run.finish()
    return run.export()


class _Run:
    """The live state of one training run, and its steps: one epoch, one micro-batch, one optimizer step."""

    def __init__(self, config: TrainConfig, plan: RunPlan, accelerator: Accelerator) -> None:
        self.config, self.plan, self.accelerator = config, plan, accelerator
        self.settings = config.train
        self.out = Path(config.output_dir)
        self.task, self.optimizer, self.scheduler = _build_training(config, plan, accelerator)
        self.state = TrainingState(accelerator, self.task, self.optimizer, self.scheduler)
        self.trainable = [p for p in self.task.parameters() if p.requires_grad]
        self.progress = TrainProgress()
        self.samples_per_step = plan.micro_batch * accelerator.num_processes * self.settings.grad_accum
        self.window: dict[str, float] = defaultdict(float)  # logged values summed since the last log line
        self.window_count, self.window_start = 0, time.perf_counter()

    @property
    def student(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.task).student

    def start(self) -> None:
        """Run files and trackers, the loaders and the progress bar (after a resume has restored the state)."""
        config, accelerator = self.config, self.accelerator
        if accelerator.is_main_process:
            atomic_write(self.out / "train_config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        if accelerator.log_with:  # the trackers Accelerate kept
            flat = {f"{s}.{k}": v for s, d in config.to_dict().items() if isinstance(d, dict) for k, v in d.items()}
            hparams = {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in flat.items()}
            accelerator.init_trackers("graft", config={**hparams, "task": config.task})
        self.loader = self._loader(config.data.split, train=True)
        self.val_loader = None
        if config.data.val_split and self.settings.eval_every and accelerator.is_main_process:
            self.val_loader = self._loader(config.data.val_split, train=False)
        self.bar = tqdm(
            total=self.plan.total_steps, initial=self.progress.step, desc="train", unit="step", dynamic_ncols=True,
            disable=not (self.settings.progress_bar and accelerator.is_main_process),
        )  # fmt: skip
        logger.info(
            "training %s-level GRAFT: %d steps, global batch %d (%d processes x %d micro x %d accumulation), "
            "targets %s", config.task, self.plan.total_steps, self.samples_per_step, accelerator.num_processes,
            self.plan.micro_batch, self.settings.grad_accum, self.plan.targets.loader_target,
        )  # fmt: skip
        self.window_start = time.perf_counter()

    def _loader(self, split: str, train: bool) -> torch.utils.data.DataLoader:
        """Training loader (this rank's shards, shuffled, augmented) or validation loader (main process, all)."""
        accelerator, targets = self.accelerator, self.plan.targets
        teacher = accelerator.unwrap_model(self.task).teacher
        preprocess = ClipPhotoPreprocess(teacher.config.vision_config.image_size) if targets.on_the_fly else None
        loader_config = self.config.data.loader_config(
            split=split, train=train, target=targets.loader_target, batch_size=self.plan.micro_batch,
            seed=self.config.seed, rank=accelerator.process_index if train else 0,
            world_size=accelerator.num_processes if train else 1,
            view_size=self.student.config.vision_config.image_size, drop_last=train,
            pin_memory=accelerator.device.type == "cuda",
        )  # fmt: skip
        return build_pairs_dataloader(loader_config, preprocess)

    def train_epoch(self) -> None:
        """The rest of the current epoch (from the saved data position), then move on to the next epoch."""
        progress, total = self.progress, self.plan.total_steps
        batches = self._epoch_batches()
        micro_index = 0
        while progress.step < total and (batch := next(batches, None)) is not None:
            micro_index += 1
            sync = micro_index % self.settings.grad_accum == 0
            self._micro_step(batch, sync)
            if sync:
                self._optimizer_step()
        self.optimizer.zero_grad(set_to_none=True)  # a partial accumulation at the end of an epoch is dropped
        if progress.step < total:
            progress.epoch += 1
            progress.batches_in_epoch = 0

    def _epoch_batches(self) -> Iterator[dict[str, Any]]:
        """This epoch's batches after the ones already seen (exact resume); stops on every rank when one is done."""
        self.loader.dataset.set_epoch(self.progress.epoch)  # type: ignore[attr-defined]
        iterator = iter(self.loader)
        skipped = sum(1 for _ in itertools.islice(iterator, self.progress.batches_in_epoch))
        if skipped:
            logger.info("skipped %d already-seen batches of epoch %d", skipped, self.progress.epoch)
        device = self.accelerator.device
        while True:
            batch = next(iterator, None)
            if self.accelerator.num_processes > 1:
                have = torch.tensor([0 if batch is None else 1], device=device)
                if int(self.accelerator.gather(have).min()) == 0:
                    return
            elif batch is None:
                return
            yield batch_to_device(batch, device)

    def _micro_step(self, batch: dict[str, Any], sync: bool) -> None:
        """Forward and backward of one micro-batch; gradients are synchronised on the last of an accumulation."""
        accelerator, grad_accum = self.accelerator, self.settings.grad_accum
        context = contextlib.nullcontext() if sync else accelerator.no_sync(self.task)
        with context, accelerator.autocast():
            losses, logs = self.task(batch)
            loss = sum(losses.values())
            accelerator.backward(loss / grad_accum)
        self.progress.batches_in_epoch += 1
        step_logs = {"loss": loss.detach(), **{f"loss_{k}": v.detach() for k, v in losses.items()}, **logs}
        reduced = accelerator.reduce(torch.stack([v.float() for v in step_logs.values()]), reduction="mean")
        for key, value in zip(step_logs, reduced.tolist(), strict=True):
            self.window[key] += value / grad_accum

    def _optimizer_step(self) -> None:
        """Clip, step optimizer and schedule; then log, validate and checkpoint on their intervals."""
        settings, progress = self.settings, self.progress
        max_norm = self.config.optim.max_grad_norm
        if max_norm:
            self.window["grad_norm"] += float(self.accelerator.clip_grad_norm_(self.trainable, max_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        progress.step += 1
        progress.samples_seen += self.samples_per_step
        self.window_count += 1
        self.bar.update(1)
        if progress.step % settings.log_every == 0:
            self._log_window()
        if self.config.data.val_split and settings.eval_every and progress.step % settings.eval_every == 0:
            self._validate()
        if settings.save_every and progress.step % settings.save_every == 0:
            self._save_checkpoint()

    def _log_window(self) -> None:
        """Log the mean of each value since the last log line, the LR and the throughput."""
        elapsed = time.perf_counter() - self.window_start
        values = {k: v / self.window_count for k, v in self.window.items()}
        values["lr"] = self.scheduler.get_last_lr()[0]
        values["samples_per_s"] = self.window_count * self.samples_per_step / max(elapsed, 1e-9)
        values["epoch"] = self.progress.epoch
        self.accelerator.log({f"train/{k}": v for k, v in values.items()}, step=self.progress.step)
        if self.accelerator.is_main_process:
            with (self.out / "metrics.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"step": self.progress.step, **values}) + "\n")
        self.bar.set_postfix(
            loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}", sps=f"{values['samples_per_s']:.1f}"
        )
        self.window.clear()
        self.window_count, self.window_start = 0, time.perf_counter()

    def _validate(self) -> None:
        """:func:`evaluate` on the main process (the others wait); logs ``val/*``."""
        if self.val_loader is not None:
            step, device = self.progress.step, self.accelerator.device
            metrics = evaluate(
                self.accelerator.unwrap_model(self.task), self.val_loader, self.settings.eval_batches, device
            )
            logger.info("validation at step %d: %s", step, {k: round(v, 4) for k, v in metrics.items()})
            self.accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=step)
            with (self.out / "val_metrics.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"step": step, **metrics}) + "\n")
        self.accelerator.wait_for_everyone()

    def _save_checkpoint(self) -> None:
        settings = run_settings(self.config, self.accelerator.num_processes)
        save_checkpoint(self.state, self.out / "checkpoints", self.progress, settings, self.settings.keep_checkpoints)

    def finish(self) -> None:
        """The last log line, validation and checkpoint when the run did not end on their intervals."""
        settings, step = self.settings, self.progress.step
        self.bar.close()
        if self.window_count:
            self._log_window()
        if self.config.data.val_split and settings.eval_every and step % settings.eval_every:
            self._validate()
        if settings.save_every and step % settings.save_every:
            self._save_checkpoint()
        _check_replicas(self.accelerator, self.trainable, self.out)

    def export(self) -> Path:
        """Save the student (LoRA merged or not) and its processor to ``<output_dir>/model``; end the trackers."""
        model_dir = self.out / "model"
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            _save_student(self.student, model_dir, self.config.student)
            logger.info("GRAFT model saved to %s (%d steps, %d samples)", model_dir, self.progress.step,
                        self.progress.samples_seen)  # fmt: skip
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
        return model_dir


def _save_student(student: torch.nn.Module, model_dir: Path, options: StudentSection) -> None:
    model = export_student(student, model_dir, merge=options.lora.merge)
    if options.gradient_checkpointing:
        # transformers 5 renamed gradient_checkpointing_* to activation_checkpointing_*.
        disable = getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable
        disable()
    model.save_pretrained(model_dir)
    build_processor(model.config).save_pretrained(model_dir)


# --------------------------------------------------------------------------------------------------- utilities
def _enable_checkpointing(model: torch.nn.Module) -> None:
    # Non-reentrant checkpointing works with DDP and frozen inputs; transformers 5 renamed the method.
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _check_replicas(accelerator: Accelerator, params: list[torch.Tensor], out: Path) -> None:
    """Verify that every process ends with the same weights (DDP invariant); record it in ``replicas.json``.

    Compares a per-tensor (sum, sum of squares) fingerprint in float64, gathered from all processes.
    """
    if accelerator.num_processes == 1:
        return
    with torch.no_grad():
        fingerprint = torch.stack(
            [torch.stack([p.double().sum(), p.double().square().sum()]) for p in params]
        ).flatten()  # (2 * num_tensors,)
    gathered = accelerator.gather(fingerprint[None].to(accelerator.device)).cpu()  # (num_processes, 2 * num_tensors)
    spread = float((gathered - gathered[0]).abs().max())
    scale = float(gathered[0].abs().max().clamp(min=1.0))
    if accelerator.is_main_process:
        record = {"num_processes": accelerator.num_processes, "max_abs_diff": spread, "fingerprints": gathered.tolist()}
        write_json(out / "replicas.json", record)
    if spread > 1e-6 * scale:
        raise RuntimeError(
            f"model replicas diverged across processes (max fingerprint difference {spread:.3g}); this is a bug in "
            "the distributed setup (e.g. a parameter updated outside DDP)"
        )
