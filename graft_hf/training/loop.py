"""The Accelerate training loop: ``train(config)`` from checks to a ``save_pretrained`` GRAFT directory.

Read top to bottom: checks (config, data, teacher) before any compute -> student, task, optimizer, schedule ->
optional resume -> epochs of micro-batches with gradient accumulation -> logging, validation, checkpoints ->
export. The loop knows nothing about GRAFT's losses: the task returns ``(losses, logs)``.

Several processes: ``accelerate launch -m graft_hf_cli train CONFIG`` or ``torchrun ... -m graft_hf_cli train``.
Ranks read disjoint shards; an epoch ends on every rank as soon as one rank runs out of batches, so collective
ops never wait on a finished rank.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from graft_hf.training.checkpoint import TrainProgress, find_latest_checkpoint, load_checkpoint, save_checkpoint
from graft_hf.training.config import TrainConfig
from graft_hf.training.data import PairsInfo, build_loader, inspect_pairs
from graft_hf.training.lora import apply_lora, export_student
from graft_hf.training.task import (
    ClipPhotoPreprocess,
    GraftTrainingTask,
    build_student,
    freeze_unused_heads,
    load_teacher_clip,
)

logger = logging.getLogger(__name__)

__all__ = ["TargetPlan", "build_optimization", "build_task", "evaluate", "plan_targets", "train", "warmup_cosine"]


class TargetPlan:
    """Which loader target feeds the run, and its dimension (from the shards or the teacher)."""

    def __init__(self, loader_target: str, dim: int | None) -> None:
        self.loader_target = loader_target
        self.dim = dim

    @property
    def on_the_fly(self) -> bool:
        return self.loader_target == "pixels"


def plan_targets(config: TrainConfig, info: PairsInfo) -> TargetPlan:
    """Decide between precomputed and on-the-fly targets and check the shards can supply them."""
    target, mode = config.loss.target, config.teacher.targets
    if target == "text" or target == "image+text":
        if info.text_embedding_dim is None:
            raise ValueError(
                f"loss.target={target!r} needs precomputed photo text embeddings (`text_embedding`) in "
                f"{config.data.path!r}, but the first tiles have none; run `graft pairs embed --text` or set "
                "loss.target=image"
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
                f"teacher.targets=precomputed but the shards at {config.data.path!r} carry no photo embeddings; "
                "run `graft pairs embed` or set teacher.targets=on_the_fly"
            )
        return TargetPlan("embedding", info.embedding_dim)
    if not info.has_photo_images:
        raise ValueError(
            f"on-the-fly targets need the photos' image bytes, but the shards at {config.data.path!r} carry neither "
            "photo images nor embeddings; rebuild the pairs with photo images or precomputed embeddings"
        )
    if not config.teacher.name_or_path:
        raise ValueError("on-the-fly targets need a teacher: set teacher.name_or_path to a local CLIP directory")
    return TargetPlan("pixels", None)


def warmup_cosine(total_steps: int, warmup_steps: int, min_lr_ratio: float = 0.0):
    """LR multiplier: linear warm-up from 0 to 1 over ``warmup_steps``, then cosine down to ``min_lr_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # As open_clip: no decay on 1-d parameters (biases, norm gains, class embedding) and the logit scale.
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "logit_scale" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _recall(scores: torch.Tensor, positive: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Recall@k of queries (rows of ``scores``) whose positive gallery index is ``positive``."""
    rank = (scores > scores.gather(1, positive[:, None])).sum(dim=1)  # (num_queries,) 0 = top-1
    return {f"recall@{k}": float((rank < k).float().mean()) for k in ks}


@torch.no_grad()
def evaluate(task: GraftTrainingTask, loader: Any, max_batches: int, device: torch.device) -> dict[str, float]:
    """Validation on a held-out split: contrastive loss and retrieval recall@k within the split.

    Image task: each tile's image embedding retrieves its tile among the mean ground embeddings of all tiles.
    Pixel task: the patch under each in-view photo retrieves that photo among all photos.
    """
    from graft_hf.losses import GraftImageLoss, GraftPixelLoss

    student = task.student
    was_training = student.training
    student.eval()
    local_loss = (GraftImageLoss if task.task == "image" else GraftPixelLoss)(temperature=task.loss.temperature)
    losses: list[float] = []
    queries: list[Any] = []  # image task: (batch, dim) tensors; pixel task: (embeds, positive index) pairs
    gallery: list[torch.Tensor] = []
    for index, batch in enumerate(loader):
        if index >= max_batches:
            break
        batch = _to_device(batch, device)
        ground = task.targets(batch)
        out = student(pixel_values=batch["pixel_values"], output_patch_embeds=task.task == "pixel")
        mask = batch["ground_mask"]
        ground_n = torch.nn.functional.normalize(ground.float(), dim=-1)
        if task.task == "image":
            losses.append(float(local_loss(out.image_embeds, ground, mask)))
            tile_mean = (ground_n * mask[..., None]).sum(1)  # (batch, dim)
            queries.append(torch.nn.functional.normalize(out.image_embeds.float(), dim=-1))
            gallery.append(torch.nn.functional.normalize(tile_mean, dim=-1))
        else:
            from graft_hf.losses import patch_embeds_at_pixels

            coords, in_view = batch["ground_pixel_coords"], batch["ground_in_view"]
            size = tuple(batch["pixel_values"].shape[-2:])
            if (mask & in_view).any():
                losses.append(float(local_loss(out.patch_embeds, ground, mask, coords, in_view, image_size=size)))
            picked = patch_embeds_at_pixels(out.patch_embeds, coords, size)
            offset = sum(len(g) for g in gallery)
            gallery_idx = torch.cumsum(mask.flatten().long(), 0).view_as(mask) - 1 + offset
            queries.append((picked[mask & in_view].float(), gallery_idx[mask & in_view]))
            gallery.append(ground_n[mask])
    student.train(was_training)
    if not gallery:
        return {}
    bank = torch.cat(gallery)
    if task.task == "image":
        query = torch.cat(queries)
        positive = torch.arange(len(query), device=query.device)
    else:
        query = torch.nn.functional.normalize(torch.cat([q for q, _ in queries]), dim=-1)
        positive = torch.cat([p for _, p in queries])
    metrics = _recall(query @ bank.T, positive) if len(query) else {}
    metrics["loss"] = sum(losses) / max(len(losses), 1)
    metrics["num_queries"] = float(len(query))
    return metrics


def build_task(
    config: TrainConfig, plan: TargetPlan, clip: Any | None, rank: int = 0, world_size: int = 1
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


def build_optimization(task: torch.nn.Module, config: TrainConfig, total_steps: int):
    """AdamW (decoupled weight decay on matrices only) and the warm-up + cosine ``LambdaLR``."""
    optimizer = torch.optim.AdamW(
        _param_groups(task, config.optim.weight_decay),
        lr=config.optim.lr,
        betas=tuple(config.optim.betas),  # type: ignore[arg-type]
        eps=config.optim.eps,
    )
    warmup = config.optim.warmup_steps
    warmup = warmup if warmup is not None else int(config.optim.warmup_ratio * total_steps)
    factor = warmup_cosine(total_steps, max(warmup, 0), config.optim.min_lr_ratio)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _steps_per_epoch(config: TrainConfig, info: PairsInfo, micro: int, world: int) -> int | None:
    rows = config.data.num_tiles or info.num_rows
    if rows is None:
        return None
    return max(1, rows // world // micro // config.train.grad_accum)


def train(config: TrainConfig, resume: bool | str | os.PathLike = False) -> Path:
    """Train a GRAFT model; returns the final ``save_pretrained`` directory (``<output_dir>/model``).

    Args:
        config: The run configuration.
        resume: ``True`` resumes from the latest checkpoint in ``<output_dir>/checkpoints`` (fails if none),
            a path resumes from that checkpoint, ``False`` starts fresh.
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from tqdm.auto import tqdm

    from graft_hf import build_processor

    out = Path(config.output_dir)
    run = config.train
    tracker = None if run.tracker in ("", "none", None) else run.tracker
    _reset_accelerator_state()
    accelerator = Accelerator(
        mixed_precision=run.mixed_precision,
        log_with=tracker,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
        cpu=run.cpu,
    )
    world, rank = accelerator.num_processes, accelerator.process_index

    # ------------------------------------------------------------------ checks before any compute
    config.validate(world)
    micro = config.micro_batch_size(world)
    info = inspect_pairs(config.data, config.data.split)
    if config.data.val_split:
        inspect_pairs(config.data, config.data.val_split)
    plan = plan_targets(config, info)
    steps_per_epoch = _steps_per_epoch(config, info, micro, world)
    if run.max_steps is None and steps_per_epoch is None:
        raise ValueError(
            f"cannot count the tiles of {config.data.path!r} (remote or non-parquet shards): set train.max_steps, "
            "or data.num_tiles to the number of training tiles"
        )
    total_steps = run.max_steps or run.epochs * steps_per_epoch  # type: ignore[operator]
    checkpoint_root = out / "checkpoints"
    resume_from: Path | None = None
    if resume:
        resume_from = Path(resume) if not isinstance(resume, bool) else find_latest_checkpoint(checkpoint_root)
        if resume_from is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {checkpoint_root}; drop --resume to start fresh")
    needs_clip = config.student.init == "from_clip" or plan.on_the_fly
    clip = load_teacher_clip(config.teacher.name_or_path) if needs_clip else None  # type: ignore[arg-type]

    # ------------------------------------------------------------------ student, teacher, task, optimisation
    set_seed(config.seed)
    task = build_task(config, plan, clip, rank=rank, world_size=world).to_device(accelerator.device)
    view_size: int = task.student.config.vision_config.image_size  # type: ignore[union-attr,assignment]
    if plan.on_the_fly and accelerator.device.type == "cpu" and config.teacher.dtype == "float16":
        logger.warning("teacher.dtype=float16 on the CPU is very slow; pass teacher.dtype=float32 for CPU runs")
    del clip
    optimizer, scheduler = build_optimization(task, config, total_steps)
    task, optimizer = accelerator.prepare(task, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    trainable = [p for p in task.parameters() if p.requires_grad]

    progress = TrainProgress()
    if resume_from is not None:
        progress = load_checkpoint(accelerator, resume_from)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process:
        import yaml

        (out / "train_config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    if tracker:
        flat = {f"{s}.{k}": v for s, d in config.to_dict().items() if isinstance(d, dict) for k, v in d.items()}
        hparams = {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in flat.items()}
        accelerator.init_trackers("graft", config={**hparams, "task": config.task})

    teacher_preprocess = None
    if plan.on_the_fly:
        teacher_preprocess = ClipPhotoPreprocess(accelerator.unwrap_model(task).teacher.config.vision_config.image_size)
    loader_kwargs: dict[str, Any] = {
        "target": plan.loader_target,
        "view_size": view_size,
        "teacher_preprocess": teacher_preprocess,
    }
    loader_kwargs["image_dim"] = plan.dim
    loader = build_loader(
        config.data, split=config.data.split, batch_size=micro, train=True, seed=config.seed, rank=rank,
        world_size=world, **loader_kwargs,
    )  # fmt: skip
    val_loader = None
    if config.data.val_split and run.eval_every and accelerator.is_main_process:
        val_loader = build_loader(
            config.data, split=config.data.val_split, batch_size=micro, train=False, seed=config.seed, rank=0,
            world_size=1, **loader_kwargs,
        )  # fmt: skip

    metrics_file = out / "metrics.jsonl"
    max_epochs = run.epochs if run.max_steps is None else 1 << 30
    samples_per_step = micro * world * run.grad_accum
    bar = tqdm(
        total=total_steps, initial=progress.step, disable=not (run.progress_bar and accelerator.is_main_process),
        desc="train", unit="step", dynamic_ncols=True,
    )  # fmt: skip
    logger.info(
        "training %s-level GRAFT: %d steps, global batch %d (%d processes x %d micro x %d accumulation), "
        "targets %s", config.task, total_steps, samples_per_step, world, micro, run.grad_accum, plan.loader_target,
    )  # fmt: skip
    window: dict[str, float] = defaultdict(float)
    window_count, window_start = 0, time.perf_counter()
    device = accelerator.device

    def log_window() -> None:
        nonlocal window_count, window_start
        elapsed = time.perf_counter() - window_start
        values = {k: v / window_count for k, v in window.items()}
        values["lr"] = scheduler.get_last_lr()[0]
        values["samples_per_s"] = window_count * samples_per_step / max(elapsed, 1e-9)
        values["epoch"] = progress.epoch
        accelerator.log({f"train/{k}": v for k, v in values.items()}, step=progress.step)
        if accelerator.is_main_process:
            with metrics_file.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"step": progress.step, **values}) + "\n")
        bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}", sps=f"{values['samples_per_s']:.1f}")
        window.clear()
        window_count, window_start = 0, time.perf_counter()

    while progress.step < total_steps and progress.epoch < max_epochs:
        loader.dataset.set_epoch(progress.epoch)  # type: ignore[attr-defined]
        iterator = iter(loader)
        skipped = 0
        for _ in range(progress.batches_in_epoch):  # exact data position on resume
            if next(iterator, None) is None:
                break
            skipped += 1
        if skipped:
            logger.info("skipped %d already-seen batches of epoch %d", skipped, progress.epoch)
        micro_index = 0
        while progress.step < total_steps:
            batch = next(iterator, None)
            if world > 1:
                have = torch.tensor([0 if batch is None else 1], device=device)
                if int(accelerator.gather(have).min()) == 0:
                    break
            elif batch is None:
                break
            assert batch is not None
            batch = _to_device(batch, device)
            sync = (micro_index + 1) % run.grad_accum == 0
            context = accelerator.no_sync(task) if not sync else contextlib.nullcontext()
            with context, accelerator.autocast():
                losses, logs = task(batch)
                loss = sum(losses.values())
                accelerator.backward(loss / run.grad_accum)
            micro_index += 1
            progress.batches_in_epoch += 1
            step_logs = {"loss": loss.detach(), **{f"loss_{k}": v.detach() for k, v in losses.items()}, **logs}
            reduced = accelerator.reduce(torch.stack([v.float() for v in step_logs.values()]), reduction="mean")
            for key, value in zip(step_logs, reduced.tolist(), strict=True):
                window[key] += value / run.grad_accum
            if not sync:
                continue
            if config.optim.max_grad_norm:
                grad_norm = accelerator.clip_grad_norm_(trainable, config.optim.max_grad_norm)
                window["grad_norm"] += float(grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            progress.step += 1
            progress.samples_seen += samples_per_step
            window_count += 1
            bar.update(1)
            if progress.step % run.log_every == 0:
                log_window()
            if val_loader is not None and run.eval_every and progress.step % run.eval_every == 0:
                _validate(accelerator, task, val_loader, run.eval_batches, progress.step)
            elif run.eval_every and config.data.val_split and progress.step % run.eval_every == 0:
                accelerator.wait_for_everyone()
            if run.save_every and progress.step % run.save_every == 0:
                save_checkpoint(accelerator, checkpoint_root, progress, run.keep_checkpoints)
        optimizer.zero_grad(set_to_none=True)  # a partial accumulation at the end of an epoch is dropped
        if progress.step >= total_steps:
            break
        progress.epoch += 1
        progress.batches_in_epoch = 0
    bar.close()
    if window_count:
        log_window()
    final_eval = bool(config.data.val_split and run.eval_every and progress.step % run.eval_every)
    if final_eval and val_loader is not None:
        _validate(accelerator, task, val_loader, run.eval_batches, progress.step)
    elif final_eval:
        accelerator.wait_for_everyone()
    if run.save_every and progress.step % run.save_every != 0:
        save_checkpoint(accelerator, checkpoint_root, progress, run.keep_checkpoints)

    _check_replicas(accelerator, trainable, out)
    model_dir = out / "model"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        student = export_student(accelerator.unwrap_model(task).student, model_dir, merge=config.student.lora.merge)
        if config.student.gradient_checkpointing:
            disable = (
                getattr(student, "activation_checkpointing_disable", None) or student.gradient_checkpointing_disable
            )
            disable()
        student.save_pretrained(model_dir)
        build_processor(student.config).save_pretrained(model_dir)
        logger.info("GRAFT model saved to %s (%d steps, %d samples)", model_dir, progress.step, progress.samples_seen)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return model_dir


def _validate(accelerator: Any, task: Any, val_loader: Any, max_batches: int, step: int) -> None:
    """Run :func:`evaluate` on the main process (the others wait) and log ``val/*``."""
    metrics = evaluate(accelerator.unwrap_model(task), val_loader, max_batches, accelerator.device)
    logger.info("validation at step %d: %s", step, {k: round(v, 4) for k, v in metrics.items()})
    accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=step)
    with (Path(accelerator.project_dir) / "val_metrics.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"step": step, **metrics}) + "\n")
    accelerator.wait_for_everyone()


def _reset_accelerator_state() -> None:
    """Let ``train`` run several times in one process (tests, notebooks) with different precisions.

    Accelerate keeps the mixed-precision setting in a process-wide singleton and refuses to change it; the
    process group (``PartialState``) is kept. This uses Accelerate's own test-suite reset.
    """
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def _enable_checkpointing(model: torch.nn.Module) -> None:
    # Non-reentrant checkpointing works with DDP and frozen inputs; transformers 5 renamed the method.
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _check_replicas(accelerator: Any, params: list[torch.Tensor], out: Path) -> None:
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
        (out / "replicas.json").write_text(json.dumps(record), encoding="utf-8")
    if spread > 1e-6 * scale:
        raise RuntimeError(
            f"model replicas diverged across processes (max fingerprint difference {spread:.3g}); this is a bug in "
            "the distributed setup (e.g. a parameter updated outside DDP)"
        )
