"""``graft convert CHECKPOINT --clip CLIP_DIR -o OUT``: turn the authors' GRAFT checkpoint into a GraftModel folder.

Reads the authors' Lightning checkpoint (``satellite_image_backbone.*``, ``projector.*``, ``logit_scale``) with
``torch.load(weights_only=True)``, takes the text tower, text projection and zero-shot logit scale from the CLIP
folder given with ``--clip`` (the CLIP the checkpoint was trained from, e.g. a local copy of
``openai/clip-vit-base-patch16``), and writes safetensors weights, config, processor and a model card to OUT.
The checkpoint's ``logit_scale`` (1/0.07, GRAFT's training temperature) is recorded in the card, not used for
zero-shot logits.

The authors' module carries its pixel-level ``projector`` at both levels, so ``--level`` says which was trained:
``image`` drops the projector (an image-level model); ``pixel`` keeps it as the patch head and marks the image
embedding as untrained (config and card). Without ``--level`` the level is read from the weights when a head is
still at its initial value, and the command stops asking for ``--level`` when they do not tell.
"""

from __future__ import annotations

import argparse

from graft_hf_cli._errors import speaks_flags
from graft_hf_cli._fields import add_fields, fields_from_args

__all__ = ["add_parser", "run"]

_CARDS = "graft_hf.hub.cards"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "convert",
        help="convert the authors' GRAFT Lightning checkpoint into a GraftModel folder with card",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", help="the authors' .ckpt file (Lightning) or a bare state dict")
    parser.add_argument("--clip", required=True, help="local CLIPModel folder the checkpoint was trained from")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument(
        "--level",
        choices=("image", "pixel"),
        help="which level the checkpoint was trained at (required when the weights do not tell)",
    )
    parser.add_argument("--sensor", default="naip", help="sensor preset: naip, sentinel2, sentinel2-l1c, rgb")
    parser.add_argument("--gsd", type=float, help="ground sample distance in m/px (default: the sensor preset's)")
    parser.add_argument(
        "--ignore-key-prefix",
        action="append",
        default=[],
        metavar="PREFIX",
        help="checkpoint key prefix to drop on purpose (e.g. a frozen teacher); repeatable",
    )
    parser.add_argument("--eval", dest="eval_json", metavar="JSON", help="evaluation results JSON for the card")
    add_fields(
        parser, _CARDS, "ModelCardInfo", only=("repo_id", "license"),
        helps={"repo_id": "Hub id the card's examples refer to (default: derived from the config)",
               "license": "licence id of the weights for the card"},
    )  # fmt: skip
    # convert_authors_checkpoint's errors name its parameters; on this command line these flags set them.
    flags = {
        **parser.get_default("_field_flags"),
        "clip": "--clip",
        "ignore_prefixes": "--ignore-key-prefix",
        "level": "--level",
    }
    parser.set_defaults(handler=run, _field_flags=flags)
    return parser


@speaks_flags
def run(args: argparse.Namespace) -> int:
    from graft_hf.hub.cards import ModelCardInfo
    from graft_hf.hub.convert import convert_authors_checkpoint

    config_kwargs = {"gsd": args.gsd} if args.gsd is not None else {}
    model = convert_authors_checkpoint(
        args.checkpoint,
        args.clip,
        args.output,
        level=args.level,
        sensor=args.sensor,
        card_info=ModelCardInfo(**fields_from_args(args, _CARDS, "ModelCardInfo")),
        eval_results=args.eval_json,
        ignore_prefixes=tuple(args.ignore_key_prefix),
        **config_kwargs,
    )
    print(f"GRAFT {'pixel' if model.config.use_patch_head else 'image'}-level model written to {args.output}")
    return 0
