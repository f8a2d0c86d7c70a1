"""Atomic training checkpoints and the position in the data stream needed to resume exactly.

Layout under ``<output_dir>/checkpoints``::

    step-00000100/          # accelerator.save_state: model, optimizer, scaler, RNG of every process,
                            # registered objects (the LR scheduler) + progress.json (step, epoch, data position)
    step-00000200/
    latest                  # text file naming the newest complete checkpoint

A checkpoint is written into a hidden ``.tmp-step-*`` folder, then renamed in one ``os.replace``; ``latest`` is
rewritten (:func:`graft_hf.io.atomic_write`, durable) only after the rename. A kill at any point leaves either the previous
``latest`` or the new one, never a half-written directory behind it.

Data position. The streaming loader's order is a pure function of ``(seed, epoch)`` (shard order, shuffle buffer,
per-tile augmentation from ``(seed, epoch, tile_id)``). A checkpoint records the epoch and the number of
micro-batches consumed in it; resuming re-opens that epoch and skips that many batches (they are decoded and
discarded: exact, at the price of re-reading them once; every rank skips the same count since ranks step in
lockstep). ``datasets``' ``IterableDataset.state_dict()`` is not used: the stream runs inside DataLoader workers,
whose per-worker copies a plain ``torch`` DataLoader does not expose (torchdata's ``StatefulDataLoader`` would);
skipping needs no extra dependency and is verified by the resume-after-SIGKILL test.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from graft_hf.io import atomic_write, fsync_dir, write_json

if TYPE_CHECKING:
    from accelerate import Accelerator

logger = logging.getLogger(__name__)

__all__ = [
    "NoCheckpointError",
    "TrainProgress",
    "find_latest_checkpoint",
    "load_checkpoint",
    "resume_checkpoint",
    "save_checkpoint",
]

_PROGRESS = "progress.json"
_LATEST = "latest"


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


def save_checkpoint(accelerator: Accelerator, root: str | os.PathLike, progress: TrainProgress, keep: int = 2) -> Path:
    """Save the full training state atomically (collective: call on every process).

    Args:
        accelerator: The run's ``Accelerator`` (model, optimizer, registered scheduler).
        root: Checkpoints folder.
        progress: The position to resume from.
        keep: Most recent checkpoints kept.

    Returns:
        The checkpoint directory.
    """
    root = Path(root)
    name = f"step-{progress.step:08d}"
    final, tmp = root / name, root / f".tmp-{name}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(tmp / _PROGRESS, asdict(progress), durable=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(root)
        atomic_write(root / _LATEST, name + "\n", durable=True)
        complete = sorted(p for p in root.glob("step-*") if (p / _PROGRESS).is_file())
        for old in complete[: max(0, len(complete) - keep)]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        logger.info("checkpoint saved: %s", final)
    accelerator.wait_for_everyone()
    return final


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


def load_checkpoint(accelerator: Accelerator, path: str | os.PathLike) -> TrainProgress:
    """Restore model, optimizer, scheduler and RNG states; return the saved progress."""
    path = Path(path)
    progress_file = path / _PROGRESS
    if not progress_file.is_file():
        raise FileNotFoundError(f"{path} is not a complete GRAFT checkpoint (no {_PROGRESS}); pick another one")
    accelerator.load_state(str(path))
    progress = TrainProgress(**json.loads(progress_file.read_text(encoding="utf-8")))
    logger.info(
        "resumed from %s at step %d (epoch %d, batch %d)",
        path,
        progress.step,
        progress.epoch,
        progress.batches_in_epoch,
    )
    return progress
