"""The ``graft`` command line.

This package is deliberately separate from :mod:`graft_hf`: importing ``graft_hf`` registers the GRAFT classes
with the transformers Auto classes, which imports torch (seconds). ``graft --help`` and argument errors must be
instant, so every subcommand module here defines its arguments with the standard library only and imports
``graft_hf`` inside its handler.

A subcommand is a module in this package exposing ``add_parser(subparsers)``; the parser it adds sets
``handler=`` to a function taking the parsed namespace and returning an exit code. Modules are discovered
automatically, so adding a subcommand never touches this file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graft",
        description="GRAFT: train and use vision-language models for satellite images without text annotations.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.add_parser(subparsers)
    return parser


def _subcommand_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (possibly nested) subcommand that ``args`` selected, e.g. ``graft pairs build``'s."""
    while True:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, subparsers[0].dest, None) if subparsers and subparsers[0].dest else None
        if name is None or name not in subparsers[0].choices:
            return parser
        parser = subparsers[0].choices[name]


def _reject_unknown(parser: argparse.ArgumentParser, args: argparse.Namespace, unknown: list[str]) -> None:
    """Print the subcommand's usage and the closest flag for each unknown argument, then exit with code 2."""
    import difflib

    sub = _subcommand_parser(parser, args)
    flags = [option for action in sub._actions for option in action.option_strings]
    hints = []
    for item in unknown:
        if item.startswith("-"):
            close = difflib.get_close_matches(item.split("=", 1)[0], flags, n=1, cutoff=0.6)
            hints.append(f"{item} (did you mean {close[0]}?)" if close else item)
        else:
            hints.append(item)
    sub.error(f"unrecognized arguments: {' '.join(hints)}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _reject_unknown(parser, args, unknown)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("graft: interrupted; finished work is kept (rerun the same command to resume)", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as err:
        # Errors raised for users carry the fix in their message; a traceback would bury it.
        if args.verbose:
            raise
        print(f"graft {args.command}: error: {_in_flag_terms(args, err)}", file=sys.stderr)
        return 1
    except Exception as err:  # out of memory, a decompression bomb: see _input_too_large
        reason = _input_too_large(err)
        if reason is None or args.verbose:
            raise
        print(f"graft {args.command}: error: {reason}", file=sys.stderr)
        return 1


def _input_too_large(err: BaseException) -> str | None:
    """The message for running out of memory or a decompression bomb (Pillow's, if Pillow is loaded), else None."""
    advice = "large scenes go through `graft map`, which tiles them; crop or downsample other inputs"
    if isinstance(err, MemoryError):
        return f"out of memory{f' ({err})' if str(err) else ''}: an input is too large to read whole here; {advice}"
    bomb = getattr(sys.modules.get("PIL.Image"), "DecompressionBombError", None)
    if bomb is not None and isinstance(err, bomb):
        return f"an image is refused as a possible decompression bomb ({err}); {advice}"
    return None


def _in_flag_terms(args: argparse.Namespace, err: Exception) -> str:
    """A library ``ConfigError`` names the config field (``tile_size``); on the command line, name its flag."""
    from graft_hf_cli._fields import flag_for

    flag = flag_for(args, getattr(err, "key", None))
    if flag is None:
        return str(err)
    return f"{flag}: {getattr(err, 'reason', err)}"


if __name__ == "__main__":
    sys.exit(main())
