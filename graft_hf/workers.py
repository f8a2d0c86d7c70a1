"""Worker processes that exit when the process that started them dies.

A parent killed outright (``SIGKILL``, as the out-of-memory killer does) runs no cleanup, so the workers of its
process pool or DataLoader would live on, each holding its memory, until someone kills them by hand. Every place
graft-hf starts worker processes (the pair build's process pool, the training loader's DataLoader workers) runs
:func:`exit_with_parent` first thing in each worker:

* Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker the moment its parent dies (the check
  against the parent's pid closes the race of a parent dying before the call);
* other POSIX systems: a daemon thread checks every second whether the worker was re-parented (its parent pid
  changed), and exits it;
* Windows: a daemon thread waits on the parent process's handle (``multiprocessing.parent_process().sentinel``)
  and exits the worker when it is signalled.

``graft pairs embed`` and ``graft map`` run in one process and start no workers.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time

__all__ = ["exit_with_parent"]

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_POLL_SECONDS = 1.0


def exit_with_parent(*_: object, parent_pid: int | None = None, portable: bool = False) -> None:
    """Make this (worker) process exit as soon as its parent process dies.

    Pass it as a process pool's ``initializer`` or a DataLoader's ``worker_init_fn`` (positional arguments, such
    as the DataLoader's worker id, are ignored).

    Args:
        parent_pid: The parent's pid (default: ``multiprocessing.parent_process()``'s, else ``os.getppid()``).
        portable: Use the polling fallback even on Linux (for tests of the fallback).
    """
    parent = multiprocessing.parent_process()
    if parent_pid is None:
        parent_pid = parent.pid if parent is not None and parent.pid else os.getppid()
    if sys.platform.startswith("linux") and not portable and _set_parent_death_signal():
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)
        return
    if os.name == "nt" and parent is not None:
        target, args = _wait_for_sentinel, (parent.sentinel,)
    else:
        target, args = _poll_parent, (parent_pid,)
    threading.Thread(target=target, args=args, name="exit-with-parent", daemon=True).start()


def _set_parent_death_signal() -> bool:
    """Arm ``PR_SET_PDEATHSIG`` with SIGKILL; ``False`` when libc's ``prctl`` is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError) as error:
        logger.debug("prctl(PR_SET_PDEATHSIG) unavailable (%s); watching the parent instead", error)
        return False


def _poll_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_POLL_SECONDS)
    os._exit(1)


def _wait_for_sentinel(sentinel: int) -> None:
    from multiprocessing.connection import wait

    wait([sentinel])
    os._exit(1)
