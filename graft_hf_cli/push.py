"""``graft push FOLDER [REPO_ID]``: publish a GRAFT model (or, with ``--dataset``, a pairs dataset) to the Hub.

A model folder (from ``graft train`` / ``graft convert`` / ``save_pretrained``) is pushed in one commit with its
safetensors weights, ``config.json`` (with ``auto_map``), the model files as remote code, the processor and a model
card: ``--card``, else one rendered from ``hub_cards/model_card.md`` when a card option (``--eval``, ``--license``,
...) is given, else the folder's README.md (``graft convert`` writes one), else a default rendered card.
Without REPO_ID the name is derived from the config: ``graft-<sensor>-vitb16`` and so on (``--namespace``,
``--suffix``). ``--dataset`` pushes a ``graft pairs build`` folder (card, build report, parquet shards).

Authentication: ``HF_TOKEN`` or ``hf auth login`` (or ``--token``). ``--endpoint`` selects another Hub server.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graft_hf_cli._fields import add_fields, fields_from_args

if TYPE_CHECKING:
    from graft_hf.hub import ModelCardInfo

__all__ = ["add_parser", "run"]

_CARDS = "graft_hf.hub.cards"
# How the library's errors name push_model's parameters, and the flags that set them here.
_FLAG_WORDS = (
    ("card_info= / eval_results= (ModelCardInfo)", "--eval / --license / --train-config"),
    ("the README text as card=", "--card FILE"),
    ("allow_any_name=True", "--allow-any-name"),
    ("token=", "--token"),
    ("endpoint=", "--endpoint"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "push",
        help="publish a GRAFT model or pairs dataset to the Hugging Face Hub in one commit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", help="model folder (save_pretrained output) or, with --dataset, a pairs build folder")
    parser.add_argument("repo_id", nargs="?", help="namespace/name or name; default for models: derived from config")
    parser.add_argument("--dataset", action="store_true", help="push a pairs dataset folder to a dataset repository")
    parser.add_argument("--namespace", help="user or organisation for a derived model repo name")
    parser.add_argument("--suffix", help="variant suffix for a derived model repo name, e.g. pixel")
    parser.add_argument("--allow-any-name", action="store_true", help="skip the check that the name fits the config")
    card = parser.add_argument_group("model card (models only)")
    card.add_argument("--eval", dest="eval_json", metavar="JSON", help="evaluation results JSON (model-index)")
    card.add_argument("--license", help="licence id of the weights (default apache-2.0)")
    add_fields(
        parser, _CARDS, "ModelCardInfo", only=("datasets", "base_model"), flags={"datasets": "--train-dataset"},
        helps={"datasets": "training dataset id (repeatable)",
               "base_model": "Hub id of the CLIP it starts from (default: from the architecture)"},
        metavars={"datasets": "REPO_ID"}, group=card,
    )  # fmt: skip
    card.add_argument("--card", metavar="README", help="use this README.md instead of rendering one")
    card.add_argument(
        "--train-config",
        metavar="YAML",
        help="`graft train` run config for the card's recipe (default: FOLDER/../train_config.yaml when present)",
    )
    hub = parser.add_argument_group("Hub")
    hub.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or https://huggingface.co)")
    hub.add_argument("--token", help="access token (default: HF_TOKEN or the `hf auth login` token)")
    hub.add_argument("--private", action="store_true", help="create the repository as private")
    hub.add_argument("--revision", help="existing branch to commit to (default main)")
    hub.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    hub.add_argument("-m", "--message", help="commit message")
    parser.add_argument("--dry-run", action="store_true", help="stage and check every file, list them, push nothing")
    parser.set_defaults(handler=run)
    return parser


def _flag_terms(message: str) -> str:
    for words, flag in _FLAG_WORDS:
        message = message.replace(words, flag)
    return message


def run(args: argparse.Namespace) -> int:
    from graft_hf.hub import HubPushError

    try:
        result = _push_dataset(args) if args.dataset else _push_model(args)
    except (HubPushError, ValueError) as err:
        message = _flag_terms(str(err))
        if message == str(err):
            raise
        raise (HubPushError if isinstance(err, HubPushError) else ValueError)(message) from err
    if result is not None:
        print(f"pushed {len(result.files)} files to {result.repo_type} {result.repo_id}: {result.commit_url}")
        _print_skipped(result.skipped)
    return 0


def _print_skipped(skipped: dict[str, str], shown: int = 10) -> None:
    """What stayed local, grouped by reason (at most ``shown`` names per reason)."""
    by_reason: dict[str, list[str]] = {}
    for rel, reason in skipped.items():
        by_reason.setdefault(reason, []).append(rel)
    for reason, names in by_reason.items():
        more = f" and {len(names) - shown} more" if len(names) > shown else ""
        print(f"not uploaded ({reason}): {', '.join(names[:shown])}{more}")


def _hub_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "endpoint": args.endpoint,
        "token": args.token,
        "private": args.private or None,
        "revision": args.revision,
        "create_pr": args.create_pr,
        "commit_message": args.message,
    }


def _push_dataset(args: argparse.Namespace) -> Any:
    from graft_hf.hub import push_dataset

    if not args.repo_id:
        raise ValueError("graft push --dataset needs a REPO_ID (e.g. my-name/graft-naip-pairs)")
    if args.dry_run:
        raise ValueError("--dry-run is available for models only")
    return push_dataset(args.folder, args.repo_id, **_hub_options(args))


def _card_info(args: argparse.Namespace, folder: Path, repo_id: str) -> ModelCardInfo | None:
    """The card details the flags ask for, or ``None`` to keep the folder's README.md (or render a default card)."""
    from graft_hf.hub import ModelCardInfo, card_info_from_train_config

    train_config = args.train_config
    if train_config is None and (folder.resolve().parent / "train_config.yaml").is_file():
        train_config = str(folder.resolve().parent / "train_config.yaml")  # `graft train` output layout
    given = fields_from_args(args, _CARDS, "ModelCardInfo")
    if not (args.eval_json or args.license or train_config or any(v is not None for v in given.values())):
        return None
    info = card_info_from_train_config(train_config) if train_config else ModelCardInfo()
    info.repo_id = repo_id
    info.datasets = given.get("datasets") or info.datasets
    info.base_model = given.get("base_model") or info.base_model
    if args.license:
        info.license = args.license
    return info


def _push_model(args: argparse.Namespace) -> Any:
    from graft_hf.hub import model_repo_name, push_model, stage_model_files, validate_model_repo_id, validate_repo_id
    from graft_hf.modeling import GraftConfig

    folder = Path(args.folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json; pass a folder saved by graft_hf (save_pretrained)")
    repo_id = args.repo_id
    if repo_id is None:
        repo_id = model_repo_name(GraftConfig.from_pretrained(folder), args.suffix)
        repo_id = f"{args.namespace}/{repo_id}" if args.namespace else repo_id
    card = {
        "card_info": _card_info(args, folder, repo_id),
        "eval_results": args.eval_json,
        "card": Path(args.card).read_text() if args.card else None,
    }
    if not args.dry_run:
        return push_model(folder, repo_id, allow_any_name=args.allow_any_name, **card, **_hub_options(args))
    validate_repo_id(repo_id)
    if not args.allow_any_name:
        validate_model_repo_id(repo_id, GraftConfig.from_pretrained(folder))
    with stage_model_files(folder, repo_id=repo_id, **card) as files:
        for name, path in sorted(files.items()):
            print(f"{name}\t{path.stat().st_size}")
    _print_skipped(files.skipped)
    print(f"dry run: {len(files)} files would be pushed to {repo_id}")
    return None
