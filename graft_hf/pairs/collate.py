"""Batches of pair samples: ragged photo counts packed with masks, crops stacked without extra copies, and the
batched view rendering that runs on the training device (``geometry="batched"``).

:func:`collate_pairs` runs in the DataLoader (workers write the batch straight into shared memory);
:func:`render_batch_views` runs where the batch's tensors are (the training step calls it through
``graft_hf.training.task.batch_to_device``).
"""

from __future__ import annotations

from typing import Any

import torch

from graft_hf.pairs.augment import render_views, view_points_batched

__all__ = ["collate_pairs", "render_batch_views"]


def collate_pairs(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Pack samples with ragged photo counts into one batch, padding to the batch's largest count.

    Args:
        samples: Samples from :class:`PairsIterableDataset`.

    Returns:
        ``ground_mask (batch, n)``, ``tile_id`` list, ``ground_embeds (batch, n, dim)``, ``ground_text_embeds (batch,
        n, dim)`` and/or ``ground_pixel_values (batch, n, 3, H, W)`` (those present in the samples; zeros on
        padding), with ``n`` the largest photo count; and per the loader's geometry either ``pixel_values (batch,
        3, view, view)``, ``ground_pixel_coords (batch, n, 2)`` and ``ground_in_view (batch, n)`` (false on padding),
        or ``crops (batch, 3, height, width)`` uint8, ``views (batch, 4)``, ``ground_crop_coords (batch, n, 2)`` and
        ``render`` (view size, mean, std) for :func:`render_batch_views`.
    """
    if not samples:
        raise ValueError("collate_pairs got an empty list of samples")
    batched = "crop" in samples[0]
    coords_key = "ground_crop_coords" if batched else "ground_pixel_coords"
    counts = [len(s[coords_key]) for s in samples]
    batch: dict[str, Any] = {"tile_id": [s["tile_id"] for s in samples]}
    if batched:
        shapes = {tuple(s["crop"].shape) for s in samples}
        if len(shapes) > 1:
            raise ValueError(
                f"crops of different sizes in one batch ({sorted(shapes)}): batched geometry stacks the crops; "
                "build the pairs with one crop_size or use geometry='per_sample'"
            )
        batch["crops"] = _stack_crops([s["crop"] for s in samples])
        batch["views"] = torch.stack([s["view"] for s in samples])
        batch["render"] = samples[0]["render"]
    else:
        batch["pixel_values"] = torch.stack([s["pixel_values"] for s in samples])
    keys = [coords_key, "ground_embeds", "ground_text_embeds", "ground_pixel_values"]
    keys += [] if batched else ["ground_in_view"]
    for key in keys:
        if key in samples[0]:
            batch[key] = _padded(samples, key, counts)
    ground_mask = torch.zeros(len(samples), max(counts), dtype=torch.bool)
    for i, count in enumerate(counts):
        ground_mask[i, :count] = True
    batch["ground_mask"] = ground_mask
    return batch


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack``, written straight into shared memory inside a DataLoader worker (as ``default_collate``
    does), so the batch of crops is not copied again to reach the main process."""
    if torch.utils.data.get_worker_info() is None:
        return torch.stack(tensors)
    first = tensors[0]
    storage = first.untyped_storage()._new_shared(len(tensors) * first.numel() * first.element_size())
    out = first.new(storage).resize_(len(tensors), *first.shape)
    return torch.stack(tensors, out=out)


def _stack_crops(crops: list[torch.Tensor]) -> torch.Tensor:
    """Stack ``(3, height, width)`` uint8 crops into ``(batch, 3, height, width)`` with one memory copy each.

    Decoders give channels-last memory (``decode_image`` returns a ``(3, height, width)`` view of its ``(height,
    width, 3)`` output); those are stacked as ``(batch, height, width, 3)`` and returned as a ``(batch, 3, height,
    width)`` view (channels-last strides), which :func:`render_views` reads as is, instead of a strided gather per
    pixel (4x slower, measured by ``scripts/bench_input.py``).
    """
    channels_last = [crop.permute(1, 2, 0) for crop in crops]
    if all(crop.is_contiguous() for crop in channels_last):
        return _stack(channels_last).permute(0, 3, 1, 2)
    return _stack(crops)


def _padded(samples: list[dict[str, Any]], key: str, counts: list[int]) -> torch.Tensor:
    """The samples' ``key`` tensors (first dimension: photos) stacked with zero padding to the largest count."""
    first = samples[0][key]
    padded = torch.zeros(len(samples), max(counts), *first.shape[1:], dtype=first.dtype)
    for i, s in enumerate(samples):
        if s[key].shape[1:] != first.shape[1:]:
            raise ValueError(
                f"{key} of tile {s['tile_id']!r} has shape {tuple(s[key].shape)} but tile "
                f"{samples[0]['tile_id']!r} has {tuple(first.shape)}: the shards mix teachers; re-run "
                "`graft pairs embed` with one teacher"
            )
        padded[i, : counts[i]] = s[key]
    return padded


def render_batch_views(batch: dict[str, Any]) -> dict[str, Any]:
    """Resample, normalise and place photos for a ``geometry="batched"`` batch, on the device its tensors are on.

    One ``grid_sample`` for the whole batch (:func:`graft_hf.pairs.augment.render_views`) and the photo positions
    moved by the same view matrices (:func:`graft_hf.pairs.augment.view_points_batched`). A batch without
    ``crops`` (``geometry="per_sample"``) is returned unchanged.

    Args:
        batch: A collated batch (see :func:`collate_pairs`).

    Returns:
        The batch in the loader's contract: ``pixel_values (batch, 3, view, view)``, ``ground_pixel_coords (batch,
        n, 2)``, ``ground_in_view (batch, n)`` replace ``crops``, ``views``, ``ground_crop_coords`` and ``render``.
    """
    if "crops" not in batch:
        return batch
    out = dict(batch)
    crops, views, points = out.pop("crops"), out.pop("views"), out.pop("ground_crop_coords")
    size, mean, std = out.pop("render")
    out["pixel_values"] = render_views(crops, views, size, mean, std)
    coords, in_view = view_points_batched(points, views, size)
    mask = out["ground_mask"]
    out["ground_pixel_coords"] = coords * mask[..., None]  # zeros on padding, as collate_pairs pads
    out["ground_in_view"] = in_view & mask
    return out
