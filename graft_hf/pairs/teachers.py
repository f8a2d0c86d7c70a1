"""Frozen teachers whose embeddings the student learns to match: CLIP, open_clip and sentence encoders.

:func:`load_teacher` picks the kind from the reference:

* a transformers CLIP directory or Hub id -> ``CLIPModel.get_image_features`` for photos, its text transformer and
  projection as a ``GraftTextTower`` for texts;
* an open_clip model name + checkpoint path -> ``open_clip.create_model_and_transforms(name, pretrained=path)``;
* a sentence encoder directory (e.g. all-MiniLM-L6-v2, in sentence-transformers' layout) -> a ``GraftTextTower``
  read by :func:`graft_hf.text_towers.load_text_tower`, text only: the same tower a student trained on its
  embeddings is saved with, so the targets and the saved model's text embeddings come from one implementation.

Errors are :class:`TeacherLoadError` naming the parameter to change (the ``graft`` command line names its flag).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from huggingface_hub import is_offline_mode
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer, CLIPModel

from graft_hf.config import ConfigError
from graft_hf.modeling import GraftTextTower
from graft_hf.text_towers import TextTowerError, load_text_tower

from .config import TeacherKind

if TYPE_CHECKING:
    from transformers import BaseImageProcessor, PreTrainedTokenizerBase

__all__ = ["ClipTeacher", "OpenClipTeacher", "SentenceTeacher", "Teacher", "TeacherLoadError", "load_teacher"]


class TeacherLoadError(RuntimeError):
    """A teacher cannot be loaded.

    Attributes:
        key: The :func:`load_teacher` parameter (and :class:`EmbedConfig` field) to change.
        reason: What went wrong and the fix, without the key.
    """

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


class Teacher:
    """A frozen encoder of photos and/or texts.

    Attributes:
        teacher_id: Identity recorded in the shards (resume skips shards with the same id and dim).
        dim: Embedding size.
        device: Where the model runs.
        has_image_tower: Whether it embeds photos (text-only encoders do not).
    """

    teacher_id: str
    dim: int
    device: torch.device
    has_image_tower: bool = True

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One RGB photo to the teacher's input, shape ``(3, height, width)`` (the loader's on-the-fly path)."""
        raise ValueError(f"teacher {self.teacher_id!r} has no image tower; it embeds text only")

    def embed_pixel_values(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image embeddings, ``(batch, 3, H, W)`` -> ``(batch, dim)``, not normalised."""
        raise ValueError(f"teacher {self.teacher_id!r} has no image tower; it embeds text only")

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Text embeddings, ``batch`` strings -> ``(batch, dim)`` float32 on the CPU (not necessarily normalised)."""
        raise ValueError(f"teacher {self.teacher_id!r} has no text tower; use a CLIP, open_clip or text encoder")

    def preprocess_batch(self, images: list[Image.Image]) -> torch.Tensor:
        """RGB photos to the teacher's input, shape ``(batch, 3, height, width)`` (equal to stacked ``preprocess``)."""
        return torch.stack([self.preprocess(image) for image in images])

    @torch.inference_mode()
    def embed_images(self, images: list[Image.Image]) -> torch.Tensor:
        """Image embeddings of RGB photos, ``(batch, dim)`` float32 on the CPU, not normalised."""
        pixel_values = self.preprocess_batch(images).to(self.device)
        return self.embed_pixel_values(pixel_values).float().cpu()


def _features(output: torch.Tensor | object) -> torch.Tensor:
    # transformers 5 returns a ModelOutput whose pooler_output is the projected embedding.
    return output if isinstance(output, torch.Tensor) else output.pooler_output  # type: ignore[attr-defined]


class ClipTeacher(Teacher):
    """transformers ``CLIPModel`` (directory or Hub id) with its image processor and tokenizer (loaded on first use)."""

    def __init__(self, spec: str, device: torch.device, teacher_id: str):
        self.spec, self.device, self.teacher_id = spec, device, teacher_id
        self.model = CLIPModel.from_pretrained(spec).eval()
        self.model.to(device)  # type: ignore[arg-type]
        self.text_tower = GraftTextTower(self.model.text_model, self.model.text_projection)
        self.dim = int(self.model.config.projection_dim)
        self._processor: BaseImageProcessor | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None

    def _load_part(self, auto_class: type, what: str, example: str) -> BaseImageProcessor | PreTrainedTokenizerBase:
        try:
            return auto_class.from_pretrained(self.spec)  # type: ignore[attr-defined]
        except (OSError, ValueError) as error:
            raise TeacherLoadError(
                "teacher", f"no {what} in {self.spec!r}: save one next to the model ({example}) ({error})"
            ) from error

    def _image_processor(self) -> BaseImageProcessor:
        if self._processor is None:
            self._processor = self._load_part(
                AutoImageProcessor, "image processor", "CLIPImageProcessor().save_pretrained(dir)"
            )
        return self._processor

    def _text_tokenizer(self) -> PreTrainedTokenizerBase:
        if self._tokenizer is None:
            self._tokenizer = self._load_part(
                AutoTokenizer, "tokenizer", "e.g. graft_hf.tokenizer.load_clip_tokenizer().save_pretrained(dir)"
            )
        return self._tokenizer

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self._image_processor()(images=image, return_tensors="pt")["pixel_values"][0]

    def preprocess_batch(self, images: list[Image.Image]) -> torch.Tensor:
        # One processor call per batch (same-size images are normalised as one tensor): the values of per-image calls.
        return self._image_processor()(images=images, return_tensors="pt")["pixel_values"]

    def embed_pixel_values(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return _features(self.model.get_image_features(pixel_values=pixel_values))

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        return self.text_tower.encode(texts, self._text_tokenizer()).float().cpu()


class OpenClipTeacher(Teacher):
    """An open_clip model built by name and loaded from a local checkpoint."""

    def __init__(self, name: str, pretrained: str | None, device: torch.device, teacher_id: str):
        import open_clip  # about 2 s; only this teacher needs it

        self.device, self.teacher_id = device, teacher_id
        try:
            model, _, self._transform = open_clip.create_model_and_transforms(name, pretrained=pretrained)
        except RuntimeError as error:
            raise TeacherLoadError(
                "pretrained",
                f"could not build open_clip model {name!r} with pretrained={pretrained!r}: give the checkpoint's "
                f"local path (weights cannot be downloaded here) and, for a custom architecture, its JSON config as "
                f"open_clip_config ({error})",
            ) from error
        self.model = model.to(device).eval()
        self._tokenizer = open_clip.get_tokenizer(name)
        config = open_clip.get_model_config(name) or {}
        self.dim = int(config.get("embed_dim") or self.model.text_projection.shape[-1])

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self._transform(image)

    def embed_pixel_values(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixel_values)

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self._tokenizer(texts).to(self.device)).float().cpu()


class SentenceTeacher(Teacher):
    """A sentence encoder folder (e.g. all-MiniLM-L6-v2: BERT, attention-masked mean pooling, unit norm) as a
    ``GraftTextTower`` (:func:`graft_hf.text_towers.load_text_tower`); text only.

    A plain transformers text encoder directory (no ``modules.json``) gets mean pooling without normalisation, as
    sentence-transformers does for such a folder.
    """

    has_image_tower = False

    def __init__(self, spec: str, device: torch.device, teacher_id: str):
        self.device, self.teacher_id = device, teacher_id
        try:
            loaded = load_text_tower(spec, device)
        except TextTowerError as error:
            raise TeacherLoadError("teacher", str(error)) from error
        self.tower, self.tokenizer, self.name = loaded.tower, loaded.tokenizer, loaded.name
        self.dim = loaded.tower.output_dim

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        return self.tower.encode(texts, self.tokenizer).float().cpu()


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _load_open_clip(
    teacher: str, pretrained: str | None, open_clip_config: str | None, device: torch.device, teacher_id: str | None
) -> Teacher:
    import open_clip  # about 2 s; only this teacher needs it

    if open_clip_config:
        open_clip.add_model_config(open_clip_config)
    if pretrained and not Path(pretrained).exists():
        raise TeacherLoadError("pretrained", f"open_clip checkpoint {pretrained!r} not found: pass an existing file")
    reference = f"{teacher}:{Path(pretrained).resolve() if pretrained else 'random'}"
    return OpenClipTeacher(teacher, pretrained, device, teacher_id or f"open_clip:{reference}")


def load_teacher(
    teacher: str,
    kind: TeacherKind = "auto",
    pretrained: str | None = None,
    open_clip_config: str | None = None,
    device: str = "auto",
    teacher_id: str | None = None,
) -> Teacher:
    """Load a frozen teacher.

    Args:
        teacher: transformers CLIP or text-encoder directory / Hub id, or an open_clip model name.
        kind: ``"clip"``, ``"open_clip"``, ``"sentence"`` or ``"auto"`` (open_clip when ``pretrained`` or
            ``open_clip_config`` is given, else the ``model_type`` of the directory's ``config.json``).
        pretrained: open_clip checkpoint path.
        open_clip_config: JSON file (or folder of them) of custom open_clip model configs to register first.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        teacher_id: Identity recorded in the shards (default: kind + model reference).

    Returns:
        The teacher, in eval mode.

    Raises:
        TeacherLoadError: The model cannot be loaded (e.g. a Hub id while offline, a missing checkpoint); its
            ``key`` names the parameter to change.
    """
    torch_device = _resolve_device(device)
    if kind == "auto":
        kind = "open_clip" if pretrained or open_clip_config else _detect_kind(teacher)
    if kind == "open_clip":
        return _load_open_clip(teacher, pretrained, open_clip_config, torch_device, teacher_id)
    reference = str(Path(teacher).resolve()) if Path(teacher).exists() else teacher
    loaders: dict[str, Callable[[str, torch.device, str], Teacher]] = {"clip": ClipTeacher, "sentence": SentenceTeacher}
    if kind not in loaders:
        raise ConfigError("kind", f"unknown teacher kind {kind!r}: use auto, clip, open_clip or sentence")
    try:
        return loaders[kind](teacher, torch_device, teacher_id or f"{kind}:{reference}")
    except (OSError, ValueError) as error:
        raise _load_error(teacher, error) from error


def _load_error(teacher: str, error: Exception) -> TeacherLoadError:
    fix = "Models cannot be downloaded in offline mode: pass" if is_offline_mode() else "Pass"
    return TeacherLoadError(
        "teacher",
        f"could not load teacher {teacher!r} ({type(error).__name__}: {str(error).splitlines()[0]}). "
        f"{fix} a local model directory (a saved CLIPModel or sentence-transformers text encoder, e.g. "
        "/path/to/clip), or an open_clip model name with its checkpoint as pretrained",
    )


def _detect_kind(teacher: str) -> TeacherKind:
    try:
        model_type = AutoConfig.from_pretrained(teacher).model_type
    except (OSError, ValueError) as error:
        raise _load_error(teacher, error) from error
    return "clip" if model_type == "clip" else "sentence"
