"""One encoder protocol for every model the harness scores: GRAFT, transformers CLIP, open_clip, text encoders.

The harness only needs two functions::

    encode_images(images: list[PIL.Image | (bands, H, W) array]) -> (num_images, dim) tensor
    encode_texts(texts: list[str]) -> (num_texts, dim) tensor

An :class:`Encoder` composes an image encoder and a text encoder, so a GRAFT image tower can be scored with its
own CLIP text tower, or with a separate sentence encoder (the alt-text quickstart pairs a GRAFT ViT with
all-MiniLM-L6-v2), and baselines (any transformers CLIP, open_clip checkpoints such as RemoteCLIP or GeoRSCLIP)
go through the same code.

Image encoders may also implement ``for_sensor(sensor) -> image encoder`` to read multi-band arrays of a
`SENSOR_PRESETS` sensor (the harness calls it for non-RGB datasets); RGB-only baselines render such arrays to
RGB first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from huggingface_hub import is_offline_mode
from PIL import Image

from graft_hf import build_processor
from graft_hf.config import ConfigError
from graft_hf.evaluation.datasets import to_rgb_image
from graft_hf.evaluation.errors import MissingPathError, UnavailableSourceError, check_local_or_hub, missing_folder_note
from graft_hf.modeling import GraftImageProcessor, GraftModel, GraftProcessor
from graft_hf.pairs.embed import Teacher, load_teacher
from graft_hf.tokenizer import load_clip_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

__all__ = [
    "Encoder",
    "GraftImageEncoder",
    "GraftTextEncoder",
    "ImageEncoder",
    "TeacherImageEncoder",
    "TeacherTextEncoder",
    "TextEncoder",
    "as_text_encoder",
    "graft_encoder",
    "load_encoder",
    "load_text_encoder",
]

BaselineKind = Literal["auto", "graft", "transformers", "open_clip"]


@runtime_checkable
class ImageEncoder(Protocol):
    def encode_images(self, images: list[Any]) -> torch.Tensor: ...


@runtime_checkable
class TextEncoder(Protocol):
    def encode_texts(self, texts: list[str]) -> torch.Tensor: ...


class _FunctionTextEncoder:
    def __init__(self, fn: Callable[[list[str]], torch.Tensor]):
        self.fn = fn

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        return torch.as_tensor(self.fn(list(texts)))


def as_text_encoder(encoder: TextEncoder | Callable[[list[str]], torch.Tensor]) -> TextEncoder:
    """An object with `encode_texts`, or a plain function `texts -> (num_texts, dim)`, as a text encoder."""
    if isinstance(encoder, TextEncoder):
        return encoder
    if callable(encoder):
        return _FunctionTextEncoder(encoder)
    raise TypeError(f"text encoder must have encode_texts(texts) or be callable, got {type(encoder).__name__}")


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class Encoder:
    """An image encoder and a text encoder that embed into the same space.

    Attributes:
        image_encoder: Has `encode_images(images) -> (n, dim)`.
        text_encoder: Has `encode_texts(texts) -> (m, dim)`.
        name: Shown in reports and used as the card's model name.
    """

    image_encoder: ImageEncoder
    text_encoder: TextEncoder
    name: str = "model"

    def __post_init__(self) -> None:
        if not isinstance(self.image_encoder, ImageEncoder):
            raise TypeError(f"image_encoder needs encode_images(images), got {type(self.image_encoder).__name__}")
        self.text_encoder = as_text_encoder(self.text_encoder)

    def encode_images(self, images: list[Any]) -> torch.Tensor:
        """`(num_images, dim)` float32 CPU embeddings (not normalised)."""
        return self.image_encoder.encode_images(images).float().cpu()

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """`(num_texts, dim)` float32 CPU embeddings (not normalised)."""
        return self.text_encoder.encode_texts(list(texts)).float().cpu()

    def for_sensor(self, sensor: str) -> Encoder:
        """This encoder reading `(bands, H, W)` arrays of `sensor` (a `SENSOR_PRESETS` name)."""
        if sensor == "rgb":
            return self
        adapt = getattr(self.image_encoder, "for_sensor", None)
        if adapt is None:
            raise ValueError(
                f"image encoder {type(self.image_encoder).__name__} cannot read {sensor!r} band stacks; "
                "give it a for_sensor(sensor) method or evaluate an RGB dataset"
            )
        return Encoder(adapt(sensor), self.text_encoder, self.name)


# -------------------------------------------------------------------------------------------------- GRAFT
class GraftImageEncoder:
    """A GraftModel's image tower behind its `GraftImageProcessor` (sensor-aware: reads band stacks)."""

    def __init__(
        self, model: GraftModel, image_processor: GraftImageProcessor | None = None, device: str | torch.device = "cpu"
    ):
        self.device = _resolve_device(device)
        self.model = model.to(self.device).eval()
        self.image_processor = image_processor or GraftImageProcessor.from_graft_config(model.config)

    @torch.inference_mode()
    def encode_images(self, images: list[Any]) -> torch.Tensor:
        pixel_values = self.image_processor(list(images), return_tensors="pt")["pixel_values"]
        return self.model.get_image_features(pixel_values.to(self.device, self.model.dtype)).float().cpu()

    def for_sensor(self, sensor: str) -> GraftImageEncoder:
        current = self.image_processor
        if getattr(current, "sensor", None) == sensor:
            return self
        processor = GraftImageProcessor(
            size=current.size, image_mean=current.image_mean, image_std=current.image_std, sensor=sensor
        )
        logger.info("reading %s band stacks with the %s preset (model trained on %s)", sensor, sensor, current.sensor)
        return GraftImageEncoder(self.model, processor, self.device)


class GraftTextEncoder:
    """A GraftModel's (frozen CLIP) text tower with the CLIP tokenizer."""

    def __init__(
        self,
        model: GraftModel,
        tokenizer: PreTrainedTokenizerBase | GraftProcessor | None = None,
        device: str | torch.device = "cpu",
    ):
        self.device = _resolve_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = getattr(tokenizer, "tokenizer", tokenizer) or load_clip_tokenizer()

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        max_length = int(self.model.config.text_config.max_position_embeddings)
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        ids, mask = tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)
        return self.model.get_text_features(ids, mask).float().cpu()


def graft_encoder(
    model: GraftModel,
    processor: GraftProcessor | GraftImageProcessor | None = None,
    *,
    text_encoder: TextEncoder | Callable[[list[str]], torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    name: str | None = None,
) -> Encoder:
    """An :class:`Encoder` for a GraftModel.

    Args:
        model: A `GraftModel`.
        processor: A `GraftProcessor` or `GraftImageProcessor`; default: built from the model's config.
        text_encoder: A separate text encoder (e.g. the quickstart's MiniLM); default: the model's text tower.
        device: Where the model runs.
        name: Report name; default: the config's `_name_or_path` or `"graft"`.
    """
    image_processor = getattr(processor, "image_processor", processor)
    image = GraftImageEncoder(model, image_processor, device)
    text = (
        as_text_encoder(text_encoder)
        if text_encoder is not None
        else GraftTextEncoder(model, getattr(processor, "tokenizer", None), device)
    )
    label = name or Path(str(getattr(model.config, "_name_or_path", "") or "graft")).name or "graft"
    return Encoder(image, text, label)


# -------------------------------------------------------------------------------------------------- baselines
class TeacherImageEncoder:
    """The image tower of a `graft_hf.pairs.embed.Teacher` (transformers CLIP or open_clip); RGB only."""

    def __init__(self, teacher: Teacher, sensor: str = "rgb"):
        self.teacher, self.sensor = teacher, sensor

    def encode_images(self, images: list[Any]) -> torch.Tensor:
        rgb = [
            im.convert("RGB") if isinstance(im, Image.Image) else to_rgb_image(np.asarray(im), self.sensor)
            for im in images
        ]
        return self.teacher.embed_images(rgb)

    def for_sensor(self, sensor: str) -> TeacherImageEncoder:
        return TeacherImageEncoder(self.teacher, sensor)


class TeacherTextEncoder:
    """The text tower of a `graft_hf.pairs.embed.Teacher` (CLIP, open_clip or a sentence encoder)."""

    def __init__(self, teacher: Teacher):
        self.teacher = teacher

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        return self.teacher.embed_texts(list(texts))


def load_text_encoder(path: str, device: str | torch.device = "cpu") -> TextEncoder:
    """A text encoder from a directory: a sentence-transformers model (e.g. all-MiniLM-L6-v2) or a CLIP.

    Args:
        path: Local model directory (Hub ids need network).
        device: Where it runs.
    """
    return TeacherTextEncoder(load_teacher(path, device=str(_resolve_device(device))))


def _model_type(path: str) -> str | None:
    config = Path(path) / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("model_type")
    return None


def _offline_error(model: str, error: Exception) -> UnavailableSourceError:
    hint = "HF_HUB_OFFLINE is set, so Hub ids cannot be fetched; " if is_offline_mode() else ""
    return UnavailableSourceError(
        "model",
        f"could not load model {model!r}: {missing_folder_note(model)}{hint}download it where the Hub is reachable "
        f"(`hf download {model} --local-dir DIR`) and pass model=DIR "
        f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})",
    )


def _load_graft(model: str, device: torch.device, text_encoder: TextEncoder | None) -> Encoder:
    try:
        graft = GraftModel.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise _offline_error(model, error) from error
    try:
        processor = GraftProcessor.from_pretrained(model)
    except (OSError, ValueError, TypeError) as error:
        logger.info("no processor saved with %s (%s); building one from the config", model, type(error).__name__)
        processor = build_processor(graft.config)
    return graft_encoder(graft, processor, text_encoder=text_encoder, device=device, name=Path(model).name or model)


def _auto_baseline(model: str, arch: str | None, checkpoint: str | None) -> BaselineKind:
    """open_clip when an architecture or checkpoint is given, else from the directory's `config.json` model type."""
    if checkpoint or arch:
        return "open_clip"
    model_type = _model_type(model)
    if model_type not in (None, "graft", "clip"):
        raise ConfigError(
            "model",
            f"{model} holds a {model_type!r} model; pass a GRAFT or CLIP directory, or an open_clip baseline with "
            "its architecture and checkpoint",
        )
    return "transformers" if model_type == "clip" else "graft"


def _load_teacher(
    model: str,
    baseline: BaselineKind,
    arch: str | None,
    checkpoint: str | None,
    open_clip_config: str | None,
    device: torch.device,
) -> tuple[Teacher, str]:
    """A transformers CLIP or open_clip teacher (`graft_hf.pairs.embed.Teacher`) and its report name."""
    if baseline == "transformers":
        try:
            return load_teacher(model, kind="clip", device=str(device)), Path(model).name or model
        except RuntimeError as error:
            raise _offline_error(model, error) from error
    if baseline != "open_clip":
        raise ConfigError("baseline", f"unknown baseline {baseline!r}; use graft, transformers or open_clip")
    if not arch:
        raise ConfigError("arch", "open_clip baselines need an architecture (e.g. ViT-B-32) and a checkpoint file")
    if checkpoint and not Path(checkpoint).is_file():
        raise MissingPathError("checkpoint", f"open_clip checkpoint {checkpoint!r} not found; pass an existing file")
    teacher = load_teacher(
        arch, kind="open_clip", pretrained=checkpoint, open_clip_config=open_clip_config, device=str(device)
    )
    return teacher, Path(checkpoint).stem if checkpoint else arch


def load_encoder(
    model: str,
    *,
    baseline: BaselineKind = "auto",
    arch: str | None = None,
    checkpoint: str | None = None,
    open_clip_config: str | None = None,
    text_encoder: str | TextEncoder | None = None,
    device: str | torch.device = "cpu",
) -> Encoder:
    """Load any supported model as an :class:`Encoder`.

    Args:
        model: GraftModel or transformers CLIP directory / Hub id; for open_clip, a name for reports (the
            architecture is `arch`).
        baseline: `"graft"`, `"transformers"` (any `CLIPModel`), `"open_clip"`, or `"auto"` (from the
            directory's `config.json` `model_type`; open_clip when `checkpoint` is given).
        arch: open_clip architecture name (e.g. `"ViT-B-32"` for RemoteCLIP/GeoRSCLIP checkpoints).
        checkpoint: open_clip checkpoint path.
        open_clip_config: JSON file (or folder) of custom open_clip architectures to register first.
        text_encoder: A separate text encoder (object, or a directory for :func:`load_text_encoder`).
        device: Where the model runs (`"cpu"`, `"cuda"`, `"auto"`).

    Raises:
        FileNotFoundError: A checkpoint path that does not exist.
        RuntimeError: A Hub id that cannot be loaded (offline), naming the local-directory fix.
        ValueError: An unknown baseline kind or a missing `arch`.
    """
    if baseline != "open_clip" and checkpoint is None:  # an open_clip model is a name for reports
        check_local_or_hub("model", model, "model folder")
    torch_device = _resolve_device(device)
    text = load_text_encoder(text_encoder, torch_device) if isinstance(text_encoder, str) else text_encoder
    if baseline == "auto":
        baseline = _auto_baseline(model, arch, checkpoint)
    if baseline == "graft":
        return _load_graft(model, torch_device, text)
    teacher, name = _load_teacher(model, baseline, arch, checkpoint, open_clip_config, torch_device)
    return Encoder(TeacherImageEncoder(teacher), text or TeacherTextEncoder(teacher), name)
