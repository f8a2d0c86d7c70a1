"""Launch checks: a multi-process launch that would not train as one run is stopped before anything is written.

Two launches look right and are not:

- ``accelerate launch --cpu --num_processes 2 ...`` starts ONE process (Accelerate's CPU launcher ignores
  ``--num_processes``): the run would silently train alone. Detected from the launcher's command line (the parent
  process) against ``accelerator.num_processes``.
- ``accelerate launch --multi_gpu --num_processes 2 ...`` (or ``torchrun``) on a machine without GPUs while
  ``train.cpu`` is false: each process finds no GPU, so Accelerate sets up no process group and every process
  trains alone, into the same output folder, and exits 0. Detected from the launcher's ``WORLD_SIZE`` against
  ``accelerator.num_processes``.

Both raise :class:`LaunchError` in every process, naming what happened and the launches that work:
``accelerate launch --multi_gpu --num_processes N`` or ``torchrun --standalone --nproc_per_node N`` with
``train.cpu=true`` (processes talk over gloo).
"""

from __future__ import annotations

import logging
import os

from accelerate import Accelerator

from graft_hf.config import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["LaunchError", "check_launch", "launcher_processes"]

_ACCELERATE_COMMANDS = (
    "accelerate",
    "accelerate-launch",
    "accelerate.commands.launch",
    "accelerate.commands.accelerate_cli",
)


def _how(processes: int) -> str:
    return (
        f"to train with {processes} CPU processes, launch `accelerate launch --multi_gpu --num_processes {processes} "
        f"...` or `torchrun --standalone --nproc_per_node {processes} ...` with train.cpu=true (the processes then "
        "train together over gloo, splitting the data)"
    )


class LaunchError(ConfigError):
    """A launch that would not train as one run; the message says what happened and how to launch instead."""


def launcher_processes(cmdline: list[str] | None = None) -> int | None:
    """The process count an ``accelerate launch`` command line asks for, or None (not Accelerate's launcher).

    Args:
        cmdline: The launcher's arguments (default: the parent process's command line).
    """
    if cmdline is None:
        try:
            import psutil  # Accelerate's own dependency

            parent = psutil.Process().parent()
            cmdline = parent.cmdline() if parent is not None else []
        except Exception:  # noqa: BLE001 - no parent to inspect (containers, permissions): no check
            return None
    names = [os.path.basename(part) for part in cmdline]
    start = next((i for i, name in enumerate(names) if name in _ACCELERATE_COMMANDS), None)
    if start is None:
        return None
    args = cmdline[start + 1 :]
    for i, arg in enumerate(args):
        flag, _, value = arg.partition("=")
        if flag in ("--num_processes", "--num-processes"):
            value = value or (args[i + 1] if i + 1 < len(args) else "")
            return int(value) if value.isdigit() else None
        if flag in ("-m", "--module") or (not arg.startswith("-") and arg.endswith(".py")):
            return None  # the training script or module: what follows are its own arguments
    return None


def check_launch(accelerator: Accelerator, cpu: bool) -> None:
    """Raise :class:`LaunchError` when this process was launched as one of several but trains alone.

    Args:
        accelerator: The run's Accelerator (its `num_processes` is what will train together).
        cpu: The run's ``train.cpu``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = os.environ.get("RANK", "0")
    if world > 1 and accelerator.num_processes != world:
        gpus = "no GPU is visible" if accelerator.device.type == "cpu" else f"it runs on {accelerator.device}"
        why = " because train.cpu is false and " + gpus if not cpu else ""
        raise LaunchError(
            "train.cpu",
            f"this is process {rank} of {world} launched together (WORLD_SIZE={world}), but Accelerate set up no "
            f"process group{why}: the {world} processes would each train the whole run alone into the same "
            f"output folder; {_how(world)}",
        )
    requested = launcher_processes()
    if requested is not None and requested > accelerator.num_processes:
        raise LaunchError(
            "train.cpu",
            f"`accelerate launch` was asked for {requested} processes but started {accelerator.num_processes} "
            f"(with --cpu, Accelerate's launcher runs a single process); {_how(requested)}",
        )
    if accelerator.num_processes > 1:
        logger.info(
            "process %d of %d (%s backend) on %s",
            accelerator.process_index, accelerator.num_processes, accelerator.state.backend, accelerator.device,
        )  # fmt: skip
