"""SAM refinement of GRAFT's patch-level masks (GRAFT, Sec. 3.3).

GRAFT's patch scores say *where* a class is at the resolution of the ViT patch grid (16 px); the Segment Anything
Model (Kirillov et al. 2023) draws sharp object boundaries but does not know class names. The centres of the
highest-scoring patches become SAM point prompts, and SAM returns a mask at full image resolution. Any SAM
checkpoint that transformers' `SamModel`/`SamProcessor` read works (`facebook/sam-vit-base`, a fine-tuned copy or a
local directory).

Example:
    >>> refiner = load_sam("/models/sam-vit-base")
    >>> refined = refine_segmentation(result, refiner, points_per_class=3)   # result from ZeroShotSegmenter
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import is_offline_mode, try_to_load_from_cache
from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

from graft_hf.tasks.segmentation import SegmentationResult
from graft_hf.tasks.text import model_device

logger = logging.getLogger(__name__)

__all__ = ["SamMasks", "SamRefiner", "load_sam", "patch_centres", "refine_segmentation", "tiny_sam", "top_patch_points"]

Point = tuple[float, float]


@dataclass
class SamMasks:
    """SAM's answer to a batch of prompts on one image.

    Attributes:
        masks: bool `(num_objects, height, width)` at the original image resolution.
        iou_scores: float32 `(num_objects,)` SAM's own estimate of each mask's IoU.
    """

    masks: torch.Tensor
    iou_scores: torch.Tensor


@dataclass
class SamRefiner:
    """A transformers SAM model with its processor.

    Attributes:
        model: A `SamModel` in eval mode.
        processor: Its `SamProcessor`.
        mask_threshold: Logit threshold for binarising SAM's masks.
    """

    model: SamModel
    processor: SamProcessor
    mask_threshold: float = 0.0

    @torch.no_grad()
    def segment_points(
        self, image: np.ndarray, points: Sequence[Sequence[Point]], labels: Sequence[Sequence[int]] | None = None
    ) -> SamMasks:
        """One mask per object from point prompts.

        Args:
            image: uint8 `(height, width, 3)` RGB image.
            points: Per object, its `(x, y)` prompt points in image pixel coordinates (column, row). Objects with
                fewer points than the largest are padded by repeating their last point.
            labels: Per object and point, 1 (foreground) or 0 (background); all foreground by default.

        Returns:
            :class:`SamMasks` with `num_objects = len(points)`.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"image must be (height, width, 3) RGB, got shape {image.shape}")
        if not points or any(len(p) == 0 for p in points):
            raise ValueError("give at least one (x, y) point for every object")
        labels = [[1] * len(p) for p in points] if labels is None else labels
        if [len(p) for p in points] != [len(l_) for l_ in labels]:
            raise ValueError("labels must give one 0/1 label per point of every object")
        width = max(len(p) for p in points)
        padded_points = [
            [list(map(float, xy)) for xy in p] + [list(map(float, p[-1]))] * (width - len(p)) for p in points
        ]
        padded_labels = [list(map(int, lab)) + [int(lab[-1])] * (width - len(lab)) for lab in labels]
        inputs = self.processor(
            images=image, input_points=[padded_points], input_labels=[padded_labels], return_tensors="pt"
        )
        device = model_device(self.model)
        embeddings = self.model.get_image_embeddings(inputs["pixel_values"].to(device))
        outputs = self.model(
            image_embeddings=embeddings,
            input_points=inputs["input_points"].to(device),
            input_labels=inputs["input_labels"].to(device),
            multimask_output=False,
        )
        masks = self.processor.post_process_masks(
            outputs.pred_masks.cpu(),
            inputs["original_sizes"],
            inputs["reshaped_input_sizes"],
            mask_threshold=self.mask_threshold,
        )[0]  # (num_objects, 1, height, width)
        return SamMasks(masks[:, 0].bool(), outputs.iou_scores[0, :, 0].float().cpu())


def load_sam(
    name_or_path: str | os.PathLike, device: str | torch.device | None = None, mask_threshold: float = 0.0
) -> SamRefiner:
    """Loads a SAM checkpoint (`SamModel` + `SamProcessor`) from a local directory or the Hub.

    Args:
        name_or_path: A directory written by `save_pretrained` (or a Hub snapshot), or a Hub id such as
            `"facebook/sam-vit-base"` (needs the Hub cache or a connection).
        device: Where to put the model; CPU by default.
        mask_threshold: Logit threshold for binarising masks.

    Returns:
        A :class:`SamRefiner`.
    """
    source = os.fspath(name_or_path)
    path = Path(source).expanduser()
    is_local = path.is_dir()
    if not is_local and (path.exists() or source.startswith((".", "/", "~")) or source.count("/") > 1):
        raise FileNotFoundError(
            f"SAM checkpoint directory not found: {source}; pass a directory holding config.json, the weights and "
            "preprocessor_config.json (SamModel/SamProcessor.save_pretrained), or a Hub id like facebook/sam-vit-base"
        )
    offline = is_offline_mode()
    hint = (
        "pass the path of a local SAM directory instead (download it once where there is internet, e.g. "
        f"`hf download {source} --local-dir ./sam`, then use sam='./sam')"
    )
    if not is_local and offline:
        if not isinstance(try_to_load_from_cache(source, "config.json"), str):
            raise OSError(f"SAM model {source!r} is not in the local Hub cache and HF_HUB_OFFLINE is set; {hint}")
    try:
        model = SamModel.from_pretrained(str(path) if is_local else source, local_files_only=is_local or offline)
        processor = SamProcessor.from_pretrained(
            str(path) if is_local else source, local_files_only=is_local or offline
        )
    except OSError as err:
        raise OSError(f"could not load SAM model {source!r}: {err}; {hint}") from err
    model = model.eval()
    if device is not None:
        model = model.to(device)
    logger.info("loaded SAM %s (%d parameters)", source, sum(p.numel() for p in model.parameters()))
    return SamRefiner(model, processor, mask_threshold)


def tiny_sam(seed: int = 0, image_size: int = 64) -> SamRefiner:
    """A tiny random SAM (a few thousand parameters) with a matching processor, for tests and examples."""
    if image_size % 16:
        raise ValueError(f"image_size must be a multiple of 16, got {image_size}")
    config = SamConfig(
        vision_config={
            "hidden_size": 16,
            "output_channels": 8,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 8,
            "window_size": 4,
            "global_attn_indexes": [1],
            "num_pos_feats": 4,
            "mlp_dim": 32,
        },
        prompt_encoder_config={"hidden_size": 8, "image_size": image_size, "patch_size": 8, "mask_input_channels": 4},
        mask_decoder_config={
            "hidden_size": 8,
            "mlp_dim": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 8,
        },
    )
    torch.manual_seed(seed)
    model = SamModel(config).eval()
    image_processor = SamImageProcessor(
        size={"longest_edge": image_size},
        pad_size={"height": image_size, "width": image_size},
        mask_size={"longest_edge": image_size // 4},
        mask_pad_size={"height": image_size // 4, "width": image_size // 4},
    )
    return SamRefiner(model, SamProcessor(image_processor=image_processor))


def patch_centres(grid: tuple[int, int], image_size: tuple[int, int]) -> torch.Tensor:
    """`(x, y)` image coordinates of every patch centre, float32 `(grid_h, grid_w, 2)`.

    The model sees the whole image resized (no crop), so patch `(i, j)` of a `grid_h x grid_w` grid covers rows
    `[i, i + 1) * height / grid_h` and its centre is at `((j + 0.5) * width / grid_w, (i + 0.5) * height / grid_h)`.
    """
    (grid_h, grid_w), (height, width) = grid, image_size
    ys = (torch.arange(grid_h, dtype=torch.float32) + 0.5) * height / grid_h
    xs = (torch.arange(grid_w, dtype=torch.float32) + 0.5) * width / grid_w
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)


def top_patch_points(
    patch_scores: torch.Tensor, image_size: tuple[int, int], k: int = 3, region: torch.Tensor | None = None
) -> list[Point]:
    """Centres of the `k` highest-scoring patches, as SAM point prompts.

    Args:
        patch_scores: `(grid_h, grid_w)` scores of one class.
        image_size: `(height, width)` of the image the points refer to.
        k: Number of points (fewer when the region has fewer patches).
        region: Optional bool `(grid_h, grid_w)`; only its patches are eligible.

    Returns:
        Up to `k` `(x, y)` points, best first (ties broken by row-major patch order).
    """
    if patch_scores.ndim != 2:
        raise ValueError(f"patch_scores must be (grid_h, grid_w), got {tuple(patch_scores.shape)}")
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    scores = patch_scores.float().reshape(-1)
    eligible = torch.ones_like(scores, dtype=torch.bool) if region is None else region.reshape(-1).bool()
    candidates = torch.nonzero(eligible).flatten()
    order = candidates[torch.sort(scores[candidates], descending=True, stable=True).indices][:k]
    grid_h, grid_w = patch_scores.shape
    centres = patch_centres((grid_h, grid_w), image_size).reshape(-1, 2)
    return [(float(x), float(y)) for x, y in centres[order].tolist()]


def _patch_labels(mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The label at every patch centre of a full-resolution mask, `(grid_h, grid_w)`."""
    centres = patch_centres(grid, (mask.shape[0], mask.shape[1])).long()
    rows = centres[..., 1].clamp_max(mask.shape[0] - 1)
    cols = centres[..., 0].clamp_max(mask.shape[1] - 1)
    return mask[rows, cols]


def refine_segmentation(
    result: SegmentationResult,
    refiner: SamRefiner,
    points_per_class: int = 3,
    image: np.ndarray | None = None,
) -> SegmentationResult:
    """Sharpens a zero-shot segmentation with SAM.

    For every class that wins at least one patch, the centres of its `points_per_class` best-scoring winning
    patches prompt SAM. SAM masks are painted in increasing order of the class's best patch score (so the most
    confident class wins overlaps); pixels no SAM mask covers become background when the result has a background
    label and keep their zero-shot label otherwise.

    Args:
        result: A :class:`SegmentationResult` from `ZeroShotSegmenter`.
        refiner: A :class:`SamRefiner` (`load_sam(...)`).
        points_per_class: SAM point prompts per class.
        image: uint8 `(height, width, 3)` RGB; defaults to `result.image`.

    Returns:
        A copy of `result` whose `mask` is the refined one (`score_maps` stay GRAFT's scores).
    """
    image = result.image if image is None else np.asarray(image)
    if image is None:
        raise ValueError("the result carries no image; pass the RGB image as image=...")
    if tuple(image.shape[:2]) != result.size:
        raise ValueError(f"image {image.shape[:2]} and mask {result.size} differ in size")
    grid = (result.patch_scores.shape[1], result.patch_scores.shape[2])
    winners = _patch_labels(result.mask, grid)  # (grid_h, grid_w)
    classes, points, best = [], [], []
    for c in range(result.patch_scores.shape[0]):
        region = winners == c
        if not region.any():
            continue
        classes.append(c)
        points.append(top_patch_points(result.patch_scores[c], result.size, points_per_class, region))
        best.append(float(result.patch_scores[c][region].max()))
    if result.background_index is not None:
        refined = torch.full_like(result.mask, result.background_index)
    else:
        refined = result.mask.clone()
    if classes:
        sam = refiner.segment_points(image, points)
        for i in sorted(range(len(classes)), key=lambda i: best[i]):
            refined[sam.masks[i]] = classes[i]
        logger.info("refined %d classes with SAM (%d points each)", len(classes), points_per_class)
    return replace(result, mask=refined)
