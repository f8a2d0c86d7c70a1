"""Atomic training checkpoints in code-free formats, the position in the data stream, and the resume check.

Layout under ``<output_dir>/checkpoints``::

    step-00000100/          # model.safetensors, optimizer.safetensors + optimizer.json, scheduler.json,
                            # scaler.json (fp16), rng_state_<rank>.json per process (see graft_hf.training.state),
                            # run_settings.json (what a resume must match) + progress.json (step, epoch, data position)
    step-00000200/
    latest                  # text file naming the newest complete checkpoint

Nothing in a checkpoint is a pickle, so resuming from a folder downloaded from anywhere runs no code from it;
every file is checked as it is read and a damaged one stops the resume with an error naming it
(:class:`graft_hf.training.state.CheckpointError`). Folders written by Accelerate's ``save_state`` (earlier
graft-hf versions: ``*.pkl``, ``optimizer.bin``) are refused for that reason.

A checkpoint is written into a hidden ``.tmp-step-*`` folder, then renamed in one ``os.replace``; ``latest`` is
rewritten (:func:`graft_hf.io.atomic_write`, durable) only after the rename. Old checkpoints are renamed to a hidden
``.trash-step-*`` before they are deleted. A kill at any point leaves either the previous ``latest`` or the new one,
never a half-written or half-deleted directory behind it (the next save removes hidden leftovers).

Resume check. ``run_settings.json`` holds the run's config and process count. A resume whose settings differ in
anything but :data:`SAFE_TO_CHANGE` (run length, logging, evaluation and checkpoint cadence, the output folder) is
refused before any compute, naming the changed settings (:func:`graft_hf.resume.check_resume`); the decision is
appended to ``<output_dir>/resume_log.jsonl``.

Data position. The streaming loader's order is a pure function of ``(seed, epoch)`` (shard order, shuffle buffer,
per-tile augmentation from ``(seed, epoch, tile_id)``). A checkpoint records the epoch and the number of
micro-batches consumed in it; resuming re-opens that epoch and skips that many batches (they are decoded and
discarded: exact, at the price of re-reading them once; every rank skips the same count since ranks step in
lockstep). ``datasets``' ``IterableDataset.state_dict()`` is not used: the stream runs inside DataLoader workers,
whose per-worker copies a plain ``torch`` DataLoader does not expose (torchdata's ``StatefulDataLoader`` would);
skipping needs no extra dependency and is verified by the resume-after-SIGKILL test.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from graft_hf.io import atomic_write, fsync_dir, write_json
from graft_hf.resume import SettingChange, check_resume
from graft_hf.training.state import (
    MODEL_FILE,
    CheckpointError,
    load_json_file,
    load_model_state,
    load_optimizer_state,
    load_rng_state,
    load_scaler_state,
    load_scheduler_state,
    save_model_state,
    save_optimizer_state,
    save_rng_state,
    save_scaler_state,
    save_scheduler_state,
)

if TYPE_CHECKING:
    from accelerate import Accelerator

logger = logging.getLogger(__name__)

__all__ = [
    "SAFE_TO_CHANGE",
    "CheckpointError",
    "NoCheckpointError",
    "TrainProgress",
    "TrainingState",
    "check_resume_settings",
    "find_latest_checkpoint",
    "load_checkpoint",
    "resume_checkpoint",
    "run_settings",
    "save_checkpoint",
]

_PROGRESS = "progress.json"
_SETTINGS = "run_settings.json"
_LATEST = "latest"
RESUME_LOG = "resume_log.jsonl"

#: Settings a resumed run may change: its length (the LR schedule is stretched to the new length from the step
#: reached), logging, validation and checkpoint cadence, the device switch, and where the run folder lies. Anything
#: else (data, model, teacher, loss, optimizer, batch size, seed, precision, processes) defines the run.
SAFE_TO_CHANGE = (
    "output_dir",
    "data.val_split",
    "data.num_tiles",
    "train.epochs",
    "train.max_steps",
    "train.save_every",
    "train.keep_checkpoints",
    "train.eval_every",
    "train.eval_batches",
    "train.log_every",
    "train.tracker",
    "train.progress_bar",
    "train.cpu",
)


@dataclass
class TrainProgress:
    """Where a run is.

    Attributes:
        step: Optimizer steps done.
        epoch: Current epoch (0-based).
        batches_in_epoch: Micro-batches consumed in the current epoch (per process).
        samples_seen: Training samples seen over all processes.
    """

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    samples_seen: int = 0


class NoCheckpointError(FileNotFoundError):
    """Resuming was asked for, but the run has no complete checkpoint.

    Attributes:
        root: The checkpoints folder that was searched.
    """

    def __init__(self, root: str | os.PathLike, message: str | None = None) -> None:
        self.root = Path(root)
        super().__init__(message or f"resume=True: no checkpoint in {self.root}; pass resume=False to start fresh")


@dataclass
class TrainingState:
    """The live objects a checkpoint saves and restores.

    Attributes:
        accelerator: The run's ``Accelerator`` (process rank, device, fp16 gradient scaler).
        model: The trained module as prepared by Accelerate (DDP-wrapped with several processes).
        optimizer: Its optimizer (prepared).
        scheduler: The LR schedule stepping that optimizer.
    """

    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    @property
    def module(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)


def save_checkpoint(
    state: TrainingState,
    root: str | os.PathLike,
    progress: TrainProgress,
    settings: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Save the full training state atomically (collective: call on every process).

    Args:
        state: The objects whose state is saved.
        root: Checkpoints folder.
        progress: The position to resume from.
        settings: What a resume must match (:func:`run_settings`).
        keep: Most recent checkpoints kept.

    Returns:
        The checkpoint directory.
    """
    accelerator = state.accelerator
    root = Path(root)
    name = f"step-{progress.step:08d}"
    final, tmp = root / name, root / f".tmp-{name}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for leftover in [tmp, *root.glob(".trash-step-*")]:  # of a save or a deletion cut by a kill
            shutil.rmtree(leftover, ignore_errors=True)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    save_rng_state(tmp, accelerator.process_index, accelerator.device)
    if accelerator.is_main_process:
        save_model_state(state.module, tmp)
        save_optimizer_state(state.optimizer, tmp)
        save_scheduler_state(state.scheduler, tmp)
        save_scaler_state(accelerator.scaler, tmp)
        write_json(tmp / _SETTINGS, settings, durable=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(tmp / _PROGRESS, asdict(progress), durable=True)
        if final.exists():
            _delete(final)
        os.replace(tmp, final)
        fsync_dir(root)
        atomic_write(root / _LATEST, name + "\n", durable=True)
        complete = sorted(p for p in root.glob("step-*") if (p / _PROGRESS).is_file())
        for old in complete[: max(0, len(complete) - keep)]:
            if old != final:
                _delete(old)
        logger.info("checkpoint saved: %s", final)
    accelerator.wait_for_everyone()
    return final


def _delete(checkpoint: Path) -> None:
    """Remove a checkpoint: renamed out of the ``step-*`` names first, so a kill never leaves half of one behind."""
    trash = checkpoint.with_name(f".trash-{checkpoint.name}")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(checkpoint, trash)
    shutil.rmtree(trash, ignore_errors=True)


def find_latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The checkpoint named by ``latest`` (or the newest complete one), ``None`` when there is none."""
    root = Path(root)
    pointer = root / _LATEST
    if pointer.is_file():
        candidate = root / pointer.read_text(encoding="utf-8").strip()
        if (candidate / _PROGRESS).is_file():
            return candidate
        logger.warning("%s names %s, which is incomplete; falling back to the newest complete one", pointer, candidate)
    complete = sorted(p for p in root.glob("step-*") if (p / _PROGRESS).is_file())
    return complete[-1] if complete else None


def resume_checkpoint(resume: bool | str | os.PathLike, root: str | os.PathLike) -> Path | None:
    """The checkpoint a run resumes from: ``None`` (``resume=False``), the latest in ``root`` (``True``) or a path.

    Raises:
        NoCheckpointError: ``resume=True`` and ``root`` holds no complete checkpoint.
    """
    if not resume:
        return None
    if resume is True:
        latest = find_latest_checkpoint(root)
        if latest is None:
            raise NoCheckpointError(root)
        return latest
    return Path(resume)


def run_settings(config: Any, num_processes: int) -> dict[str, Any]:
    """What defines a run, as a checkpoint records it: the config (a ``TrainConfig``) and the process count."""
    return {**config.to_dict(), "num_processes": num_processes}


def check_resume_settings(
    path: str | os.PathLike, settings: dict[str, Any], log: str | os.PathLike | None = None
) -> list[SettingChange]:
    """Refuse to resume checkpoint ``path`` with run-defining settings other than its own.

    Args:
        path: The checkpoint.
        settings: This run's :func:`run_settings`.
        log: Resume log the decision is appended to (``None``: the logger only; pass it on one process).

    Returns:
        The accepted changes (all in :data:`SAFE_TO_CHANGE`).

    Raises:
        CheckpointError: ``path`` is not a complete checkpoint of this format, or its settings file is damaged.
        graft_hf.resume.ResumeRefusedError: (key ``resume``) a run-defining setting changed, naming each one.
    """
    path = Path(path)
    _check_format(path)
    saved = load_json_file(path / _SETTINGS)
    if not isinstance(saved, dict):
        raise CheckpointError(path / _SETTINGS, f"expected a JSON object of settings, got {type(saved).__name__}")
    progress = _read_progress(path)
    return check_resume(
        saved,
        settings,
        what=f"from checkpoint {path}",
        fix="resume with the settings it was made with (a resume may change only the run's length and its logging, "
        "validation and checkpoint cadence: graft_hf.training.checkpoint.SAFE_TO_CHANGE), or start a new run "
        "in a new output_dir without resume",
        safe=SAFE_TO_CHANGE,
        log=log,
        details={"checkpoint": str(path), "step": progress.step},
    )


def _check_format(path: Path) -> None:
    """A complete checkpoint of this format; pickled (Accelerate) state is refused, never unpickled."""
    if not (path / _PROGRESS).is_file():
        raise FileNotFoundError(f"{path} is not a complete GRAFT checkpoint (no {_PROGRESS}); pick another one")
    if not (path / MODEL_FILE).is_file():
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in (".pkl", ".bin", ".pt", ".pth"))
        reason = (
            f"holds pickled training state ({', '.join(pickles)}) from Accelerate's save_state (graft-hf before "
            "code-free checkpoints); pickles can run code, so it is not loaded"
            if pickles
            else "missing"
        )
        raise CheckpointError(path / MODEL_FILE, reason)


def _read_progress(path: Path) -> TrainProgress:
    values = load_json_file(path / _PROGRESS)
    names = [f.name for f in fields(TrainProgress)]
    if not isinstance(values, dict) or sorted(values) != sorted(names):
        raise CheckpointError(path / _PROGRESS, f"expected the keys {names}")
    if not all(isinstance(values[n], int) and not isinstance(values[n], bool) and values[n] >= 0 for n in names):
        raise CheckpointError(path / _PROGRESS, f"expected non-negative whole numbers, got {values}")
    return TrainProgress(**values)


def load_checkpoint(state: TrainingState, path: str | os.PathLike) -> TrainProgress:
    """Restore model, optimizer, schedule, gradient scaler and RNG states; return the saved progress.

    Every file is read as data only (safetensors, JSON) and checked against the live objects.

    Raises:
        CheckpointError: A file is missing, damaged or does not fit this run; the message names it.
    """
    path = Path(path)
    _check_format(path)
    progress = _read_progress(path)
    accelerator = state.accelerator
    load_model_state(state.module, path)
    load_optimizer_state(state.optimizer, path)
    load_scheduler_state(state.scheduler, path)
    load_scaler_state(accelerator.scaler, path)
    load_rng_state(path, accelerator.process_index, accelerator.device)
    logger.info(
        "resumed from %s at step %d (epoch %d, batch %d)",
        path,
        progress.step,
        progress.epoch,
        progress.batches_in_epoch,
    )
    return progress
