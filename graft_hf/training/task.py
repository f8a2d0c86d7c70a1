"""The GRAFT training task: student + frozen teacher + contrastive loss in one module returning ``(losses, logs)``.

The loop only sums ``losses`` and logs ``logs``; everything GRAFT-specific (which embedding of the student, where
the targets come from, which loss) lives here. Targets are either precomputed photo embeddings from the shards
(``batch["ground_embeds"]``) or computed by the frozen teacher CLIP under ``no_grad`` from
``batch["ground_pixel_values"]`` in half precision. On-the-fly targets are rounded to float16 exactly like the
embeddings stored in the shards, so both routes give the same targets for the same teacher.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch
from huggingface_hub import is_offline_mode
from PIL import Image
from torch import nn
from transformers import CLIPModel
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from graft_hf.losses import GraftImageLoss, GraftLossOutput, GraftPixelLoss
from graft_hf.modeling import GraftConfig, GraftModel, GraftOutput
from graft_hf.pairs.loader import render_batch_views

logger = logging.getLogger(__name__)

__all__ = [
    "ClipPhotoPreprocess",
    "GraftTrainingTask",
    "TeacherLoadError",
    "batch_to_device",
    "build_student",
    "freeze_unused_heads",
    "load_teacher_clip",
]

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class ClipPhotoPreprocess:
    """CLIP's photo preprocessing: bicubic resize of the short side, centre crop, normalise (picklable).

    Args:
        image_size: Output side in pixels (the teacher's ``vision_config.image_size``).
        mean: Per-channel mean.
        std: Per-channel standard deviation.
    """

    def __init__(
        self,
        image_size: int,
        mean: tuple[float, float, float] = tuple(OPENAI_CLIP_MEAN),
        std: tuple[float, float, float] = tuple(OPENAI_CLIP_STD),
    ) -> None:
        self.image_size = int(image_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Return the photo as a ``(3, image_size, image_size)`` float32 normalised tensor."""
        image = image.convert("RGB")
        width, height = image.size
        scale = self.image_size / min(width, height)
        new_w, new_h = max(self.image_size, round(width * scale)), max(self.image_size, round(height * scale))
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
        left, top = (new_w - self.image_size) // 2, (new_h - self.image_size) // 2
        image = image.crop((left, top, left + self.image_size, top + self.image_size))
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
        return (pixels - self.mean) / self.std


class TeacherLoadError(OSError):
    """The teacher CLIP named by ``teacher.name_or_path`` could not be loaded.

    Attributes:
        name_or_path: The value that failed.
    """

    def __init__(self, name_or_path: str | os.PathLike, reason: str) -> None:
        self.name_or_path = str(name_or_path)
        super().__init__(reason)


def load_teacher_clip(name_or_path: str | os.PathLike) -> CLIPModel:
    """Load the teacher ``CLIPModel`` (frozen, eval mode).

    Raises:
        TeacherLoadError: It cannot be loaded; the message names the config key to change.
    """
    try:
        clip = CLIPModel.from_pretrained(name_or_path)
    except (OSError, ValueError) as err:
        offline = " (offline mode is on, so Hub ids cannot be downloaded)" if is_offline_mode() else ""
        raise TeacherLoadError(
            name_or_path,
            f"could not load the teacher CLIP {str(name_or_path)!r}{offline}. Download it where the Hub is reachable "
            f"(`hf download {name_or_path} --local-dir DIR`) and set teacher.name_or_path to the local DIR. "
            f"Underlying error: {err}",
        ) from err
    clip.requires_grad_(False)
    return clip.eval()


def build_student(
    init: str,
    *,
    clip: CLIPModel | None = None,
    use_patch_head: bool = True,
    sensor: str = "naip",
    config_overrides: dict[str, Any] | None = None,
) -> GraftModel:
    """The student: a copy of the teacher CLIP (``from_clip``) or a random model from a ``GraftConfig``.

    Args:
        init: ``from_clip`` or ``scratch``.
        clip: The teacher ``CLIPModel`` (``from_clip`` only).
        use_patch_head: Build the pixel-level patch head.
        sensor: Sensor preset of the model.
        config_overrides: ``GraftConfig`` keyword arguments.
    """
    overrides = dict(config_overrides or {})
    if init == "from_clip":
        if clip is None:
            raise ValueError("student.init=from_clip needs the teacher CLIP")
        model = GraftModel.from_clip(clip, use_patch_head=use_patch_head, sensor=sensor, **overrides)
        return model.float()
    if init == "scratch":
        overrides.setdefault("sensor", sensor)
        overrides["use_patch_head"] = use_patch_head
        return GraftModel(GraftConfig(**overrides))
    raise ValueError(f"student.init must be 'from_clip' or 'scratch', got {init!r}")


def freeze_unused_heads(student: GraftModel, task: str) -> None:
    """Freeze the parameters the task's loss never reaches, so DDP needs no unused-parameter search.

    The image task does not use the patch head; the pixel task does not use CLIP's ``post_layernorm`` and
    ``visual_projection`` (they only feed the pooled image embedding). Frozen, they keep their initial values.
    """
    if task == "image" and student.patch_head is not None:
        student.patch_head.requires_grad_(False)
    elif task == "pixel":
        vision = student.vision_model
        # transformers 5 flattened CLIPVisionModel (no inner `vision_model`); 4.x nests it.
        post_layernorm = (
            vision.post_layernorm if hasattr(vision, "post_layernorm") else vision.vision_model.post_layernorm
        )
        post_layernorm.requires_grad_(False)
        student.visual_projection.requires_grad_(False)


def batch_to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch with its tensors moved to ``device`` (``tile_id`` and other lists stay), views rendered there.

    A ``geometry="batched"`` batch (8-bit crops and view parameters) is resampled and normalised on ``device`` in
    one pass (:func:`graft_hf.pairs.loader.render_batch_views`), so DataLoader workers only decode and collate.
    """
    moved = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    return render_batch_views(moved)


class GraftTrainingTask(nn.Module):
    """Student, frozen teacher and GRAFT loss; ``forward(batch) -> (losses, logs)``.

    The teacher is deliberately *not* a registered submodule: it is not trained, not checkpointed and not
    wrapped by DDP. Move it with :meth:`to_device`.

    Args:
        student: The trained ``GraftModel`` (or a peft wrapper of it).
        teacher: Teacher ``CLIPModel`` for on-the-fly targets, or ``None`` when targets are precomputed.
        task: ``image`` (eq. 2, pooled image embedding) or ``pixel`` (eq. 3, patch under each photo).
        text_weight: Weight of the auxiliary loss on ``batch["ground_text_embeds"]`` (0: none).
        temperature: Contrastive temperature.
        rank: This process's rank (for the global negatives).
        world_size: Processes whose ground embeddings are gathered as negatives (1: local batch only).
        teacher_dtype: Precision of the teacher forward pass.
    """

    teacher: CLIPModel | None  # not a registered submodule

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module | None = None,
        task: str = "image",
        text_weight: float = 0.0,
        temperature: float = 0.07,
        rank: int = 0,
        world_size: int = 1,
        teacher_dtype: str = "float16",
    ) -> None:
        super().__init__()
        if task not in ("image", "pixel"):
            raise ValueError(f"task must be 'image' or 'pixel', got {task!r}")
        self.student = student
        self.task = task
        self.text_weight = float(text_weight)
        self.teacher_dtype = _DTYPES[teacher_dtype]
        object.__setattr__(self, "teacher", None)
        if teacher is not None:
            object.__setattr__(self, "teacher", teacher.to(self.teacher_dtype).eval().requires_grad_(False))
        self.loss: GraftImageLoss | GraftPixelLoss = (
            GraftImageLoss(temperature=temperature, rank=rank, world_size=world_size)
            if task == "image"
            else GraftPixelLoss(temperature=temperature, rank=rank, world_size=world_size)
        )

    def to_device(self, device: torch.device | str) -> GraftTrainingTask:
        """Move the (unregistered) teacher as well as the module."""
        self.to(device)
        if self.teacher is not None:
            self.teacher.to(device)
        return self

    @torch.no_grad()
    def teacher_embeds(self, ground_pixel_values: torch.Tensor, ground_mask: torch.Tensor) -> torch.Tensor:
        """Teacher CLIP image embeddings of the real photos, rounded to float16 like stored targets.

        Args:
            ground_pixel_values: Photos, shape ``(batch, num_photos, 3, height, width)``.
            ground_mask: Real photos, shape ``(batch, num_photos)``.

        Returns:
            Targets of shape ``(batch, num_photos, dim)``, float32, zeros on padding.
        """
        if self.teacher is None:
            raise ValueError(
                "the batch has ground_pixel_values but no teacher was given: pass teacher.name_or_path or "
                "train on shards with precomputed embeddings"
            )
        batch, num_photos = ground_mask.shape
        photos = ground_pixel_values[ground_mask]  # (num_real, 3, height, width)
        # The teacher runs in its own precision, outside the student's autocast.
        with torch.autocast(device_type=photos.device.type, enabled=False):
            pooled = self.teacher.vision_model(pixel_values=photos.to(self.teacher_dtype)).pooler_output
            embeds = self.teacher.visual_projection(pooled)  # (num_real, dim)
        embeds = embeds.to(torch.float16).float()
        out = embeds.new_zeros(batch, num_photos, embeds.shape[-1])
        out[ground_mask] = embeds
        return out

    def targets(self, batch: dict[str, Any]) -> torch.Tensor:
        """The ground targets ``(batch, num_photos, dim)``: precomputed, else from the teacher."""
        if "ground_embeds" in batch:
            return batch["ground_embeds"].float()
        if "ground_pixel_values" in batch:
            return self.teacher_embeds(batch["ground_pixel_values"], batch["ground_mask"])
        raise KeyError("the batch has neither ground_embeds nor ground_pixel_values (see the loader's contract)")

    def _loss(self, student_out: GraftOutput, ground: torch.Tensor, batch: dict[str, Any]) -> GraftLossOutput:
        if isinstance(self.loss, GraftImageLoss):
            return self.loss.compute(student_out.image_embeds, ground, batch["ground_mask"])
        pixel_values = batch["pixel_values"]
        return self.loss.compute(
            student_out.patch_embeds,
            ground,
            batch["ground_mask"],
            batch["ground_pixel_coords"],
            batch["ground_in_view"],
            image_size=(pixel_values.shape[-2], pixel_values.shape[-1]),
        )

    def forward(self, batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Compute the losses of one batch (see the loader's batch contract).

        Returns:
            ``losses``: named scalar terms whose sum is back-propagated (already weighted);
            ``logs``: detached scalars (losses, top-1 accuracy, anchor counts).
        """
        ground = self.targets(batch)
        student_out = self.student(pixel_values=batch["pixel_values"], output_patch_embeds=self.task == "pixel")
        result = self._loss(student_out, ground, batch)
        losses = {"contrastive": result.loss}
        logs = result.logs(prefix=f"{self.task}_")
        if self.text_weight > 0 and "ground_text_embeds" in batch:
            text_result = self._loss(student_out, batch["ground_text_embeds"].float(), batch)
            losses["text"] = self.text_weight * text_result.loss
            logs.update(text_result.logs(prefix="text_"))
        return losses, logs
