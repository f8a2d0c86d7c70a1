"""CLIPSeg (Lüddecke and Ecker, CVPR 2022) as a zero-shot segmentation baseline, through transformers' CLIPSeg classes.

CLIPSeg conditions a small decoder on a CLIP text embedding and predicts one binary mask per prompt. Segmenting
into several classes runs the image once per class (`CLIPSegForImageSegmentation` pairs every conditional
embedding with one copy of the image) and takes, at each pixel, the class with the highest probability; the
probabilities are upsampled bilinearly to the image's resolution first, as GRAFT's scores are, so both are scored
by the same :func:`graft_hf.tasks.segmentation.evaluate_segmentation` on the label's own grid.

Prompt templates are ensembled as for GRAFT (`ensemble_text_embeddings`: the direction is the mean of the unit
prompt embeddings), and the ensemble is rescaled to the prompts' mean norm, because CLIPSeg's FiLM conditioning
was trained on CLIP's unnormalised text projections.

Example:
    >>> segmenter = load_clipseg("path/to/clipseg-rd64-refined")          # a local copy of CIDAS/clipseg-rd64-refined
    >>> result = segmenter.segment("tile.png", ["water", "road", "trees"])
    >>> result.mask.shape, result.score_maps.shape                          # (H, W), (3, H, W)
"""

import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

from graft_hf.evaluation.errors import UnavailableSourceError
from graft_hf.modeling import GraftImageProcessor
from graft_hf.modeling.modeling_graft import ensemble_text_embeddings
from graft_hf.tasks.segmentation import (
    ImageLike,
    SegmentationConfig,
    SegmentationResult,
    render_rgb,
    segment_from_patch_scores,
)
from graft_hf.tasks.text import model_device

logger = logging.getLogger(__name__)

__all__ = ["CLIPSegSegmenter", "load_clipseg"]


class CLIPSegSegmenter:
    """Zero-shot segmentation with a CLIPSeg model, with the interface of `ZeroShotSegmenter`.

    Scores are CLIPSeg's per-pixel sigmoid probabilities: `SegmentationConfig.score` and `logit_scale` do not
    apply, and `score_threshold` is a probability. `SegmentationResult.patch_scores` holds the probabilities on
    CLIPSeg's own output grid (its processor's input size).

    Args:
        model: A `CLIPSegForImageSegmentation`.
        processor: Its `CLIPSegProcessor` (image processor + CLIP tokenizer).
        sensor: Sensor of band stacks and GeoTIFFs given to :meth:`segment` (a `graft_hf.modeling.SENSORS` name);
            their RGB bands are rendered to 8-bit RGB first. RGB pictures pass through.
        batch_size: Prompts (image copies) per forward pass.
    """

    def __init__(
        self,
        model: CLIPSegForImageSegmentation,
        processor: CLIPSegProcessor,
        sensor: str = "rgb",
        batch_size: int = 16,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = model.eval()
        self.processor = processor
        self.rgb_processor = GraftImageProcessor(sensor=sensor, do_resize=False, do_normalize=False)
        self.batch_size = batch_size
        self._query_cache: dict[tuple[Any, ...], torch.Tensor] = {}

    @torch.no_grad()
    def _text_embeds(self, prompts: list[str]) -> torch.Tensor:
        """`(num_prompts, projection_dim)` CLIPSeg conditional embeddings (CLIP text projections, unnormalised)."""
        tokens = self.processor.tokenizer(prompts, padding=True, truncation=True, return_tensors="pt")
        device = model_device(self.model)
        return self.model.get_conditional_embeddings(
            batch_size=len(prompts),
            input_ids=tokens["input_ids"].to(device),
            attention_mask=tokens["attention_mask"].to(device),
        ).float()

    def encode_queries(self, queries: Sequence[str], templates: str | Sequence[str] | None) -> torch.Tensor:
        """`(num_queries, projection_dim)` conditional embeddings, template-ensembled, cached per (queries, templates).

        Args:
            queries: Class names.
            templates: A template-set name (`graft_hf.evaluation.templates.TEMPLATE_SETS`), templates with one
                `{}`, or `None` for the names as written.
        """
        from graft_hf.evaluation.templates import get_templates

        resolved = None if templates is None else get_templates(templates)
        key = (tuple(queries), resolved)
        if key not in self._query_cache:
            norms: list[torch.Tensor] = []

            def encode(prompts: list[str]) -> torch.Tensor:
                embeds = self._text_embeds(prompts)
                norms.append(embeds.norm(dim=-1))
                return embeds

            direction = ensemble_text_embeddings(encode, list(queries), resolved, self.batch_size)
            # prompts are query-major, so each row of the reshaped norms is one query's templates
            scale = torch.cat(norms).reshape(len(queries), -1).mean(dim=1, keepdim=True)
            self._query_cache[key] = direction * scale.to(direction.device)
        return self._query_cache[key]

    @torch.no_grad()
    def query_probabilities(self, rgb: np.ndarray, conditional: torch.Tensor) -> torch.Tensor:
        """Sigmoid probabilities `(num_queries, out_h, out_w)` of every query on one RGB image, on CLIPSeg's grid.

        Args:
            rgb: uint8 `(height, width, 3)`.
            conditional: `(num_queries, projection_dim)` from :meth:`encode_queries`.
        """
        device = model_device(self.model)
        pixel_values = self.processor.image_processor(images=Image.fromarray(rgb), return_tensors="pt")["pixel_values"]
        pixel_values = pixel_values.to(device, self.model.dtype)
        chunks = []
        for start in range(0, conditional.shape[0], self.batch_size):
            part = conditional[start : start + self.batch_size].to(device, self.model.dtype)
            logits = self.model(
                pixel_values=pixel_values.expand(part.shape[0], -1, -1, -1), conditional_embeddings=part
            )
            chunks.append(logits.logits.reshape(part.shape[0], *logits.logits.shape[-2:]).float())
        return torch.cat(chunks).sigmoid().cpu()

    def segment(
        self, image: ImageLike, class_names: Sequence[str], config: SegmentationConfig | None = None
    ) -> SegmentationResult:
        """Segments one image (see `ZeroShotSegmenter.segment`; scores are probabilities, see the class).

        Args:
            image: A PIL image, an array/tensor (HWC or CHW, raw sensor values or RGB) or a GeoTIFF/image path.
            class_names: Names of the classes to find.
            config: Options (templates, background prompt, probability threshold); defaults to
                `SegmentationConfig()`.

        Returns:
            A `SegmentationResult` at the image's own resolution, carrying an RGB copy for overlays.
        """
        config = config or SegmentationConfig()
        class_names = tuple(class_names)
        if not class_names or len(set(class_names)) != len(class_names):
            raise ValueError(f"class_names must be non-empty and unique, got {list(class_names)}")
        rgb = render_rgb(image, self.rgb_processor)
        queries = class_names + ((config.background_prompt,) if config.background_prompt is not None else ())
        probabilities = self.query_probabilities(rgb, self.encode_queries(queries, config.templates))
        background = probabilities[-1] if config.background_prompt is not None else None
        raw = dataclasses.replace(config, score="cosine")  # probabilities are used as they are, never softmaxed
        result = segment_from_patch_scores(
            probabilities[: len(class_names)], rgb.shape[:2], class_names, raw, background
        )
        result.image = rgb
        return result


def load_clipseg(
    path: str | os.PathLike, device: str | torch.device = "cpu", sensor: str = "rgb", batch_size: int = 16
) -> CLIPSegSegmenter:
    """A :class:`CLIPSegSegmenter` from a saved CLIPSeg directory (or a Hub id where the Hub is reachable).

    Args:
        path: Folder with `config.json`, the weights and the processor files (e.g. a copy of
            `CIDAS/clipseg-rd64-refined`).
        device: `"auto"`, `"cpu"`, `"cuda"`, ...
        sensor: Sensor of band stacks / GeoTIFFs to be segmented (`"rgb"` for pictures).
        batch_size: Prompts per forward pass.

    Raises:
        RuntimeError: The model or processor cannot be loaded, naming how to pass a local copy.
        ValueError: The checkpoint lacks weights of the model (they would be left random).
    """
    name = os.fspath(path)
    try:
        model, info = CLIPSegForImageSegmentation.from_pretrained(name, output_loading_info=True)
        processor = CLIPSegProcessor.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise UnavailableSourceError(
            "model",
            f"could not load CLIPSeg from {name!r} ({type(error).__name__}: {str(error).splitlines()[0]}); download "
            "it where the Hub is reachable (`hf download CIDAS/clipseg-rd64-refined --local-dir DIR`) and pass "
            "model=DIR",
        ) from error
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise ValueError(
            f"CLIPSeg checkpoint {name!r} lacks {len(missing)} weights (e.g. {missing[:3]}), which would stay random; "
            "pass a complete CLIPSegForImageSegmentation checkpoint"
        )
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    logger.info("loaded CLIPSeg from %s (%s input)", name, processor.image_processor.size)
    return CLIPSegSegmenter(model.to(device), processor, sensor=sensor, batch_size=batch_size)
