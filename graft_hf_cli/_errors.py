"""Library errors in command-line terms (not a subcommand).

A library error about one parameter is a ``ConfigError`` whose ``key`` names the parameter; ``graft``'s ``main()``
turns that key into the flag that sets it. Where the message itself tells the fix with a parameter (``pass
model=DIR``), :func:`speaks_flags` rewrites it with the flag (``pass --model DIR``). Standard library only: the
error is recognised by its ``key`` and ``reason`` attributes, so this module never imports ``graft_hf``.
"""

from __future__ import annotations

import argparse
import functools
import re
from collections.abc import Callable

__all__ = ["name_flag", "speaks_flags"]

Handler = Callable[[argparse.Namespace], int]


def _reworded(args: argparse.Namespace, reason: str) -> str:
    """``name=True`` becomes the switch ``--name``, ``name=VALUE`` becomes ``--name VALUE``."""
    flags = getattr(args, "_field_flags", None) or {}

    def flag(match: re.Match) -> str:
        if match[1] not in flags:
            return match[0]
        return flags[match[1]] if match[2] else f"{flags[match[1]]} "

    return re.sub(r"\b(\w+)=(True\b)?", flag, reason)


def speaks_flags(handler: Handler) -> Handler:
    """Decorate a subcommand handler so that ``name=`` in a parameter error's message becomes ``--flag``."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except Exception as error:
            key, reason = getattr(error, "key", None), getattr(error, "reason", None)
            if key is None or not isinstance(reason, str) or _reworded(args, reason) == reason:
                raise
            raise type(error)(key, _reworded(args, reason)) from error

    return run


def name_flag(parser: argparse.ArgumentParser, field: str, flag: str) -> None:
    """Errors about config field `field` name `flag` (for a flag added by hand rather than by ``add_fields``)."""
    parser.set_defaults(_field_flags={**(parser.get_default("_field_flags") or {}), field: flag})
