"""Errors about one parameter that are not plain value errors: a missing file, a model or dataset that cannot be
fetched, a folder that cannot be written.

Each is a :class:`graft_hf.config.ConfigError` as well as the built-in error a Python caller expects
(``FileNotFoundError``, ``RuntimeError``, ``OSError``): its ``key`` names the parameter (the message reads
``checkpoint: open_clip checkpoint 'x.pt' not found; ...``), so the ``graft`` command line names the flag that
sets it instead, while ``except FileNotFoundError`` keeps working.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from graft_hf.config import ConfigError

__all__ = [
    "MissingPathError",
    "UnavailableSourceError",
    "UnwritablePathError",
    "check_local_or_hub",
    "missing_folder_note",
    "renamed_parameters",
]


class MissingPathError(ConfigError, FileNotFoundError):
    """A file or folder given by a parameter does not exist."""


class UnavailableSourceError(ConfigError, RuntimeError):
    """A model or dataset given by a parameter cannot be loaded (e.g. a Hub id while offline)."""


class UnwritablePathError(ConfigError, OSError):
    """An output folder given by a parameter cannot be written."""


def check_local_or_hub(key: str, text: str, what: str) -> None:
    """Refuse a folder that does not exist and cannot be a Hub repo id either (``./x``, ``/x``, ``a/b/c``).

    Args:
        key: The parameter (``data``, ``model``).
        text: Its value.
        what: What it names, for the message (``"data folder"``).

    Raises:
        MissingPathError: ``text`` names no existing file or folder and is no valid Hub repo id, so it can only be
            a mistyped path (instead of a complaint about reaching the Hub).
    """
    if os.path.exists(os.path.expanduser(text)) or "://" in text:
        return
    try:
        validate_repo_id(text)
    except HFValidationError:
        raise MissingPathError(key, f"{what} {text!r} does not exist; pass an existing folder") from None


def missing_folder_note(text: str) -> str:
    """``"there is no folder 'x' here, and "`` when ``text`` names nothing local (it was taken as a Hub id)."""
    return "" if os.path.exists(os.path.expanduser(text)) else f"there is no folder {text!r} here, and "


@contextlib.contextmanager
def renamed_parameters(names: dict[str, str]) -> Iterator[None]:
    """Re-key errors of a call whose parameters a config names differently (``{"path": "data"}``).

    A job function that calls e.g. ``load_eval_dataset(config.data)`` wraps the call in this context, so that an
    error about ``path`` is reported as one about the config's ``data`` field (and thus the command line's flag).
    """
    try:
        yield
    except ConfigError as error:
        reason = error.reason
        for old, new in names.items():
            reason = re.sub(rf"\b{old}=", f"{new}=", reason)
        key = names.get(error.key, error.key) if error.key else None
        if (key, reason) == (error.key, error.reason):
            raise
        raise type(error)(key, reason) from error
