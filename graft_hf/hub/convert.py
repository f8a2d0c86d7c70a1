"""Convert the GRAFT authors' Lightning checkpoints into GraftModel folders (weights, config, processor, card).

The authors' checkpoints are PyTorch Lightning files whose `state_dict` holds

- `satellite_image_backbone.*`: a transformers `CLIPVisionModelWithProjection`. Its keys come in two layouts:
  nested (`satellite_image_backbone.vision_model.embeddings.patch_embedding.weight`, as transformers 4.x and
  `CLIPVisionModelWithProjection` save them) and flat (`satellite_image_backbone.embeddings.patch_embedding.weight`,
  a bare `CLIPVisionModel` tower); `satellite_image_backbone.visual_projection.weight` is the projection in both.
  Old files carry `embeddings.position_ids` buffers that newer transformers reject; they are dropped.
- `projector.*`: `LayerNorm` then `Linear` (with a bias unless the module was built with `bias_projector=False`),
  mapped to `patch_head.norm.*` and `patch_head.proj.*`. The authors' module builds the projector at *both* levels,
  so its presence says nothing about the level (see below).
- `logit_scale` (only when built with `temp=True`): the *training* temperature of GRAFT's contrastive loss, a plain
  buffer `1 / 0.07` (some third-party ports store it in log space, `log(1 / 0.07)`; values at or below `log(100)`
  are read as log space).

Image or pixel level. An image-level model is trained through `satellite_image_backbone.image_embeds` (the CLS token
through CLIP's `post_layernorm` and `visual_projection`): its projector never receives a gradient. A pixel-level
model is trained through `projector(last_hidden_state)`: its `post_layernorm` and `visual_projection` never receive
one, so its image embeddings are CLIP's pooling head on a CLS token no loss ever shaped. The level therefore decides
what is kept: image level drops the projector (`use_patch_head=False`); pixel level keeps it as the patch head and
marks the image embedding as untrained (`image_embeds_trained=False` in the config, said in the card, and
`get_image_features` warns). `level=None` reads the level from the weights when they tell: no projector keys, or a
head still bit-identical to its initial value (the projector's LayerNorm at 1/0 or the projector equal to CLIP's
pooling head: image level; `post_layernorm` and `visual_projection` equal to the CLIP's: pixel level). Otherwise
the caller must say which (`level="image"` or `"pixel"`).

The text tower, text projection and zero-shot `logit_scale` come from the CLIP model given as `clip`:
the GRAFT training temperature is **not** CLIP's zero-shot logit scale, so the converted model keeps CLIP's for
text-image logits, and the training temperature is recorded in the model card.

Files are read with `torch.load(weights_only=True)`. Classes pickled in Lightning's metadata (hyper-parameters,
callbacks) are replaced by inert stand-ins that keep only their state; no code from the checkpoint ever runs.
Other wrappers' prefixes (`module.`, `model.`, `_orig_mod.`) are stripped; any key outside the parts above fails
the conversion unless dropped on purpose with `ignore_prefixes`.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from huggingface_hub import is_offline_mode
from transformers import CLIPModel

import graft_hf
from graft_hf.config import ConfigError
from graft_hf.hub.cards import EvalResults, ModelCardInfo, check_model_card, render_model_card, to_eval_results
from graft_hf.modeling import GraftModel

logger = logging.getLogger(__name__)

__all__ = [
    "ConvertedCheckpoint",
    "Level",
    "convert_authors_checkpoint",
    "infer_level",
    "load_authors_checkpoint",
    "map_authors_state_dict",
]

Level = Literal["image", "pixel"]
LEVELS: tuple[str, ...] = ("image", "pixel")

_BACKBONE = "satellite_image_backbone."
_PROJECTOR = "projector."
_TOWER_ROOTS = ("embeddings.", "pre_layrnorm.", "encoder.", "post_layernorm.")
# CLIP clamps its logit scale at 100, so a stored value <= log(100) cannot be a plain 1/temperature of GRAFT.
_MAX_LOG_SCALE = math.log(100.0) + 1e-6


@dataclass
class ConvertedCheckpoint:
    """The authors' checkpoint mapped onto GraftModel key names.

    Args:
        state_dict: `vision_model.*` and `visual_projection.weight` tensors (the backbone).
        projector: The projector as `patch_head.norm.{weight,bias}`, `patch_head.proj.weight` (and
            `patch_head.proj.bias`) tensors; empty when the checkpoint has none.
        training_logit_scale: GRAFT's training logit scale (1 / temperature), `None` when not stored.
        layout: `nested` or `flat` (see the module docstring).
        dropped_keys: Keys ignored on purpose (position ids, ignored prefixes).
        metadata: Lightning metadata (`epoch`, `global_step`) when present.
    """

    state_dict: dict[str, torch.Tensor]
    projector: dict[str, torch.Tensor]
    training_logit_scale: float | None
    layout: str
    dropped_keys: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def has_projector(self) -> bool:
        return bool(self.projector)

    @property
    def projector_bias(self) -> bool:
        """Whether the projector's Linear has a bias (`bias_projector=True`, the authors' default)."""
        return "patch_head.proj.bias" in self.projector


class _InertStandIn:
    """Stands in for a class pickled in checkpoint metadata (hyper-parameters, callbacks): keeps its state only."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _stand_in(name: str) -> type:
    module, _, qualname = name.rpartition(".")
    return type(qualname, (_InertStandIn,), {"__module__": module, "__qualname__": qualname})


def _torch_load_weights_only(path: Path) -> Any:
    """`torch.load(weights_only=True)`, with inert stand-ins for classes pickled in the metadata.

    Lightning pickles hyper-parameters (`AttributeDict`, `argparse.Namespace`, ...) next to the weights, which
    `weights_only=True` refuses. Those globals are replaced by stand-ins that only keep their state (their code is
    never imported or run); dict subclasses become plain dicts. Tensors load as usual.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as first:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        if not names:
            raise
        dict_like: set[str] = set()
        for _ in range(len(names) + 1):
            stand_ins: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [
                (dict if n in dict_like else _stand_in(n), n) for n in names
            ]
            try:
                with torch.serialization.safe_globals(stand_ins):
                    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as err:
                match = re.search(r"SETITEMS? for dict.*?but got <class '([^']+)'>", str(err))
                if match is None or match.group(1) not in names or match.group(1) in dict_like:
                    raise first from err
                dict_like.add(match.group(1))
                continue
            logger.info("%s: read with inert stand-ins for pickled metadata classes %s", path, names)
            return checkpoint
        raise first


def load_authors_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a Lightning checkpoint (or a bare state dict) with `torch.load(weights_only=True)`.

    Returns:
        `(state_dict, metadata)`, metadata holding `epoch` / `global_step` when present.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        checkpoint = _torch_load_weights_only(path)
    except Exception as err:  # pickle errors come in many types; the fix is the same
        raise ValueError(
            f"could not read {path} with torch.load(weights_only=True) ({type(err).__name__}: {err}); only tensors "
            "and plain Python data are read from checkpoints, never arbitrary pickled code"
        ) from err
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, expected a Lightning checkpoint dict")
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: 'state_dict' is not a mapping of tensors")
    metadata = {k: checkpoint[k] for k in ("epoch", "global_step") if isinstance(checkpoint.get(k), int)}
    return dict(state), metadata


def _strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # DDP / torch.compile wrappers prefix every key ("module.", "model.", "_orig_mod.").
    for prefix in ("module.", "model.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def map_authors_state_dict(
    state: dict[str, torch.Tensor], ignore_prefixes: tuple[str, ...] = ()
) -> ConvertedCheckpoint:
    """Map the authors' key names onto GraftModel's (see the module docstring for both layouts).

    Args:
        state: The checkpoint's `state_dict`.
        ignore_prefixes: Key prefixes to drop on purpose (e.g. a frozen teacher saved alongside).

    Returns:
        The mapped checkpoint.

    Raises:
        ValueError: listing keys that belong to no known part (unless ignored), or when the backbone is missing.
    """
    state = _strip_module_prefix(state)
    mapped: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    unknown: list[str] = []
    training_logit_scale = None
    nested = any(k.startswith(_BACKBONE + "vision_model.") for k in state)
    projector_keys = sorted(k for k in state if k.startswith(_PROJECTOR))
    for key, tensor in state.items():
        if key.endswith("position_ids") or any(key.startswith(p) for p in ignore_prefixes):
            dropped.append(key)
        elif key == "logit_scale":
            value = float(tensor.detach().float().reshape(-1)[0])
            training_logit_scale = math.exp(value) if value <= _MAX_LOG_SCALE else value
        elif key == _BACKBONE + "visual_projection.weight":
            mapped["visual_projection.weight"] = tensor
        elif key.startswith(_BACKBONE):
            rest = key[len(_BACKBONE) :]
            if nested and rest.startswith("vision_model."):
                rest = rest[len("vision_model.") :]
            if rest.startswith(_TOWER_ROOTS):
                mapped["vision_model." + rest] = tensor
            else:
                unknown.append(key)
        elif key.startswith(_PROJECTOR):
            continue  # mapped below, by structure
        else:
            unknown.append(key)
    if unknown:
        raise ConfigError(
            "ignore_prefixes",
            f"checkpoint has {len(unknown)} keys outside satellite_image_backbone.*, projector.* and logit_scale: "
            f"{sorted(unknown)[:10]}; give the prefixes of keys that are safe to drop (e.g. a frozen teacher)",
        )
    if not any(k.startswith("vision_model.") for k in mapped):
        raise ValueError(
            "checkpoint has no satellite_image_backbone.* weights; is this a GRAFT checkpoint of the authors' code?"
        )
    return ConvertedCheckpoint(
        state_dict=mapped,
        projector=_map_projector(state, projector_keys),
        training_logit_scale=training_logit_scale,
        layout="nested" if nested else "flat",
        dropped_keys=sorted(dropped),
    )


def _map_projector(state: dict[str, torch.Tensor], keys: list[str]) -> dict[str, torch.Tensor]:
    """`projector = LayerNorm then Linear` under any submodule names (`0`/`1`, `norm`/`proj`, ...).

    The parts are told apart by structure, not by name: the LayerNorm has a 1-D weight and a 1-D bias, the Linear a
    2-D weight and, when built with `bias_projector=True`, a 1-D bias.
    """
    if not keys:
        return {}
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key in keys:
        module, _, param = key[len(_PROJECTOR) :].rpartition(".")
        modules.setdefault(module, {})[param] = state[key]
    norms = [m for m, p in modules.items() if set(p) == {"weight", "bias"} and p["weight"].ndim == 1]
    projs = [m for m, p in modules.items() if set(p) in ({"weight"}, {"weight", "bias"}) and p["weight"].ndim == 2]
    if len(modules) != 2 or len(norms) != 1 or len(projs) != 1:
        shapes = {m: {n: tuple(t.shape) for n, t in p.items()} for m, p in modules.items()}
        raise ValueError(
            f"projector does not look like LayerNorm + Linear: {shapes}; GraftModel's patch head is exactly that "
            "(extra layers are not supported)"
        )
    norm, proj = modules[norms[0]], modules[projs[0]]
    mapped = {
        "patch_head.norm.weight": norm["weight"],
        "patch_head.norm.bias": norm["bias"],
        "patch_head.proj.weight": proj["weight"],
    }
    if "bias" in proj:
        mapped["patch_head.proj.bias"] = proj["bias"]
    return mapped


def _same(tensor: torch.Tensor, reference: torch.Tensor) -> bool:
    """Bit-identical after casting the reference to the checkpoint's dtype (fp16/bf16 checkpoints)."""
    return tensor.shape == reference.shape and torch.equal(tensor, reference.detach().to(tensor.dtype))


def _projector_at_init(projector: dict[str, torch.Tensor], clip: CLIPModel) -> str | None:
    """Why the projector is still at an initial value (so it was never trained), or `None`."""
    norm_w, norm_b = projector["patch_head.norm.weight"], projector["patch_head.norm.bias"]
    bias = projector.get("patch_head.proj.bias")
    if bool((norm_w == 1).all()) and bool((norm_b == 0).all()):
        return "the projector's LayerNorm is still at its initial weight 1 and bias 0"
    post_layernorm = clip.vision_model.post_layernorm
    if (
        _same(norm_w, post_layernorm.weight)
        and _same(norm_b, post_layernorm.bias)
        and _same(projector["patch_head.proj.weight"], clip.visual_projection.weight)
        and (bias is None or not bool(bias.any()))
    ):
        return "the projector still equals CLIP's post_layernorm and visual_projection, its initial value"
    return None


def _image_head_at_init(state: dict[str, torch.Tensor], clip: CLIPModel) -> str | None:
    """Why the backbone's pooling head is still CLIP's (so the image embedding was never trained), or `None`."""
    post_layernorm = clip.vision_model.post_layernorm
    pairs = [
        (state.get("vision_model.post_layernorm.weight"), post_layernorm.weight),
        (state.get("vision_model.post_layernorm.bias"), post_layernorm.bias),
        (state.get("visual_projection.weight"), clip.visual_projection.weight),
    ]
    if all(t is not None and _same(t, ref) for t, ref in pairs):
        return "post_layernorm and visual_projection are bit-identical to the CLIP's"
    return None


def infer_level(converted: ConvertedCheckpoint, clip: CLIPModel) -> tuple[Level | None, str]:
    """The level the weights show, with the evidence (see the module docstring), or `(None, why not)`.

    Args:
        converted: The mapped checkpoint.
        clip: The CLIP the checkpoint was trained from (its initial values are the reference).
    """
    if not converted.has_projector:
        return "image", "the checkpoint has no projector.* weights"
    projector_fixed = _projector_at_init(converted.projector, clip)
    image_head_fixed = _image_head_at_init(converted.state_dict, clip)
    if projector_fixed and not image_head_fixed:
        return "image", projector_fixed
    if image_head_fixed and not projector_fixed:
        return "pixel", image_head_fixed
    if projector_fixed and image_head_fixed:
        return None, f"both heads are at their initial values ({projector_fixed}; {image_head_fixed})"
    return None, (
        "both the projector and the image embedding head differ from their initial values (a checkpoint trained "
        "at both levels, or initialised from another CLIP)"
    )


def _load_clip(clip: CLIPModel | str | os.PathLike) -> CLIPModel:
    """The CLIP as a model; fails fast, before any download attempt, when `clip` is a Hub id and the Hub is off."""
    if isinstance(clip, CLIPModel):
        return clip
    if not Path(clip).is_dir():
        if is_offline_mode():
            raise FileNotFoundError(
                f"the CLIP {str(clip)!r} is not a local directory and HF_HUB_OFFLINE is set, so it cannot be "
                f"downloaded; download it where the Hub is reachable (`hf download {clip} --local-dir DIR`) and pass "
                "that DIR as clip"
            )
        logger.info("CLIP %s is not a local folder: loading it from the Hub", clip)
    try:
        return CLIPModel.from_pretrained(clip).eval()
    except (OSError, ValueError) as err:
        raise ConfigError("clip", f"could not load a CLIPModel from {str(clip)!r}: {err}") from err


def _decide_level(converted: ConvertedCheckpoint, clip: CLIPModel, level: str | None) -> Level:
    """The level to convert at: `level` when given (checked against the weights), else what the weights show."""
    if level is not None and level not in LEVELS:
        raise ConfigError("level", f"must be 'image' or 'pixel', got {level!r}")
    inferred, evidence = infer_level(converted, clip)
    if level is None:
        if inferred is None:
            raise ConfigError(
                "level",
                f"the checkpoint does not tell whether it is an image-level or a pixel-level GRAFT model: {evidence}; "
                "pass level='image' (its image embeddings were trained: classification, retrieval) or level='pixel' "
                "(its projector was trained: patch embeddings for segmentation, detection, question answering)",
            )
        logger.info("converting at %s level: %s", inferred, evidence)
        return inferred
    if level == "pixel" and not converted.has_projector:
        raise ConfigError("level", "'pixel' needs the projector.* weights, which this checkpoint lacks; use 'image'")
    if inferred is not None and inferred != level:
        logger.warning(
            "converting at %s level as asked, although the weights look %s-level: %s", level, inferred, evidence
        )
    return level  # type: ignore[return-value]


def _load_vision_side(model: GraftModel, tensors: dict[str, torch.Tensor]) -> None:
    """Copy the converted vision tower, projection and (pixel level) patch head into `model`; fail on any mismatch."""
    expected = model.state_dict()
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in tensors.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if mismatched:
        raise ConfigError(
            "clip",
            f"checkpoint shapes do not match this CLIP ({mismatched[:5]}); pass the CLIP the checkpoint was trained "
            "from (e.g. openai/clip-vit-base-patch16 for a ViT-B/16 GRAFT)",
        )
    dtype = next(model.parameters()).dtype
    result = model.load_state_dict({k: v.to(dtype) for k, v in tensors.items()}, strict=False)
    allowed_missing = {
        k
        for k in expected
        if k.startswith(("text_model.", "text_projection.")) or k == "logit_scale" or k.endswith("position_ids")
    }
    missing = set(result.missing_keys) - allowed_missing
    if missing or result.unexpected_keys:
        raise ValueError(
            f"checkpoint does not fill the GRAFT vision side: missing {sorted(missing)[:10]}, unexpected "
            f"{sorted(result.unexpected_keys)[:10]}"
        )


def convert_authors_checkpoint(
    checkpoint: str | os.PathLike,
    clip: CLIPModel | str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    *,
    level: Level | None = None,
    sensor: str = "naip",
    card_info: ModelCardInfo | None = None,
    eval_results: EvalResults = None,
    ignore_prefixes: tuple[str, ...] = (),
    tokenizer: str | os.PathLike | None = None,
    **config_kwargs: Any,
) -> GraftModel:
    """Convert an authors' checkpoint into a `GraftModel` (and save it with processor and card).

    Args:
        checkpoint: The Lightning `.ckpt` (or a bare state dict file).
        clip: The CLIP the checkpoint was trained from: a local `CLIPModel` folder, a `CLIPModel`, or a Hub id (needs
            the Hub). It supplies the text tower, the text projection and the zero-shot logit scale, and must match
            the vision tower shape.
        output_dir: Folder to save the model, processor and README.md in; `None` only returns the model.
        level: `"image"` (drop the projector: an image-level model) or `"pixel"` (the projector becomes the patch
            head; the image embedding is marked untrained); `None` reads it from the weights and fails, asking for
            it, when they do not tell (see the module docstring).
        sensor: Sensor preset of the imagery the checkpoint was trained on (`naip`, `sentinel2`, ...).
        card_info: Card details; `converted_from` and `training_temperature` are filled in from the checkpoint.
        eval_results: Evaluation JSON for the card (see `graft_hf.hub.cards`).
        ignore_prefixes: Checkpoint key prefixes to drop on purpose.
        tokenizer: Tokenizer folder; `None` uses the CLIP folder's tokenizer when it has one, else the offline one.
        **config_kwargs: Further `GraftConfig` fields (`gsd`, `band_names`, ...).

    Returns:
        The converted `GraftModel` in eval mode.

    Raises:
        ValueError: when keys or shapes do not match, or the level is needed and not given (naming them;
            `ConfigError` with the parameter to change), FileNotFoundError for missing inputs.
    """
    state, metadata = load_authors_checkpoint(checkpoint)
    converted = map_authors_state_dict(state, ignore_prefixes=ignore_prefixes)
    converted.metadata = metadata
    clip_model = _load_clip(clip)
    chosen = _decide_level(converted, clip_model, level)
    tensors = dict(converted.state_dict)
    if chosen == "pixel":
        tensors.update(converted.projector)
    else:
        converted.dropped_keys = sorted(converted.dropped_keys + [k for k in state if k.startswith(_PROJECTOR)])
    model = GraftModel.from_clip(
        clip_model,
        use_patch_head=chosen == "pixel",
        patch_head_bias=chosen == "pixel" and converted.projector_bias,
        image_embeds_trained=chosen == "image",
        sensor=sensor,
        **config_kwargs,
    )
    _load_vision_side(model, tensors)
    model.eval()
    logger.info(
        "converted %s at %s level (%s layout, %d tensors); dropped %s; training logit scale %s",
        checkpoint,
        chosen,
        converted.layout,
        len(tensors),
        converted.dropped_keys or "nothing",
        converted.training_logit_scale,
    )
    if output_dir is not None:
        source = Path(checkpoint)
        _save_converted(model, converted, chosen, source, clip, Path(output_dir), card_info, eval_results, tokenizer)
    return model


def _save_converted(
    model: GraftModel,
    converted: ConvertedCheckpoint,
    level: Level,
    checkpoint: Path,
    clip: CLIPModel | str | os.PathLike,
    output_dir: Path,
    card_info: ModelCardInfo | None,
    eval_results: EvalResults,
    tokenizer: str | os.PathLike | None,
) -> None:
    if tokenizer is None and not isinstance(clip, CLIPModel) and (Path(clip) / "tokenizer_config.json").is_file():
        tokenizer = clip
    info = card_info or ModelCardInfo()
    meta = ", ".join(f"{k} {v}" for k, v in converted.metadata.items())
    info.converted_from = f"the authors' {level}-level checkpoint `{checkpoint.name}`" + (f" ({meta})" if meta else "")
    if converted.training_logit_scale is not None:
        info.training_temperature = 1.0 / converted.training_logit_scale
    results = to_eval_results(eval_results)
    card = str(render_model_card(model.config, info, results, logit_scale=float(model.logit_scale.detach())))
    check_model_card(card)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    graft_hf.build_processor(model.config, None if tokenizer is None else str(tokenizer)).save_pretrained(output_dir)
    (output_dir / "README.md").write_text(card)
    logger.info("wrote %s", output_dir)
