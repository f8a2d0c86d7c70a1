"""GRAFT contrastive losses (Mall, Phoo et al., ICLR 2024, eqs. 2 and 3).

Both losses are one-directional: a satellite embedding (the whole image, or the ViT patch under a ground photo)
is scored against *every* ground embedding in the (global) batch, and its own photos are the positives.

Conventions shared by both losses:

* **Normalisation.** All embeddings are L2-normalised inside the loss, in float32, so callers may pass raw
  projected features (``get_image_features``) or already-normalised ones (``get_patch_features``; normalising
  twice is a no-op). Inputs in bf16/fp16 are upcast to float32 before any math.
* **Temperature.** Fixed, ``tau = 0.07`` by default; stored as the buffer ``logit_scale = 1 / tau`` like the
  authors' release (non-persistent: it is a hyper-parameter, not a weight).
* **Ragged photos.** Ground photos come padded to ``(batch, num_photos, dim)`` with a bool ``ground_mask`` of
  shape ``(batch, num_photos)`` (the batch contract of the loader). Padded slots are neither positives nor
  negatives. Images without photos contribute nothing; a batch without any photo raises ``ValueError``.
* **Distributed.** With ``world_size > 1`` each rank scores its *local* satellite embeddings against the ground
  embeddings gathered from every rank (open_clip's ``local_loss=True``, the only meaningful mode for a
  one-directional loss). Ranks may hold different ``batch``/``num_photos``: everything is padded to the global
  maximum before the gather and masks travel with the embeddings. The loss returned on each rank is
  ``world_size * (this rank's share of the global-batch loss)``, so that

  - the mean over ranks of the returned values equals the global-batch loss (``accelerator.gather(loss).mean()``),
  - DDP's gradient averaging yields exactly the gradient of the global-batch loss, also when ranks hold
    different numbers of photos or of images with photos.

  ``gather_with_grad=True`` gathers with ``torch.distributed.nn.functional.all_gather`` so gradients reach the
  ground embeddings of every rank (trainable ground side); otherwise the gather runs without autograd and only
  the local ground embeddings receive gradients (enough for frozen CLIP targets). ``gather_fn`` replaces the
  collective, e.g. to test the distributed path in one process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

GatherFn = Callable[[torch.Tensor], Sequence[torch.Tensor]]
"""A collective: takes this rank's tensor and returns one tensor per rank (same shape), in rank order."""

DEFAULT_TEMPERATURE = 0.07


def all_gather_no_grad(tensor: torch.Tensor) -> list[torch.Tensor]:
    """``torch.distributed.all_gather`` without autograd (the caller re-inserts the local tensor)."""
    import torch.distributed as dist

    tensor = tensor.contiguous()
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    with torch.no_grad():
        dist.all_gather(gathered, tensor)
    return gathered


def all_gather_with_grad(tensor: torch.Tensor) -> list[torch.Tensor]:
    """``torch.distributed.nn.functional.all_gather``: gradients flow back to every rank's tensor."""
    import torch.distributed.nn.functional as dist_fn

    return list(dist_fn.all_gather(tensor.contiguous()))


@dataclass
class GraftLossOutput:
    """Loss plus cheap diagnostics (all computed on this rank's satellite embeddings).

    Attributes:
        loss: Scalar loss to back-propagate (see the module docstring for the distributed scaling).
        accuracy: Fraction of this rank's anchors whose top-1 ground embedding in the global bank is a positive:
            for the image loss, one of the image's own photos; for the pixel loss, the photo itself. Detached.
        num_anchors: Number of local anchors that entered the loss (images with photos, or in-view photos).
        num_images: Number of local satellite images that contributed.
        num_ground: Size of the global bank of ground embeddings (the softmax denominator), negatives included.
    """

    loss: torch.Tensor
    accuracy: torch.Tensor
    num_anchors: torch.Tensor
    num_images: torch.Tensor
    num_ground: int

    def logs(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Detached scalars for logging, keys prefixed with ``prefix`` (e.g. ``"image_"``)."""
        return {
            f"{prefix}loss": self.loss.detach(),
            f"{prefix}accuracy": self.accuracy,
            f"{prefix}num_anchors": self.num_anchors.float(),
            f"{prefix}num_ground": torch.tensor(float(self.num_ground), device=self.loss.device),
        }


@dataclass
class _GroundBank:
    """The global set of valid ground embeddings plus the bookkeeping to find positives in it."""

    embeds: torch.Tensor  # (num_ground, dim) normalised float32, valid entries only, rank-major order
    owner: torch.Tensor  # (num_ground,) global image id (rank * max_batch + i) of each entry
    local_index: torch.Tensor  # (batch, num_photos) index into `embeds` of each local photo (0 where masked)
    local_image_ids: torch.Tensor  # (batch,) global image id of each local satellite image
    num_images_global: torch.Tensor  # () number of images with >= 1 anchor over all ranks


def patch_embeds_at_pixels(
    patch_embeds: torch.Tensor,
    pixel_coords: torch.Tensor,
    image_size: int | tuple[int, int],
) -> torch.Tensor:
    """Pick the patch embedding under each ground photo (nearest patch, vectorised).

    A photo at continuous pixel position ``(row, col)`` (``(0, 0)`` is the top-left corner of the top-left pixel)
    falls in patch ``(floor(row / patch_h), floor(col / patch_w))`` with ``patch_h = height / grid_h``; indices
    are clamped to the grid, and non-finite coordinates (padding) map to patch ``(0, 0)``. Mask out-of-view
    photos with ``ground_in_view`` afterwards: clamping only keeps the lookup in range.

    Args:
        patch_embeds: Patch embeddings, shape ``(batch, grid_h, grid_w, dim)``.
        pixel_coords: Photo positions ``(row, col)`` in input-image pixels, shape ``(batch, num_photos, 2)``.
        image_size: Input image size ``(height, width)`` (or one int for square images) in pixels.

    Returns:
        The patch embedding under each photo, shape ``(batch, num_photos, dim)``, same dtype as ``patch_embeds``.
    """
    if patch_embeds.ndim != 4:
        raise ValueError(
            f"patch_embeds must have shape (batch, grid_h, grid_w, dim), got {tuple(patch_embeds.shape)}; "
            "reshape (batch, num_patches, dim) tokens to the patch grid first"
        )
    batch, grid_h, grid_w, dim = patch_embeds.shape
    if pixel_coords.ndim != 3 or pixel_coords.shape[0] != batch or pixel_coords.shape[2] != 2:
        raise ValueError(
            f"ground_pixel_coords must have shape (batch={batch}, num_photos, 2) holding (row, col), "
            f"got {tuple(pixel_coords.shape)}"
        )
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size must be positive (height, width), got {image_size!r}")
    coords = torch.nan_to_num(pixel_coords.float(), nan=0.0, posinf=0.0, neginf=0.0)
    rows = torch.floor(coords[..., 0] * (grid_h / height)).long().clamp_(0, grid_h - 1)  # (batch, num_photos)
    cols = torch.floor(coords[..., 1] * (grid_w / width)).long().clamp_(0, grid_w - 1)
    flat_index = rows * grid_w + cols  # (batch, num_photos)
    flat_patches = patch_embeds.reshape(batch, grid_h * grid_w, dim)
    return torch.gather(flat_patches, 1, flat_index.unsqueeze(-1).expand(-1, -1, dim))


class _GraftContrastiveLoss(nn.Module):
    """Shared machinery: temperature buffer, input checks and the (optionally distributed) ground bank."""

    logit_scale: torch.Tensor  # buffer () = 1 / temperature

    def __init__(
        self,
        temperature: float = DEFAULT_TEMPERATURE,
        gather_with_grad: bool = False,
        rank: int = 0,
        world_size: int = 1,
        gather_fn: GatherFn | None = None,
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature} (the GRAFT default is 0.07)")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need world_size >= 1 and 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        self.temperature = float(temperature)
        self.register_buffer("logit_scale", torch.tensor(1.0 / temperature, dtype=torch.float32), persistent=False)
        self.gather_with_grad = gather_with_grad
        self.rank = rank
        self.world_size = world_size
        self.gather_fn = gather_fn

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, gather_with_grad={self.gather_with_grad}, "
            f"rank={self.rank}, world_size={self.world_size}"
        )

    @staticmethod
    def _check_ground(ground_embeds: torch.Tensor, ground_mask: torch.Tensor, batch: int, dim: int) -> None:
        if ground_embeds.ndim != 3 or ground_embeds.shape[0] != batch or ground_embeds.shape[2] != dim:
            raise ValueError(
                f"ground_embeds must have shape (batch={batch}, num_photos, dim={dim}), got {tuple(ground_embeds.shape)}"
            )
        if ground_mask.shape != ground_embeds.shape[:2]:
            raise ValueError(
                f"ground_mask must have shape (batch, num_photos) = {tuple(ground_embeds.shape[:2])} like "
                f"ground_embeds, got {tuple(ground_mask.shape)}"
            )
        if ground_mask.dtype != torch.bool:
            raise TypeError(f"ground_mask must be a bool tensor (True = real photo), got dtype {ground_mask.dtype}")

    def _gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        if self.gather_fn is not None:
            gathered = list(self.gather_fn(tensor))
        else:
            import torch.distributed as dist

            if not (dist.is_available() and dist.is_initialized()):
                raise RuntimeError(
                    f"world_size={self.world_size} but torch.distributed is not initialised; initialise the process "
                    "group (e.g. through accelerate) or pass gather_fn"
                )
            gathered = all_gather_with_grad(tensor) if self.gather_with_grad else all_gather_no_grad(tensor)
        if len(gathered) != self.world_size or any(t.shape != tensor.shape for t in gathered):
            raise RuntimeError(
                f"gather_fn must return world_size={self.world_size} tensors of shape {tuple(tensor.shape)}, got "
                f"{[tuple(t.shape) for t in gathered]}"
            )
        return gathered

    def _ground_bank(
        self, ground_embeds: torch.Tensor, ground_mask: torch.Tensor, anchor_mask: torch.Tensor, anchor_name: str
    ) -> _GroundBank:
        """Normalise and (if distributed) gather the ground embeddings of every rank.

        Args:
            ground_embeds: Local ground embeddings, shape ``(batch, num_photos, dim)``.
            ground_mask: Local real photos, shape ``(batch, num_photos)``.
            anchor_mask: Local photos that anchor a loss term, shape ``(batch, num_photos)``; only used to count
                images with at least one anchor over all ranks.
            anchor_name: How ``anchor_mask`` was built, for the error raised when it is empty on every rank.
        """
        batch, num_photos, dim = ground_embeds.shape
        device = ground_embeds.device
        ground = F.normalize(ground_embeds.float(), dim=-1)
        if self.world_size == 1:
            gathered_ground, gathered_mask = ground, ground_mask
            gathered_anchor = anchor_mask
            max_batch, max_photos = batch, num_photos
        else:
            sizes = torch.tensor([batch, num_photos, dim], dtype=torch.long, device=device)
            all_sizes = torch.stack([t.to(device) for t in self._gather(sizes)])  # (world_size, 3)
            if (all_sizes[:, 2] != dim).any():
                raise ValueError(f"embedding dim differs across ranks: {all_sizes[:, 2].tolist()}")
            max_batch, max_photos = (int(v) for v in all_sizes[:, :2].max(dim=0).values)
            # One collective for embeddings and both masks: pack the masks as two extra channels.
            packed = torch.cat([ground, ground_mask.unsqueeze(-1).float(), anchor_mask.unsqueeze(-1).float()], dim=-1)
            packed = F.pad(packed, (0, 0, 0, max_photos - num_photos, 0, max_batch - batch))  # zero pad = masked
            gathered = self._gather(packed)
            if not self.gather_with_grad:
                gathered[self.rank] = packed  # the local chunk keeps its autograd history
            everything = torch.cat(gathered, dim=0)  # (world_size * max_batch, max_photos, dim + 2)
            gathered_ground = everything[..., :dim]
            gathered_mask = everything[..., dim] > 0.5
            gathered_anchor = everything[..., dim + 1] > 0.5

        num_images_global = gathered_anchor.any(dim=1).sum()
        if int(num_images_global) == 0:  # the same value on every rank, so all ranks raise together
            raise ValueError(
                f"no ground photo to anchor the loss in the whole batch ({anchor_name} is all False); "
                "drop tiles without photos in the data loader or skip the step"
            )
        flat_mask = gathered_mask.reshape(-1)  # (world_size * max_batch * max_photos,)
        owner = torch.arange(gathered_mask.shape[0], device=device).repeat_interleave(max_photos)[flat_mask]
        bank_position = torch.cumsum(flat_mask.long(), 0) - 1  # padded position -> index among valid entries
        local_ids = self.rank * max_batch + torch.arange(batch, device=device)  # (batch,)
        padded_index = local_ids.unsqueeze(1) * max_photos + torch.arange(num_photos, device=device)
        local_index = torch.where(ground_mask, bank_position[padded_index], 0)  # (batch, num_photos)
        return _GroundBank(
            embeds=gathered_ground.reshape(-1, dim)[flat_mask],
            owner=owner,
            local_index=local_index,
            local_image_ids=local_ids,
            num_images_global=num_images_global,
        )

    def _reduce(self, per_image: torch.Tensor, image_valid: torch.Tensor, bank: _GroundBank) -> torch.Tensor:
        """Sum the local per-image losses with weight ``world_size / (images with anchors over all ranks)``."""
        weight = self.world_size / bank.num_images_global.to(per_image.dtype)
        # `where`, not boolean indexing, keeps the graph connected when this rank has no anchor (DDP needs that).
        return torch.where(image_valid, per_image, 0.0).sum() * weight


class GraftImageLoss(_GraftContrastiveLoss):
    """Image-level GRAFT loss (paper eq. 2).

    For satellite image ``i`` with ``N_i`` ground photos::

        L = mean_{i: N_i > 0} mean_{j < N_i} -log softmax_{(a, b)}(s_i . g_ab / tau)[(i, j)]

    where ``(a, b)`` runs over every real ground photo of the (global) batch. With one photo per image this is
    CLIP's image-to-text loss ``cross_entropy(image @ text.T / tau, arange(batch))``. Use it with
    ``ground_text_embeds`` as targets for an auxiliary text term.

    Args:
        temperature: Softmax temperature ``tau`` (``logit_scale = 1 / tau``).
        gather_with_grad: Gather ground embeddings with autograd (trainable ground side).
        rank: This process's rank.
        world_size: Number of processes; ground embeddings are gathered from all of them when > 1.
        gather_fn: Collective replacing ``torch.distributed`` all-gather (see ``GatherFn``); it must return
            tensors carrying gradients exactly when ``gather_with_grad`` is set.
    """

    def forward(
        self, image_embeds: torch.Tensor, ground_embeds: torch.Tensor, ground_mask: torch.Tensor
    ) -> torch.Tensor:
        """Compute the loss.

        Args:
            image_embeds: Satellite image embeddings (normalised inside), shape ``(batch, dim)``.
            ground_embeds: Ground photo embeddings (normalised inside), shape ``(batch, num_photos, dim)``.
            ground_mask: ``True`` for real photos, shape ``(batch, num_photos)``.

        Returns:
            Scalar float32 loss.
        """
        return self.compute(image_embeds, ground_embeds, ground_mask).loss

    def compute(
        self, image_embeds: torch.Tensor, ground_embeds: torch.Tensor, ground_mask: torch.Tensor
    ) -> GraftLossOutput:
        """Same inputs as ``forward``; returns the loss together with diagnostics."""
        if image_embeds.ndim != 2:
            raise ValueError(f"image_embeds must have shape (batch, dim), got {tuple(image_embeds.shape)}")
        batch, dim = image_embeds.shape
        if batch == 0 and self.world_size == 1:
            raise ValueError("empty batch: image_embeds has shape (0, dim); there is nothing to compute a loss on")
        self._check_ground(ground_embeds, ground_mask, batch, dim)
        bank = self._ground_bank(ground_embeds, ground_mask, anchor_mask=ground_mask, anchor_name="ground_mask")

        sat = F.normalize(image_embeds.float(), dim=-1)
        logits = self.logit_scale * sat @ bank.embeds.T  # (batch, num_ground)
        log_norm = torch.logsumexp(logits, dim=-1)  # (batch,)
        positive = torch.gather(logits, 1, bank.local_index)  # (batch, num_photos), garbage where masked
        num_photos = ground_mask.sum(dim=1)  # (batch,)
        mean_positive = torch.where(ground_mask, positive, 0.0).sum(dim=1) / num_photos.clamp(min=1)
        image_valid = num_photos > 0
        loss = self._reduce(log_norm - mean_positive, image_valid, bank)

        with torch.no_grad():
            hit = bank.owner[logits.argmax(dim=-1)] == bank.local_image_ids  # top-1 is one of the image's photos
            num_valid = image_valid.sum()
            accuracy = (hit & image_valid).sum() / num_valid.clamp(min=1)
        return GraftLossOutput(loss, accuracy.float(), num_valid, num_valid, int(bank.embeds.shape[0]))


class GraftPixelLoss(_GraftContrastiveLoss):
    """Pixel-level GRAFT loss (paper eq. 3).

    For each real, in-view photo ``j`` of image ``i``, the patch embedding ``p_ij`` under the photo is scored
    against every real ground photo of the (global) batch, the photo itself being the positive::

        L = mean_{i: M_i > 0} mean_{j in view} -log softmax_{(a, b)}(p_ij . g_ab / tau)[(i, j)]

    ``M_i`` counts image ``i``'s real in-view photos. Out-of-view photos are still negatives for the others.

    Args:
        image_size: Default input image size ``(height, width)`` (or an int) of the pixel coordinates.
        temperature, gather_with_grad, rank, world_size, gather_fn: As in ``GraftImageLoss``.
    """

    def __init__(
        self,
        temperature: float = DEFAULT_TEMPERATURE,
        gather_with_grad: bool = False,
        rank: int = 0,
        world_size: int = 1,
        gather_fn: GatherFn | None = None,
        image_size: int | tuple[int, int] = 224,
    ) -> None:
        super().__init__(temperature, gather_with_grad, rank, world_size, gather_fn)
        self.image_size = image_size

    def forward(
        self,
        patch_embeds: torch.Tensor,
        ground_embeds: torch.Tensor,
        ground_mask: torch.Tensor,
        ground_pixel_coords: torch.Tensor,
        ground_in_view: torch.Tensor | None = None,
        image_size: int | tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Compute the loss.

        Args:
            patch_embeds: Satellite patch embeddings (normalised inside), shape ``(batch, grid_h, grid_w, dim)``.
            ground_embeds: Ground photo embeddings (normalised inside), shape ``(batch, num_photos, dim)``.
            ground_mask: ``True`` for real photos, shape ``(batch, num_photos)``.
            ground_pixel_coords: Photo ``(row, col)`` in input-image pixels, shape ``(batch, num_photos, 2)``.
            ground_in_view: ``True`` for photos inside the (augmented) view, shape ``(batch, num_photos)``;
                ``None`` means all in view.
            image_size: Input image size; defaults to the constructor's ``image_size``.

        Returns:
            Scalar float32 loss.
        """
        return self.compute(
            patch_embeds, ground_embeds, ground_mask, ground_pixel_coords, ground_in_view, image_size
        ).loss

    def compute(
        self,
        patch_embeds: torch.Tensor,
        ground_embeds: torch.Tensor,
        ground_mask: torch.Tensor,
        ground_pixel_coords: torch.Tensor,
        ground_in_view: torch.Tensor | None = None,
        image_size: int | tuple[int, int] | None = None,
    ) -> GraftLossOutput:
        """Same inputs as ``forward``; returns the loss together with diagnostics."""
        if patch_embeds.ndim != 4:
            raise ValueError(
                f"patch_embeds must have shape (batch, grid_h, grid_w, dim), got {tuple(patch_embeds.shape)}"
            )
        batch, _, _, dim = patch_embeds.shape
        if batch == 0 and self.world_size == 1:
            raise ValueError("empty batch: patch_embeds has batch size 0; there is nothing to compute a loss on")
        self._check_ground(ground_embeds, ground_mask, batch, dim)
        if ground_in_view is None:
            ground_in_view = torch.ones_like(ground_mask)
        if ground_in_view.shape != ground_mask.shape or ground_in_view.dtype != torch.bool:
            raise ValueError(
                f"ground_in_view must be a bool tensor of shape (batch, num_photos) = {tuple(ground_mask.shape)}, "
                f"got {ground_in_view.dtype} {tuple(ground_in_view.shape)}"
            )
        if ground_pixel_coords.shape != (*ground_mask.shape, 2):
            raise ValueError(
                f"ground_pixel_coords must have shape (batch, num_photos, 2) = {(*ground_mask.shape, 2)}, "
                f"got {tuple(ground_pixel_coords.shape)}"
            )
        anchor_mask = ground_mask & ground_in_view  # (batch, num_photos)
        bank = self._ground_bank(
            ground_embeds, ground_mask, anchor_mask=anchor_mask, anchor_name="ground_mask & ground_in_view"
        )

        picked = patch_embeds_at_pixels(
            patch_embeds, ground_pixel_coords, self.image_size if image_size is None else image_size
        )
        pixel = F.normalize(picked.float(), dim=-1)  # (batch, num_photos, dim)
        logits = self.logit_scale * pixel @ bank.embeds.T  # (batch, num_photos, num_ground)
        log_norm = torch.logsumexp(logits, dim=-1)  # (batch, num_photos)
        positive = torch.gather(logits, 2, bank.local_index.unsqueeze(-1)).squeeze(-1)  # (batch, num_photos)
        per_photo = torch.where(anchor_mask, log_norm - positive, 0.0)
        num_anchors = anchor_mask.sum(dim=1)  # (batch,)
        image_valid = num_anchors > 0
        per_image = per_photo.sum(dim=1) / num_anchors.clamp(min=1)
        loss = self._reduce(per_image, image_valid, bank)

        with torch.no_grad():
            hit = logits.argmax(dim=-1) == bank.local_index  # top-1 is the photo itself
            total_anchors = anchor_mask.sum()
            accuracy = (hit & anchor_mask).sum() / total_anchors.clamp(min=1)
        return GraftLossOutput(loss, accuracy.float(), total_anchors, image_valid.sum(), int(bank.embeds.shape[0]))
