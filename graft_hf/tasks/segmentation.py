"""Zero-shot semantic segmentation with a pixel-level GRAFT model (GRAFT, Sec. 3.3 and Table 3).

Every ViT patch has an embedding in CLIP's joint space, so the cosine similarity between the patch embeddings and
the text embeddings of class prompts is a coarse `(num_classes, grid_h, grid_w)` score map. It is upsampled
bilinearly to the image's own resolution *before* the argmax (so class borders are smooth rather than
patch-shaped) and turned into a label mask. The model input is the whole image resized without cropping, so the
patch grid covers the full image and upsampling to `(height, width)` aligns it with the original pixels.

Pixels that fit no class can go to a "background" label, by either or both of:

* `background_prompt`: an extra text query (e.g. "background" or "other") competing with the classes;
* `score_threshold`: a constant background score; a pixel whose best class score is below it is background.

Evaluation scores a segmentation on the ground truth's own grid: a label mask coarser than its image (SatlasPretrain's
NAIP land-cover labels are 1/16 of the image) is compared with the per-pixel scores averaged over each label cell
(:func:`pool_to_grid`) before the argmax, so no label is resampled.

Example:
    >>> segmenter = ZeroShotSegmenter(model, load_clip_tokenizer())
    >>> result = segmenter.segment("tile.tif", ["water", "road", "trees", "buildings"])
    >>> result.mask.shape, result.score_maps.shape                   # (H, W), (4, H, W)
    >>> result.overlay().save("segmentation.png")                    # colour overlay with a legend
"""

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from graft_hf.config import config_dataclass, require
from graft_hf.evaluation.plots import load_font
from graft_hf.evaluation.segmentation_metrics import SegmentationEvaluator, SegmentationMetrics
from graft_hf.modeling import GraftImageProcessor, GraftModel
from graft_hf.tasks.map_render import apply_colormap
from graft_hf.tasks.text import encode_queries, model_device

logger = logging.getLogger(__name__)

__all__ = [
    "PALETTE",
    "SegmentationConfig",
    "SegmentationResult",
    "Segmenter",
    "ZeroShotSegmenter",
    "evaluate_segmentation",
    "load_font",
    "mask_on_grid",
    "patch_similarity",
    "pool_to_grid",
    "prepare_image",
    "render_overlay",
    "render_rgb",
    "render_score_map",
    "segment_from_patch_scores",
    "upsample_scores",
]

#: Distinct colours (tab10 then tab20's light tones); the background label is drawn transparent.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
    (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
    (219, 219, 141), (158, 218, 229),
)  # fmt: skip

ScoreType = Literal["cosine", "softmax"]
#: An input image: PIL, an HWC/CHW array or tensor (raw sensor values or RGB), or a GeoTIFF/image path.
ImageLike = Image.Image | np.ndarray | torch.Tensor | str | os.PathLike
#: An RGB picture to draw on: uint8 `(height, width, 3)` array or a PIL image.
RGBLike = Image.Image | np.ndarray


@config_dataclass
class SegmentationConfig:
    """Options of zero-shot segmentation.

    Attributes:
        templates: Prompt templates for the class names: a set name from
            `graft_hf.evaluation.templates.TEMPLATE_SETS`, a list of templates with one `{}`, or `None` to embed the
            names as written.
        score: `"cosine"`: raw patch-text cosine similarity; `"softmax"`: probabilities over the classes (and the
            background prompt) at `logit_scale`.
        logit_scale: Temperature multiplier for `"softmax"` (CLIP's learned scale is 100).
        background_prompt: Optional extra query whose winning pixels get the background label.
        score_threshold: Optional background score in the units of `score`: a pixel whose best class score is
            below it gets the background label.
        background_name: Name of the background label.
        upsample_mode: `"bilinear"` (default) or `"nearest"` (blocky, patch-shaped masks) upsampling of the scores.
    """

    templates: str | Sequence[str] | None = "satellite"
    score: ScoreType = "softmax"
    logit_scale: float = 100.0
    background_prompt: str | None = None
    score_threshold: float | None = None
    background_name: str = "background"
    upsample_mode: Literal["bilinear", "nearest"] = "bilinear"

    def validate_logit_scale(self) -> None:
        require(self.logit_scale > 0, "logit_scale", f"must be positive, got {self.logit_scale}")

    @property
    def has_background(self) -> bool:
        return self.background_prompt is not None or self.score_threshold is not None


@dataclass
class SegmentationResult:
    """A zero-shot segmentation of one image.

    Attributes:
        score_maps: float32 `(num_labels, height, width)` per-pixel scores of every label (the classes, then the
            background label when enabled), at the original image resolution.
        mask: int64 `(height, width)` label ids, the argmax of `score_maps`.
        class_names: Names of the labels, in the order of `score_maps` (background last when enabled).
        patch_scores: float32 `(num_classes, grid_h, grid_w)` cosine similarity of every patch with every named
            class (no background), before upsampling.
        background_index: Label id of the background, or `None`.
        image: Optional uint8 `(height, width, 3)` RGB rendering of the input, for overlays.
    """

    score_maps: torch.Tensor
    mask: torch.Tensor
    class_names: tuple[str, ...]
    patch_scores: torch.Tensor
    background_index: int | None = None
    image: np.ndarray | None = field(default=None, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """`(height, width)` of the mask."""
        return int(self.mask.shape[0]), int(self.mask.shape[1])

    def label_fractions(self) -> dict[str, float]:
        """Fraction of the image's pixels assigned to every label."""
        counts = torch.bincount(self.mask.reshape(-1), minlength=len(self.class_names)).double()
        return dict(zip(self.class_names, (counts / counts.sum()).tolist()))

    def binary_mask(self, class_name: str) -> torch.Tensor:
        """bool `(height, width)` mask of one label."""
        if class_name not in self.class_names:
            raise KeyError(f"no label {class_name!r}; labels are {list(self.class_names)}")
        return self.mask == self.class_names.index(class_name)

    def overlay(self, image: RGBLike | None = None, alpha: float = 0.5, legend: bool = True) -> Image.Image:
        """Colour overlay of the mask on the image with a legend (a PIL image); see :func:`render_overlay`."""
        image = self.image if image is None else image
        if image is None:
            raise ValueError("this result carries no image; pass the RGB image to overlay(image)")
        return render_overlay(image, self.mask, self.class_names, alpha, self.background_index, legend)


class Segmenter(Protocol):
    """What :func:`evaluate_segmentation` scores: GRAFT's :class:`ZeroShotSegmenter` or a baseline (CLIPSeg)."""

    def segment(
        self, image: ImageLike, class_names: Sequence[str], config: SegmentationConfig | None = None
    ) -> SegmentationResult: ...


def patch_similarity(patch_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every patch with every query.

    Args:
        patch_embeds: `(grid_h, grid_w, dim)` patch embeddings (normalised here).
        text_embeds: `(num_queries, dim)` query embeddings (normalised here).

    Returns:
        float32 `(num_queries, grid_h, grid_w)`.
    """
    if patch_embeds.ndim != 3 or text_embeds.ndim != 2 or patch_embeds.shape[-1] != text_embeds.shape[-1]:
        raise ValueError(
            f"expected patch_embeds (grid_h, grid_w, dim) and text_embeds (num_queries, dim) with the same dim, "
            f"got {tuple(patch_embeds.shape)} and {tuple(text_embeds.shape)}"
        )
    patches = F.normalize(patch_embeds.float(), dim=-1)
    texts = F.normalize(text_embeds.float().to(patches.device), dim=-1)
    return torch.einsum("hwd,qd->qhw", patches, texts)


def upsample_scores(scores: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resizes `(num_maps, grid_h, grid_w)` score maps to `(num_maps, height, width)` (pixel-centre aligned)."""
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(scores[None].float(), size=tuple(size), mode=mode, **kwargs)[0]


def pool_to_grid(score_maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Averages per-pixel scores over the cells of a coarser grid covering the same extent.

    Args:
        score_maps: `(num_labels, height, width)` scores at the image's resolution.
        size: `(grid_h, grid_w)` of the coarser grid, e.g. a label mask at 1/16 of the image.

    Returns:
        float32 `(num_labels, grid_h, grid_w)`: the mean score of the pixels inside each cell (cells of
        `height / grid_h` x `width / grid_w` pixels; overlapping by one pixel where the ratio is not whole).

    Raises:
        ValueError: A grid finer than the image, or one whose aspect ratio differs from the image's (it cannot
            cover the same extent).
    """
    height, width = (int(s) for s in score_maps.shape[-2:])
    grid_h, grid_w = (int(s) for s in size)
    if (grid_h, grid_w) == (height, width):
        return score_maps.float()
    if not (0 < grid_h <= height and 0 < grid_w <= width):
        raise ValueError(
            f"a {grid_h}x{grid_w} label grid is finer than its {height}x{width} image; pass masks at the image's "
            "resolution or coarser"
        )
    if abs(height / grid_h - width / grid_w) > 0.02 * max(height / grid_h, width / grid_w):
        raise ValueError(
            f"a {grid_h}x{grid_w} label grid and a {height}x{width} image have different aspect ratios, so they "
            "cannot cover the same extent; crop the image or the mask to the same footprint"
        )
    return F.adaptive_avg_pool2d(score_maps[None].float(), (grid_h, grid_w))[0]


def mask_on_grid(result: SegmentationResult, size: tuple[int, int]) -> torch.Tensor:
    """int64 `(grid_h, grid_w)` labels of a segmentation on a label mask's grid (the argmax of :func:`pool_to_grid`);
    `result.mask` itself when the grid is the image's."""
    if tuple(int(s) for s in size) == result.size:
        return result.mask
    return pool_to_grid(result.score_maps, size).argmax(dim=0)


def segment_from_patch_scores(
    patch_scores: torch.Tensor,
    output_size: tuple[int, int],
    class_names: Sequence[str],
    config: SegmentationConfig | None = None,
    background_scores: torch.Tensor | None = None,
) -> SegmentationResult:
    """Turns patch-level class scores into a segmentation at image resolution.

    Args:
        patch_scores: `(num_classes, grid_h, grid_w)` cosine similarities of patches with class queries.
        output_size: `(height, width)` of the original image.
        class_names: One name per class.
        config: Options (background handling, score type); defaults to `SegmentationConfig()`.
        background_scores: `(grid_h, grid_w)` cosine similarity with `config.background_prompt`, required
            exactly when a background prompt is configured.

    Returns:
        A :class:`SegmentationResult` (without an image).
    """
    config = config or SegmentationConfig()
    class_names = tuple(class_names)
    if patch_scores.ndim != 3 or patch_scores.shape[0] != len(class_names):
        raise ValueError(
            f"patch_scores must be (num_classes={len(class_names)}, grid_h, grid_w), got {tuple(patch_scores.shape)}"
        )
    if (background_scores is None) != (config.background_prompt is None):
        raise ValueError("pass background_scores exactly when config.background_prompt is set")
    if config.has_background and config.background_name in class_names:
        raise ValueError(f"background_name {config.background_name!r} is also a class name; rename one of them")
    height, width = (int(s) for s in output_size)
    if height <= 0 or width <= 0:
        raise ValueError(f"output_size must be a positive (height, width), got {output_size}")
    cosine = patch_scores.float()
    if background_scores is not None:
        cosine = torch.cat([cosine, background_scores.float()[None]])  # (classes + 1, grid_h, grid_w)
    scores = upsample_scores(cosine, (height, width), config.upsample_mode)  # logits upsampled before any argmax
    if config.score == "softmax":
        scores = (config.logit_scale * scores).softmax(dim=0)
    names, background_index = class_names, None
    if config.has_background:
        names, background_index = class_names + (config.background_name,), len(class_names)
        scores = _with_background(scores, config)
    # argmax returns the first maximum, so a class scoring exactly the threshold keeps the pixel.
    mask = scores.argmax(dim=0)
    return SegmentationResult(scores, mask, names, patch_scores.float().cpu(), background_index)


def _with_background(scores: torch.Tensor, config: SegmentationConfig) -> torch.Tensor:
    """`(classes + 1, H, W)` scores whose last row is the background: the background prompt's scores, floored at
    `config.score_threshold`, or that threshold alone (`scores` holds the background prompt's row last if any)."""
    if config.score_threshold is not None and config.background_prompt is None:
        background = torch.full_like(scores[0], float(config.score_threshold))
    else:
        background = scores[-1]
        scores = scores[:-1]
        if config.score_threshold is not None:
            background = background.clamp_min(float(config.score_threshold))
    return torch.cat([scores, background[None]])


def _to_uint8_rgb(rgb_unit: torch.Tensor) -> np.ndarray:
    """`(3, H, W)` float in [0, 1] -> uint8 `(H, W, 3)`."""
    return (rgb_unit.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()


def prepare_image(image: ImageLike, image_processor: GraftImageProcessor) -> tuple[torch.Tensor, np.ndarray]:
    """Model input and a displayable RGB copy of one image, through the same sensor-aware processor.

    Args:
        image: Anything `GraftImageProcessor` accepts: a PIL image, an HWC/CHW array or tensor (raw sensor values
            or RGB), or a path to a GeoTIFF or image file.
        image_processor: A `GraftImageProcessor` (its sensor settings pick and scale the RGB bands).

    Returns:
        `pixel_values` `(1, 3, size, size)` and uint8 `(height, width, 3)` RGB at the original resolution.
    """
    rgb = render_rgb(image, image_processor)
    pixel_values = image_processor(image)["pixel_values"]
    return pixel_values, rgb


def render_rgb(image: ImageLike, image_processor: GraftImageProcessor) -> np.ndarray:
    """uint8 `(height, width, 3)` RGB of one image at its own resolution, read by a sensor-aware processor (its
    sensor settings pick and scale the RGB bands of a band stack or GeoTIFF; an RGB picture passes through)."""
    unit = image_processor(image, do_resize=False, do_normalize=False)["pixel_values"]
    if unit.shape[0] != 1:
        raise ValueError(f"pass one image at a time, got a batch of {unit.shape[0]}")
    return _to_uint8_rgb(unit[0])


def render_overlay(
    image: RGBLike,
    mask: torch.Tensor | np.ndarray,
    class_names: Sequence[str],
    alpha: float = 0.5,
    background_index: int | None = None,
    legend: bool = True,
    palette: Sequence[tuple[int, int, int]] = PALETTE,
):
    """Draws a label mask over an image in colour, with a legend of the labels and their pixel shares.

    Args:
        image: uint8 `(height, width, 3)` RGB array or a PIL image of the mask's size.
        mask: `(height, width)` label ids.
        class_names: Names of the label ids.
        alpha: Opacity of the colours (0: image only, 1: colours only).
        background_index: Label drawn transparent (shown in the legend without a colour swatch fill).
        legend: Add a legend panel to the right of the image.
        palette: RGB colours, cycled when there are more labels than colours.

    Returns:
        An RGB `PIL.Image.Image`.
    """
    rgb = np.asarray(image.convert("RGB")) if hasattr(image, "convert") else np.asarray(image)
    labels = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask).astype(np.int64)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (height, width, 3) RGB, got {rgb.dtype} {rgb.shape}")
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"mask {labels.shape} and image {rgb.shape[:2]} differ in size; resize one to the other")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    colours = np.array([palette[i % len(palette)] for i in range(len(class_names))], dtype=np.float32)
    blended = rgb.astype(np.float32)
    paint = np.ones(labels.shape, dtype=bool) if background_index is None else labels != background_index
    blended[paint] = (1 - alpha) * blended[paint] + alpha * colours[labels[paint]]
    canvas = Image.fromarray(blended.round().astype(np.uint8))
    if not legend:
        return canvas
    shares = np.bincount(labels.ravel(), minlength=len(class_names)) / labels.size
    entries = [f"{name} ({100 * share:.1f}%)" for name, share in zip(class_names, shares)]
    return _with_legend_panel(canvas, entries, colours, background_index)


def _with_legend_panel(
    canvas: Image.Image, entries: list[str], colours: np.ndarray, background_index: int | None
) -> Image.Image:
    """`canvas` with a white panel to its right listing `entries` next to colour swatches (the background hollow)."""
    font_size = max(10, min(24, canvas.height // max(len(entries), 1) // 2))
    font = load_font(font_size)
    line = font_size + 6
    measure = ImageDraw.Draw(canvas)
    text_width = max(int(measure.textlength(text, font=font)) for text in entries)
    panel_width = text_width + line + 16
    out = Image.new("RGB", (canvas.width + panel_width, max(canvas.height, line * len(entries) + 8)), "white")
    out.paste(canvas, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, text in enumerate(entries):
        x, y = canvas.width + 6, 4 + i * line
        swatch = (x, y + 2, x + font_size, y + 2 + font_size)
        if i == background_index:
            draw.rectangle(swatch, outline=(0, 0, 0))
        else:
            draw.rectangle(swatch, fill=tuple(int(c) for c in colours[i]), outline=(0, 0, 0))
        draw.text((x + font_size + 6, y), text, fill=(0, 0, 0), font=font)
    return out


def render_score_map(
    image: RGBLike,
    score_map: torch.Tensor | np.ndarray,
    alpha: float = 0.6,
    vmin: float | None = None,
    vmax: float | None = None,
):
    """A score map as a viridis heat map over the image (a PIL image), e.g. one class of `score_maps`.

    Args:
        image: uint8 `(height, width, 3)` RGB array or a PIL image.
        score_map: `(height, width)` scores (resized to the image with bilinear interpolation if needed).
        alpha: Opacity of the heat map.
        vmin: Score drawn darkest; the map's minimum by default.
        vmax: Score drawn brightest; the map's maximum by default.

    Returns:
        An RGB `PIL.Image.Image` of the image's size.
    """
    rgb = np.asarray(image.convert("RGB")) if hasattr(image, "convert") else np.asarray(image)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (height, width, 3) RGB, got {rgb.dtype} {rgb.shape}")
    scores = torch.as_tensor(np.asarray(score_map.cpu() if isinstance(score_map, torch.Tensor) else score_map))
    if scores.ndim != 2:
        raise ValueError(f"score_map must be (height, width), got {tuple(scores.shape)}")
    if tuple(scores.shape) != rgb.shape[:2]:
        scores = upsample_scores(scores[None].float(), rgb.shape[:2])[0]
    values = scores.float().numpy()
    low = float(values.min()) if vmin is None else vmin
    high = float(values.max()) if vmax is None else vmax
    colours = apply_colormap(values, low, high).astype(np.float32)
    blended = (1 - alpha) * rgb.astype(np.float32) + alpha * colours
    return Image.fromarray(blended.round().astype(np.uint8))


class ZeroShotSegmenter:
    """Segments satellite images into named classes with a pixel-level GRAFT model.

    Args:
        model: A `GraftModel` with a patch head.
        tokenizer: Its CLIP tokenizer (`graft_hf.tokenizer.load_clip_tokenizer()` works offline).
        image_processor: A `GraftImageProcessor`; defaults to the one matching `model.config`.
    """

    def __init__(
        self,
        model: GraftModel,
        tokenizer: PreTrainedTokenizerBase,
        image_processor: GraftImageProcessor | None = None,
    ) -> None:
        if image_processor is None:
            image_processor = GraftImageProcessor.from_graft_config(model.config)
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self._query_cache: dict[tuple[tuple[str, ...], Any], torch.Tensor] = {}

    def encode_queries(self, queries: Sequence[str], templates: str | Sequence[str] | None) -> torch.Tensor:
        """Unit-norm query embeddings `(num_queries, dim)`, cached per (queries, templates)."""
        key = (tuple(queries), templates if templates is None or isinstance(templates, str) else tuple(templates))
        if key not in self._query_cache:
            self._query_cache[key] = encode_queries(self.model, self.tokenizer, list(queries), templates)
        return self._query_cache[key]

    @torch.no_grad()
    def patch_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(grid_h, grid_w, dim)` patch embeddings of one prepared image `(1, 3, size, size)`."""
        return self.model.get_patch_features(pixel_values.to(model_device(self.model)))[0]

    def query_patch_scores(
        self, pixel_values: torch.Tensor, queries: Sequence[str], templates: str | Sequence[str] | None
    ) -> torch.Tensor:
        """Cosine similarity `(num_queries, grid_h, grid_w)` of the image's patches with text queries."""
        return patch_similarity(self.patch_embeds(pixel_values), self.encode_queries(queries, templates)).cpu()

    def segment(
        self, image: ImageLike, class_names: Sequence[str], config: SegmentationConfig | None = None
    ) -> SegmentationResult:
        """Segments one image.

        Args:
            image: A PIL image, an array/tensor (HWC or CHW, raw sensor values or RGB) or a GeoTIFF/image path.
            class_names: Names of the classes to find, e.g. `["water", "road", "trees"]`.
            config: Options; defaults to `SegmentationConfig()`.

        Returns:
            A :class:`SegmentationResult` at the image's own resolution, carrying an RGB copy for overlays.
        """
        config = config or SegmentationConfig()
        class_names = tuple(class_names)
        if not class_names or len(set(class_names)) != len(class_names):
            raise ValueError(f"class_names must be non-empty and unique, got {list(class_names)}")
        pixel_values, rgb = prepare_image(image, self.image_processor)
        queries = class_names + ((config.background_prompt,) if config.background_prompt is not None else ())
        scores = self.query_patch_scores(pixel_values, queries, config.templates)
        background = scores[-1] if config.background_prompt is not None else None
        scores = scores[: len(class_names)]
        result = segment_from_patch_scores(scores, rgb.shape[:2], class_names, config, background)
        result.image = rgb
        logger.info("segmented a %dx%d image into %d labels", rgb.shape[0], rgb.shape[1], len(result.class_names))
        return result


def evaluate_segmentation(
    segmenter: Segmenter,
    samples: Iterable[tuple[Any, Any]],
    class_names: Sequence[str],
    config: SegmentationConfig | None = None,
    ignore_index: int | None = None,
    *,
    progress: bool = False,
    total: int | None = None,
) -> SegmentationMetrics:
    """Per-class accuracy (GRAFT Table 3), IoU and pixel accuracy of zero-shot segmentation over a dataset.

    Every sample is scored on its label's own grid: a mask at the image's resolution is compared pixel by pixel; a
    coarser mask covering the same extent (SatlasPretrain's NAIP labels: 1/16 of the image) is compared with the
    scores averaged over each of its cells (:func:`mask_on_grid`), so each label cell counts once.

    Args:
        segmenter: A :class:`ZeroShotSegmenter`, or any :class:`Segmenter` (the CLIPSeg baseline).
        samples: `(image, true_mask)` pairs; masks are `(grid_h, grid_w)` class ids in the order of `class_names`,
            at the image's resolution or a coarser grid with the same aspect ratio.
        class_names: The classes to segment (prompts are built from them).
        config: Segmentation options. With a background label, background predictions count as errors unless
            the ground truth uses id `len(class_names)` for background.
        ignore_index: Ground-truth id of unlabelled pixels.
        progress: Show a progress bar.
        total: Number of samples, for the progress bar.

    Returns:
        :class:`~graft_hf.evaluation.segmentation_metrics.SegmentationMetrics` accumulated over every label cell.
    """
    config = config or SegmentationConfig()
    names = tuple(class_names) + ((config.background_name,) if config.has_background else ())
    evaluator = SegmentationEvaluator(len(names), ignore_index, names)
    iterator = tqdm(samples, total=total, desc="segmenting", unit="image", disable=not progress)
    for count, (image, target) in enumerate(iterator, start=1):
        result = segmenter.segment(image, class_names, config)
        target = torch.as_tensor(np.asarray(target))
        if target.ndim != 2:
            raise ValueError(f"sample {count}: the true mask must be (height, width), got {tuple(target.shape)}")
        try:
            pred = mask_on_grid(result, tuple(target.shape))
        except ValueError as error:
            raise ValueError(f"sample {count}: {error}") from error
        evaluator.update(pred, target)
    return evaluator.compute()
