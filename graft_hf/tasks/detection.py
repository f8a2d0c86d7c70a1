"""Zero-shot object detection from GRAFT patch scores (GRAFT, Sec. 3.3).

The patch-text score map of a query (e.g. "building") is upsampled bilinearly to the image's resolution and
thresholded; every connected component is one instance with a mask, a box, a score and an area in square metres.
Instances can be sharpened with SAM (point prompts at the instance's best patches).

Areas and the GSD: a mask pixel covers `gsd_y * gsd_x` square metres, where `gsd` is the ground sample distance of
the raster the image comes from. Masks are computed at the resolution of the image that is passed in (the model
input is a resized copy, but scores are upsampled back to the image's own size, so the model's input size never
enters the area). When the image passed in is itself a resized copy of a raster (a thumbnail, a reprojected
preview), pass that raster's `gsd` and `original_size=(height, width)`: a mask pixel then covers
`gsd * original_height / height` by `gsd * original_width / width` metres. Without `gsd`, the model's
`config.gsd` (the training imagery's resolution) is used; without either, areas are `None`.

Example:
    >>> detector = ObjectDetector(model, load_clip_tokenizer(), sam=load_sam("/models/sam-vit-base"))
    >>> result = detector.detect("naip_tile.tif", "swimming pool", gsd=1.0)
    >>> result.count, result.total_area_m2
    >>> result.render().save("pools.png")
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageDraw
from transformers import PreTrainedTokenizerBase

from graft_hf.config import config_dataclass, require
from graft_hf.extras import require as require_extra
from graft_hf.modeling import GraftImageProcessor, GraftModel
from graft_hf.tasks.sam import SamRefiner, patch_centres, top_patch_points
from graft_hf.tasks.segmentation import (
    PALETTE,
    ImageLike,
    RGBLike,
    ZeroShotSegmenter,
    load_font,
    patch_similarity,
    prepare_image,
    upsample_scores,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DetectedInstance",
    "DetectionConfig",
    "DetectionResult",
    "ObjectDetector",
    "PreparedImage",
    "instances_from_score_map",
    "pixel_area_m2",
    "pixel_spacing_m",
    "render_detections",
]


@config_dataclass
class DetectionConfig:
    """Options of zero-shot detection.

    Attributes:
        templates: Prompt templates for the query (a template-set name, a list, or `None` for the bare query).
        negatives: Competing queries (e.g. `("background", "bare ground")`). With negatives the score is the
            softmax probability of the query against them at `logit_scale`; without, the raw cosine similarity.
        logit_scale: Temperature for the softmax score.
        threshold: Pixels scoring at least this are foreground (cosine units without negatives, probability with).
        connectivity: 4 or 8: which neighbours join a connected component.
        min_pixels: Components smaller than this many mask pixels are dropped.
        min_area_m2: Components smaller than this area are dropped (needs a GSD).
        refine_with_sam: Replace each instance mask by SAM's (needs a `SamRefiner` on the detector).
        sam_points: SAM point prompts per instance.
    """

    templates: str | Sequence[str] | None = "satellite"
    negatives: tuple[str, ...] = ()
    logit_scale: float = 100.0
    threshold: float = 0.2
    connectivity: Literal[4, 8] = 8
    min_pixels: int = 1
    min_area_m2: float | None = None
    refine_with_sam: bool = False
    sam_points: int = 3

    def validate_counts(self) -> None:
        require(self.min_pixels >= 1, "min_pixels", f"must be at least 1, got {self.min_pixels}")
        require(self.sam_points >= 1, "sam_points", f"must be at least 1, got {self.sam_points}")
        require(self.logit_scale > 0, "logit_scale", f"must be positive, got {self.logit_scale}")


@dataclass
class DetectedInstance:
    """One detected object.

    Attributes:
        label: The query that found it.
        score: Highest pixel score inside the mask.
        mean_score: Mean pixel score inside the mask.
        box: `(x0, y0, x1, y1)` pixel box, `x1`/`y1` exclusive.
        mask: bool `(height, width)` at the image's resolution.
        num_pixels: Mask pixel count.
        area_m2: Ground area in square metres, or `None` without a GSD.
    """

    label: str
    score: float
    mean_score: float
    box: tuple[int, int, int, int]
    mask: torch.Tensor = field(repr=False)
    num_pixels: int
    area_m2: float | None


@dataclass
class DetectionResult:
    """All instances of one query in one image.

    Attributes:
        query: The text query.
        instances: Instances, highest score first.
        score_map: float32 `(height, width)` per-pixel score of the query.
        pixel_area_m2: Ground area of one mask pixel, or `None`.
        image: Optional uint8 `(height, width, 3)` RGB copy of the image, for rendering.
    """

    query: str
    instances: list[DetectedInstance]
    score_map: torch.Tensor
    pixel_area_m2: float | None = None
    image: np.ndarray | None = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return len(self.instances)

    @property
    def total_area_m2(self) -> float | None:
        """Summed instance area (instances never overlap before SAM; SAM masks may, and overlaps count once)."""
        if self.pixel_area_m2 is None:
            return None
        return float(self.union_mask().sum()) * self.pixel_area_m2

    def union_mask(self) -> torch.Tensor:
        """bool `(height, width)`: pixels of any instance."""
        union = torch.zeros(self.score_map.shape, dtype=torch.bool)
        for instance in self.instances:
            union |= instance.mask
        return union

    def coverage(self) -> float:
        """Fraction of the image covered by the instances."""
        return float(self.union_mask().float().mean())

    def render(self, image: RGBLike | None = None, alpha: float = 0.45) -> Image.Image:
        """Masks, boxes and labels drawn on the image (a PIL image); see :func:`render_detections`."""
        image = self.image if image is None else image
        if image is None:
            raise ValueError("this result carries no image; pass the RGB image to render(image)")
        return render_detections(image, self.instances, alpha)


def pixel_spacing_m(
    gsd: float | tuple[float, float], image_size: tuple[int, int], original_size: tuple[int, int] | None = None
) -> tuple[float, float]:
    """Ground size `(row, column)` in metres of one pixel of an image that may be a resized copy of a raster.

    Args:
        gsd: Metres per pixel of the original raster, one value or `(row, column)` spacings.
        image_size: `(height, width)` of the image the masks refer to.
        original_size: `(height, width)` of the raster `gsd` refers to; `None` when it is the image itself.

    Returns:
        `(metres per row, metres per column)`.
    """
    if isinstance(gsd, (tuple, list)):
        gsd_y, gsd_x = float(gsd[0]), float(gsd[1])
    else:
        gsd_y = gsd_x = float(gsd)
    if gsd_y <= 0 or gsd_x <= 0:
        raise ValueError(f"gsd must be positive metres per pixel, got {gsd}")
    if original_size is not None:
        gsd_y *= original_size[0] / image_size[0]
        gsd_x *= original_size[1] / image_size[1]
    return gsd_y, gsd_x


def pixel_area_m2(
    gsd: float | tuple[float, float], image_size: tuple[int, int], original_size: tuple[int, int] | None = None
) -> float:
    """Ground area of one pixel of an image that may be a resized copy of a raster (see :func:`pixel_spacing_m`).

    Returns:
        Square metres per mask pixel.
    """
    gsd_y, gsd_x = pixel_spacing_m(gsd, image_size, original_size)
    return gsd_y * gsd_x


def _label_components(binary: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    ndimage = require_extra("scipy.ndimage", "tasks", "zero-shot detection (connected components)", package="scipy")
    structure = np.ones((3, 3), dtype=bool) if connectivity == 8 else ndimage.generate_binary_structure(2, 1)
    labels, count = ndimage.label(binary, structure=structure)
    return labels, int(count)


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def instances_from_score_map(
    score_map: torch.Tensor,
    threshold: float,
    label: str,
    pixel_area: float | None = None,
    connectivity: Literal[4, 8] = 8,
    min_pixels: int = 1,
    min_area_m2: float | None = None,
) -> list[DetectedInstance]:
    """Connected components of `score_map >= threshold` as instances.

    Args:
        score_map: `(height, width)` per-pixel scores.
        threshold: Foreground threshold.
        label: Label given to every instance.
        pixel_area: Square metres per pixel (see :func:`pixel_area_m2`), or `None`.
        connectivity: 4 or 8.
        min_pixels: Minimum component size in pixels.
        min_area_m2: Minimum component area (ignored without `pixel_area`).

    Returns:
        Instances sorted by score, highest first.
    """
    if score_map.ndim != 2:
        raise ValueError(f"score_map must be (height, width), got {tuple(score_map.shape)}")
    if min_area_m2 is not None and pixel_area is None:
        raise ValueError("min_area_m2 needs a ground sample distance; pass gsd=... (metres per pixel)")
    scores = score_map.detach().float().cpu().numpy()
    labels, count = _label_components(scores >= threshold, connectivity)
    instances = []
    for component in range(1, count + 1):
        mask = labels == component
        num_pixels = int(mask.sum())
        area = num_pixels * pixel_area if pixel_area is not None else None
        if num_pixels < min_pixels or (min_area_m2 is not None and area is not None and area < min_area_m2):
            continue
        values = scores[mask]
        instances.append(
            DetectedInstance(
                label, float(values.max()), float(values.mean()), _box(mask), torch.from_numpy(mask), num_pixels, area
            )
        )
    instances.sort(key=lambda inst: -inst.score)
    return instances


def _sam_points(
    instance: DetectedInstance, patch_scores: torch.Tensor, image_size: tuple[int, int], k: int
) -> list[tuple[float, float]]:
    """SAM point prompts for an instance: its best patch centres, or its most central pixel when no patch centre
    lies inside it (instances smaller than a patch)."""
    centres = patch_centres((patch_scores.shape[0], patch_scores.shape[1]), image_size).long()
    rows = centres[..., 1].clamp_max(image_size[0] - 1)
    cols = centres[..., 0].clamp_max(image_size[1] - 1)
    region = instance.mask[rows, cols]  # (grid_h, grid_w): patches whose centre lies in the instance
    if region.any():
        return top_patch_points(patch_scores, image_size, k, region)
    pixels = torch.nonzero(instance.mask).float()  # (num_pixels, 2) as (row, col)
    nearest = pixels[(pixels - pixels.mean(dim=0)).square().sum(dim=1).argmin()]
    return [(float(nearest[1]) + 0.5, float(nearest[0]) + 0.5)]


@dataclass
class PreparedImage:
    """An image ready for several queries: model input, RGB copy and patch embeddings.

    Attributes:
        pixel_values: `(1, 3, size, size)` model input.
        rgb: uint8 `(height, width, 3)` at the original resolution.
        patch_embeds: `(grid_h, grid_w, dim)` L2-normalised patch embeddings.
    """

    pixel_values: torch.Tensor
    rgb: np.ndarray
    patch_embeds: torch.Tensor

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])


class ObjectDetector:
    """Finds instances of text queries in satellite images with a pixel-level GRAFT model.

    Args:
        model: A `GraftModel` with a patch head.
        tokenizer: Its CLIP tokenizer.
        image_processor: A `GraftImageProcessor`; defaults to the one matching `model.config`.
        sam: Optional :class:`~graft_hf.tasks.sam.SamRefiner` for `DetectionConfig(refine_with_sam=True)`.
    """

    def __init__(
        self,
        model: GraftModel,
        tokenizer: PreTrainedTokenizerBase,
        image_processor: GraftImageProcessor | None = None,
        sam: SamRefiner | None = None,
    ):
        self.segmenter = ZeroShotSegmenter(model, tokenizer, image_processor)
        self.sam = sam

    @property
    def model(self) -> GraftModel:
        return self.segmenter.model

    def prepare(self, image: ImageLike | PreparedImage) -> PreparedImage:
        """Reads and encodes an image once, for any number of :meth:`detect` calls."""
        if isinstance(image, PreparedImage):
            return image
        pixel_values, rgb = prepare_image(image, self.segmenter.image_processor)
        return PreparedImage(pixel_values, rgb, self.segmenter.patch_embeds(pixel_values).cpu())

    def detect(
        self,
        image: ImageLike | PreparedImage,
        query: str,
        config: DetectionConfig | None = None,
        gsd: float | tuple[float, float] | None = None,
        original_size: tuple[int, int] | None = None,
    ) -> DetectionResult:
        """Detects every instance of `query`.

        Args:
            image: A PIL image, an array/tensor, a GeoTIFF/image path, or a :class:`PreparedImage`.
            query: What to find, e.g. `"building"`.
            config: Options; defaults to `DetectionConfig()`.
            gsd: Metres per pixel of the raster the image comes from; defaults to `model.config.gsd`.
            original_size: `(height, width)` of that raster when `image` is a resized copy of it.

        Returns:
            A :class:`DetectionResult` at the image's resolution.
        """
        config = config or DetectionConfig()
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"query must be a non-empty string, got {query!r}")
        prepared = self.prepare(image)
        size = prepared.size
        queries = (query, *config.negatives)
        embeds = self.segmenter.encode_queries(queries, config.templates).cpu()
        patch_scores = patch_similarity(prepared.patch_embeds, embeds)  # (queries, grid_h, grid_w)
        pixel_scores = upsample_scores(patch_scores, size)  # logits upsampled before thresholding
        if config.negatives:
            score_map = (config.logit_scale * pixel_scores).softmax(dim=0)[0]
        else:
            score_map = pixel_scores[0]
        if gsd is None:
            gsd = getattr(self.model.config, "gsd", None)
            if gsd is not None:
                logger.info("no gsd given: using the model's training GSD %.3g m/px for areas", gsd)
        area = pixel_area_m2(gsd, size, original_size) if gsd is not None else None
        instances = instances_from_score_map(
            score_map, config.threshold, query, area, config.connectivity, config.min_pixels, config.min_area_m2
        )
        if config.refine_with_sam and instances:
            instances = self._refine(prepared, instances, patch_scores[0], config.sam_points, area)
        logger.info("detected %d x %r (threshold %.3g)", len(instances), query, config.threshold)
        return DetectionResult(query, instances, score_map, area, prepared.rgb)

    def _refine(
        self,
        prepared: PreparedImage,
        instances: list[DetectedInstance],
        patch_scores: torch.Tensor,
        k: int,
        pixel_area: float | None,
    ) -> list[DetectedInstance]:
        if self.sam is None:
            raise ValueError("refine_with_sam=True needs a SAM model: ObjectDetector(..., sam=load_sam(path))")
        points = [_sam_points(inst, patch_scores, prepared.size, k) for inst in instances]
        masks = self.sam.segment_points(prepared.rgb, points).masks
        refined = []
        for inst, mask in zip(instances, masks):
            if not mask.any():  # SAM found nothing at the prompts: keep the thresholded mask
                refined.append(inst)
                continue
            num = int(mask.sum())
            area = num * pixel_area if pixel_area is not None else None
            refined.append(
                DetectedInstance(inst.label, inst.score, inst.mean_score, _box(mask.numpy()), mask, num, area)
            )
        return refined


def render_detections(image: RGBLike, instances: Sequence[DetectedInstance], alpha: float = 0.45) -> Image.Image:
    """Draws instance masks, boxes and `label score area` captions on an image.

    Args:
        image: uint8 `(height, width, 3)` RGB array or a PIL image.
        instances: Instances whose masks match the image size.
        alpha: Opacity of the mask colours.

    Returns:
        An RGB `PIL.Image.Image`.
    """
    rgb = np.asarray(image.convert("RGB")) if hasattr(image, "convert") else np.asarray(image)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (height, width, 3) RGB, got {rgb.dtype} {rgb.shape}")
    canvas = rgb.astype(np.float32)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(instances))]
    for inst, colour in zip(instances, colours):
        mask = inst.mask.numpy()
        if mask.shape != rgb.shape[:2]:
            raise ValueError(f"instance mask {mask.shape} does not match the image {rgb.shape[:2]}")
        canvas[mask] = (1 - alpha) * canvas[mask] + alpha * np.asarray(colour, dtype=np.float32)
    out = Image.fromarray(canvas.round().astype(np.uint8))
    draw = ImageDraw.Draw(out)
    font = load_font(max(9, min(16, out.height // 24)))
    for inst, colour in zip(instances, colours):
        x0, y0, x1, y1 = inst.box
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=max(1, out.height // 200))
        caption = f"{inst.label} {inst.score:.2f}"
        if inst.area_m2 is not None:
            caption += f" {inst.area_m2:,.0f} m2"
        draw.text((x0 + 2, y0 + 1), caption, fill=(255, 255, 255), font=font, stroke_width=1, stroke_fill=(0, 0, 0))
    return out
