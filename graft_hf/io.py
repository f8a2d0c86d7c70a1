"""Atomic file writes: a reader (or a resumed run) never sees half a file.

Every file graft-hf writes that a later step or a resumed run reads (shards, manifests, reports, cards, score
rasters, checkpoints' bookkeeping) goes through :func:`atomic_write`: the bytes land in a hidden temporary file
beside the target, named with the host, process and thread (jobs on several machines may share an output folder,
and threads of one process may write the same file), and replace the target in one ``os.replace``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_write", "fsync_dir", "write_json", "write_report"]


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = False) -> Iterator[Path]:
    """A temporary path to write to; on success it replaces ``path`` atomically, on error it is removed.

    For writers that want a path rather than bytes (``pq.write_table``, ``rasterio.open(..., "w")``,
    ``Image.save``): ``with atomic_path(out) as tmp: image.save(tmp, format="PNG")``. The temporary name keeps
    the target's suffix hidden behind a prefix, so pass an explicit format to writers that guess it from the name.

    Args:
        path: The final file.
        durable: ``fsync`` the file and its folder (checkpoints: survive a power loss, not only a kill).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write(path: str | os.PathLike, data: bytes | str, *, durable: bool = False) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; returns the path.

    Args:
        path: The final file (its folder is created).
        data: Bytes, or text written as UTF-8.
        durable: ``fsync`` the file and its folder before returning.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def write_json(path: str | os.PathLike, value: Any, *, durable: bool = False) -> Path:
    """Write ``value`` as indented JSON (non-JSON values through ``str``), atomically."""
    return atomic_write(path, json.dumps(value, indent=2, default=str) + "\n", durable=durable)


def write_report(outdir: str | os.PathLike, document: Any, markdown: str) -> dict[str, Path]:
    """Write an evaluation's ``results.json`` (`document`) and ``results.md`` into `outdir` (created), atomically.

    Returns:
        ``{"json": path, "markdown": path}``.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(out / "results.json", document), "markdown": out / "results.md"}
    atomic_write(paths["markdown"], markdown)
    return paths


def fsync_dir(path: str | os.PathLike) -> None:
    """``fsync`` a folder so that a rename inside it is on disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
