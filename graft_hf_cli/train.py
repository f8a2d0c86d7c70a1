"""``graft train CONFIG [--override key=value ...] [--resume [CHECKPOINT]]``: train a GRAFT model.

``CONFIG`` is a YAML file (see :mod:`graft_hf.training.config`) or a preset name (``naip-vitb16``,
``sentinel2-vitb32-pixel``, ...). Several processes: ``accelerate launch -m graft_hf_cli train CONFIG`` or
``torchrun --nproc_per_node N -m graft_hf_cli train CONFIG``.
"""

from __future__ import annotations

import argparse
import os

from graft_hf_cli._errors import name_flag

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train an image- or pixel-level GRAFT model on pair shards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="YAML run config or preset name (e.g. naip-vitb16, naip-vitb16-pixel)")
    parser.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (dotted, YAML value), e.g. train.max_steps=100 or data.path=./pairs; repeatable",
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CHECKPOINT",
        help="resume from the latest checkpoint of the run (or from CHECKPOINT): model, optimizer, LR schedule, "
        "RNG and data position",
    )
    name_flag(parser, "resume", "--resume")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from graft_hf.training.config import load_train_config

    config = load_train_config(args.config, args.override)  # a ConfigError names the dotted key to override
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    from graft_hf.training.checkpoint import NoCheckpointError
    from graft_hf.training.loop import train
    from graft_hf.training.task import TeacherLoadError

    try:
        model_dir = train(config, resume=args.resume)
    except NoCheckpointError as err:
        raise NoCheckpointError(
            err.root, f"--resume: no checkpoint in {err.root}; drop --resume to start fresh"
        ) from None
    except TeacherLoadError as err:
        raise TeacherLoadError(err.name_or_path, f"{err} On the command line: -o teacher.name_or_path=DIR") from None
    if os.environ.get("RANK", "0") == "0":  # one line per run, not per process
        print(f"GRAFT model written to {model_dir}")
    return 0
