"""Validation during training: the contrastive loss and retrieval recall@k on a held-out split.

Image task: each tile's image embedding retrieves its tile among the mean ground embeddings of all tiles. Pixel
task: the patch under each in-view photo retrieves that photo among all photos of the split. Recall uses
:func:`graft_hf.evaluation.metrics.single_positive_recall`, so validation ranks like ``graft eval`` (ties: the lower
gallery index first).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from graft_hf.evaluation.metrics import single_positive_recall
from graft_hf.losses import GraftImageLoss, GraftPixelLoss, patch_embeds_at_pixels
from graft_hf.training.task import GraftTrainingTask, batch_to_device

if TYPE_CHECKING:
    from graft_hf.modeling import GraftOutput

__all__ = ["evaluate"]

#: One batch's ``(loss or None, queries (n, dim), index of each query's positive in the gallery (n,), gallery rows)``.
_BatchRetrieval = tuple[float | None, torch.Tensor, torch.Tensor, torch.Tensor]


def _image_retrieval(
    task: GraftTrainingTask, out: GraftOutput, ground: torch.Tensor, batch: dict[str, Any], offset: int
) -> _BatchRetrieval:
    """Image task: each tile's image embedding retrieves its tile among the tiles' mean ground embeddings.

    Returns:
        ``(loss, queries (batch, dim), positives (batch,), gallery (batch, dim))``.
    """
    mask = batch["ground_mask"]
    ground_n = F.normalize(ground.float(), dim=-1)
    tile_mean = (ground_n * mask[..., None]).sum(1)  # (batch, dim)
    queries = F.normalize(out.image_embeds.float(), dim=-1)
    positives = offset + torch.arange(len(queries), device=queries.device)
    loss = float(GraftImageLoss(temperature=task.loss.temperature)(out.image_embeds, ground, mask))
    return loss, queries, positives, F.normalize(tile_mean, dim=-1)


def _pixel_retrieval(
    task: GraftTrainingTask, out: GraftOutput, ground: torch.Tensor, batch: dict[str, Any], offset: int
) -> _BatchRetrieval:
    """Pixel task: the patch under each in-view photo retrieves that photo among all photos.

    Returns:
        ``(loss or None, queries (num_visible, dim), positives (num_visible,), gallery (num_photos, dim))``.
    """
    mask, coords, in_view = batch["ground_mask"], batch["ground_pixel_coords"], batch["ground_in_view"]
    size = tuple(batch["pixel_values"].shape[-2:])
    visible = mask & in_view
    loss = None
    if visible.any():
        loss_fn = GraftPixelLoss(temperature=task.loss.temperature)
        loss = float(loss_fn(out.patch_embeds, ground, mask, coords, in_view, image_size=size))
    picked = patch_embeds_at_pixels(out.patch_embeds, coords, size)  # (batch, num_photos, dim)
    gallery_index = torch.cumsum(mask.flatten().long(), 0).view_as(mask) - 1 + offset  # photo -> gallery row
    queries = F.normalize(picked[visible].float(), dim=-1)
    return loss, queries, gallery_index[visible], F.normalize(ground.float(), dim=-1)[mask]


@torch.no_grad()
def evaluate(task: GraftTrainingTask, loader: Iterable, max_batches: int, device: torch.device) -> dict[str, float]:
    """Validation on a held-out split: contrastive loss (local batch) and retrieval recall@k within the split.

    Image task: each tile's image embedding retrieves its tile among the mean ground embeddings of all tiles.
    Pixel task: the patch under each in-view photo retrieves that photo among all photos.
    """
    student = task.student
    was_training = student.training
    student.eval()
    retrieval = _image_retrieval if task.task == "image" else _pixel_retrieval
    losses: list[float] = []
    queries: list[torch.Tensor] = []
    positives: list[torch.Tensor] = []
    gallery: list[torch.Tensor] = []
    for batch in itertools.islice(loader, max_batches):
        batch = batch_to_device(batch, device)
        out = student(pixel_values=batch["pixel_values"], output_patch_embeds=task.task == "pixel")
        offset = sum(len(g) for g in gallery)
        loss, query, positive, bank = retrieval(task, out, task.targets(batch), batch, offset)
        if loss is not None:
            losses.append(loss)
        queries.append(query)
        positives.append(positive)
        gallery.append(bank)
    student.train(was_training)
    if not gallery:
        return {}
    query = torch.cat(queries)
    metrics = single_positive_recall(query @ torch.cat(gallery).T, torch.cat(positives)) if len(query) else {}
    metrics["loss"] = sum(losses) / max(len(losses), 1)
    metrics["num_queries"] = float(len(query))
    return metrics
