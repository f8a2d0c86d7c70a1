"""Which files of a local folder may be published: regular files inside it, never links, never pickles in a model.

A push uploads what it finds in a folder, so the walk decides what leaves the machine. :func:`folder_files` walks
the folder without following symbolic links and keeps regular files only: a link (to a file or a folder, inside
the folder or anywhere else, e.g. a key file or ``/etc/passwd``), a FIFO, socket or device is skipped, and so is
anything matching the caller's ignore patterns (build bookkeeping, hidden files). Every skipped path is returned
with its reason, so the caller can list it.

:func:`pickle_files` finds files that would run code when loaded with ``pickle`` / ``torch.load``: the usual
pickle suffixes (``.bin``, ``.pt``, ``.pth``, ``.ckpt``, ``.pkl``, ``.pickle``, ``.joblib``), files starting with
a pickle protocol header, and zip archives holding a pickle (``torch.save``'s format). GRAFT model repositories
carry safetensors only, so a push refuses them.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import zipfile
from pathlib import Path

__all__ = ["PICKLE_SUFFIXES", "StagedFiles", "folder_files", "pickle_files"]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib")
_PICKLE_PROTOCOLS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


class StagedFiles(dict[str, Path]):
    """``{path_in_repo: local path}`` of the files to upload, and what was left out.

    Attributes:
        skipped: ``{path in the folder: reason}`` of every file or link not uploaded.
    """

    def __init__(self, files: dict[str, Path] | None = None, skipped: dict[str, str] | None = None) -> None:
        super().__init__(files or {})
        self.skipped: dict[str, str] = dict(skipped or {})


def _kind(mode: int) -> str | None:
    """Why an entry of this ``lstat`` mode is not uploaded, or ``None`` for a regular file."""
    if stat.S_ISLNK(mode):
        return "symbolic link (links are never followed)"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return None


def folder_files(folder: str | os.PathLike, ignore: tuple[str, ...] = ()) -> StagedFiles:
    """The regular files under ``folder`` (links not followed), minus ``ignore`` patterns, with what was skipped.

    Args:
        folder: The folder to publish.
        ignore: ``fnmatch`` patterns of relative POSIX paths to leave out (``"_build/*"``, ``".*"``).

    Returns:
        The files keyed by relative POSIX path, sorted; ``.skipped`` maps each skipped path to its reason.
    """
    root = Path(folder)
    files, skipped = {}, {}
    for directory, subdirs, names in os.walk(root, followlinks=False):
        base = Path(directory)
        for name in sorted(subdirs):
            if (base / name).is_symlink():  # os.walk lists it but does not descend into it
                skipped[(base / name).relative_to(root).as_posix()] = "symbolic link to a folder (not followed)"
        for name in names:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if any(fnmatch.fnmatch(rel, pattern) for pattern in ignore):
                skipped[rel] = "ignored (build bookkeeping or hidden file)"
                continue
            reason = _kind(os.lstat(path).st_mode)
            if reason is None:
                files[rel] = path
            else:
                skipped[rel] = reason
    return StagedFiles(dict(sorted(files.items())), dict(sorted(skipped.items())))


def _is_pickle(path: Path) -> bool:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    if path.suffix.lower() == ".safetensors":  # an 8-byte header length may begin like a pickle header
        return False
    with path.open("rb") as handle:
        if handle.read(2) in _PICKLE_PROTOCOLS:
            return True
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith((".pkl", ".pickle")) for name in archive.namelist())
    return False


def pickle_files(files: dict[str, Path]) -> list[str]:
    """The staged paths that are pickles (by suffix, pickle header, or a zip holding one), sorted."""
    return sorted(name for name, path in files.items() if _is_pickle(path))
