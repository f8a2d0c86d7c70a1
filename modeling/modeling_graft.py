"""GRAFT models: a satellite ViT aligned to CLIP through geotagged ground photos (Mall, Phoo et al., ICLR 2024).

A [`GraftModel`] is CLIP-shaped. Its vision tower and visual projection encode satellite images into CLIP's joint
space (trained with GRAFT's contrastive loss against frozen CLIP embeddings of ground photos); CLIP's frozen text
tower and text projection ride along, so a saved GRAFT model answers text queries by itself. The pixel-level
variant adds a patch head that maps every ViT patch token into the same space.

Submodule names follow `CLIPModel` (`vision_model`, `visual_projection`, `text_model`, `text_projection`,
`logit_scale`) plus `patch_head`; they are the checkpoint format. This file is uploaded to the Hub as remote code:
it imports torch and transformers only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import CLIPConfig, CLIPModel, CLIPTextModel, CLIPVisionModel, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput

from .configuration_graft import GraftConfig

try:
    from huggingface_hub import is_offline_mode
except ImportError:  # huggingface_hub < 1.0, for remote-code users on older versions
    from transformers.utils import is_offline_mode

logger = logging.getLogger(__name__)

# Keys a CLIP checkpoint may carry that a GraftModel does not need (older transformers saved position ids).
_IGNORED_CLIP_KEYS = ("vision_model.embeddings.position_ids", "text_model.embeddings.position_ids")
#: Keyword arguments of `GraftModel.push_to_hub` that a push handler (`GraftModel.set_push_handler`) receives.
PUSH_HANDLER_KWARGS = frozenset({"private", "token", "revision", "create_pr", "commit_message"})


@dataclass
class GraftOutput(ModelOutput):
    """Output of [`GraftModel.forward`].

    Args:
        logits_per_image: `(image_batch, text_batch)` scaled cosine similarities, present with both inputs.
        logits_per_text: `(text_batch, image_batch)`, the transpose of `logits_per_image`.
        image_embeds: `(image_batch, projection_dim)` L2-normalised satellite image embeddings.
        text_embeds: `(text_batch, projection_dim)` L2-normalised text embeddings.
        patch_embeds: `(image_batch, grid_h, grid_w, projection_dim)` L2-normalised patch embeddings, when the
            model has a patch head and `output_patch_embeds=True`.
        vision_model_output: Output of the vision tower (`last_hidden_state`, `pooler_output`, ...).
        text_model_output: Output of the text tower.
    """

    logits_per_image: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    patch_embeds: torch.Tensor | None = None
    vision_model_output: BaseModelOutputWithPooling | None = None
    text_model_output: BaseModelOutputWithPooling | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(
            self[k] if k not in ("text_model_output", "vision_model_output") else getattr(self, k).to_tuple()
            for k in self.keys()
        )


class GraftPatchHead(nn.Module):
    """Pixel-level head: LayerNorm then a linear map of each patch token to the joint space.

    The layout of the authors' `projector` (`LayerNorm` + `Linear`, whose bias is optional: `config.patch_head_bias`).
    """

    def __init__(self, hidden_size: int, projection_dim: int, eps: float, bias: bool = False) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        self.proj = nn.Linear(hidden_size, projection_dim, bias=bias)
        if self.proj.bias is not None:
            nn.init.zeros_(self.proj.bias)  # a new head starts as the bias-free map

    def forward(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(patch_tokens))


def _l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(p=2, dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def ensemble_text_embeddings(
    encode_text: Callable[[list[str]], torch.Tensor],
    queries: Sequence[str],
    templates: Sequence[str] | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """CLIP's prompt ensembling: one unit-norm embedding per query, averaged over prompt templates.

    Each query `q` is embedded as every `t.replace("{}", q)`; the L2-normalised embeddings of one query's prompts
    are averaged and the mean is re-normalised (Radford et al. 2021, sec. 3.1.4: averaging in embedding space).
    This is the one implementation behind `GraftModel.encode_text_queries` and graft-hf's zero-shot classifiers
    and pixel-level task queries; it lives here so that the model works as Hub remote code on its own.

    Args:
        encode_text: Maps a list of `b` prompts to `(b, dim)` text embeddings (need not be normalised).
        queries: Texts to embed, e.g. class names.
        templates: Templates with exactly one `{}` each; `None` embeds the queries as written.
        batch_size: Prompts per `encode_text` call.

    Returns:
        float32 `(num_queries, dim)` with unit-norm rows, on the device `encode_text` returned.

    Raises:
        ValueError: No query, a template without exactly one `{}`, a non-positive `batch_size`, or `encode_text`
            returning the wrong shape or non-finite values.
    """
    queries = list(queries)
    if not queries:
        raise ValueError("no text queries given; pass at least one")
    prompt_templates = list(templates) if templates else ["{}"]
    for template in prompt_templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(f"each template must contain exactly one '{{}}' placeholder, got {template!r}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    prompts = [t.replace("{}", q) for q in queries for t in prompt_templates]  # query-major
    chunks = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        embeds = torch.as_tensor(encode_text(batch))
        if embeds.ndim != 2 or embeds.shape[0] != len(batch):
            raise ValueError(
                f"encode_text must return (num_prompts, dim) = ({len(batch)}, dim), got {tuple(embeds.shape)}"
            )
        if not torch.isfinite(embeds).all():
            raise ValueError(f"encode_text returned non-finite embeddings for prompts {batch[:3]}...")
        chunks.append(_l2_normalize(embeds.float()))
    embeds = torch.cat(chunks).reshape(len(queries), len(prompt_templates), -1)  # (num_queries, templates, dim)
    return _l2_normalize(embeds.mean(dim=1))


def _is_initialised(tensor: torch.Tensor) -> bool:
    # transformers >= 5 flags tensors loaded from a checkpoint; never overwrite those.
    return bool(getattr(tensor, "_is_hf_initialized", False))


class GraftPreTrainedModel(PreTrainedModel):
    config_class = GraftConfig
    base_model_prefix = "graft"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["CLIPTextEmbeddings", "CLIPEncoderLayer", "CLIPVisionEmbeddings"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The CLIP towers are PreTrainedModels and initialise themselves; this covers GRAFT's own parameters.
        factor = self.config.initializer_factor
        if isinstance(module, GraftModel):
            for linear, fan_in in (
                (module.visual_projection, self.config.vision_config.hidden_size),
                (module.text_projection, self.config.text_config.hidden_size),
            ):
                if not _is_initialised(linear.weight):
                    nn.init.normal_(linear.weight, std=fan_in**-0.5 * factor)
            if not _is_initialised(module.logit_scale):
                module.logit_scale.fill_(self.config.logit_scale_init_value)
        elif isinstance(module, GraftPatchHead):
            if not _is_initialised(module.norm.weight):
                module.norm.weight.fill_(1.0)
            if not _is_initialised(module.norm.bias):
                module.norm.bias.zero_()
            if not _is_initialised(module.proj.weight):
                nn.init.normal_(module.proj.weight, std=module.proj.in_features**-0.5 * factor)
            if module.proj.bias is not None and not _is_initialised(module.proj.bias):
                module.proj.bias.zero_()


class GraftModel(GraftPreTrainedModel):
    """GRAFT two-tower model: trainable satellite vision tower, frozen CLIP text tower, optional patch head.

    Example:
        ```python
        >>> import graft_hf  # registers GRAFT with the Auto classes
        >>> from transformers import AutoModel, AutoProcessor
        >>> model = AutoModel.from_pretrained("path/to/graft-naip-vitb16")
        >>> processor = AutoProcessor.from_pretrained("path/to/graft-naip-vitb16")
        >>> inputs = processor(text=["farmland", "a solar farm"], images="tile.tif", return_tensors="pt", padding=True)
        >>> probs = model(**inputs).logits_per_image.softmax(dim=-1)
        ```
    """

    def __init__(self, config: GraftConfig) -> None:
        super().__init__(config)
        vision_config, text_config = config.vision_config, config.text_config
        self.vision_model = CLIPVisionModel._from_config(vision_config)
        self.text_model = CLIPTextModel._from_config(text_config)
        self.visual_projection = nn.Linear(vision_config.hidden_size, config.projection_dim, bias=False)
        self.text_projection = nn.Linear(text_config.hidden_size, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init_value))
        self.patch_head = (
            GraftPatchHead(
                vision_config.hidden_size, config.projection_dim, vision_config.layer_norm_eps, config.patch_head_bias
            )
            if config.use_patch_head
            else None
        )
        self.post_init()
        if config.freeze_text_tower:
            self.freeze_text_tower()

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> GraftModel:
        """Load a saved GRAFT model; the text tower stays frozen as its config says (loading re-creates parameters)."""
        model = super().from_pretrained(*args, **kwargs)
        if isinstance(model, GraftModel) and model.config.freeze_text_tower:
            model.freeze_text_tower()
        return model

    def freeze_text_tower(self) -> None:
        """Freeze CLIP's text tower, text projection and logit scale (GRAFT trains the satellite side only)."""
        for module in (self.text_model, self.text_projection):
            module.requires_grad_(False)
        self.logit_scale.requires_grad_(False)

    # ----------------------------------------------------------------------------------------------- encoders
    def _vision_forward(
        self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool | None, **kwargs: Any
    ) -> BaseModelOutputWithPooling:
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values must be (batch, 3, height, width), got shape {tuple(pixel_values.shape)}; "
                "prepare images with GraftProcessor / GraftImageProcessor"
            )
        if pixel_values.shape[0] == 0:
            raise ValueError("pixel_values is an empty batch (batch size 0); pass at least one image")
        if interpolate_pos_encoding is None:
            size = self.config.vision_config.image_size
            interpolate_pos_encoding = tuple(pixel_values.shape[-2:]) != (size, size)
        return self.vision_model(
            pixel_values=pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, return_dict=True, **kwargs
        )

    def get_image_features(
        self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool | None = None
    ) -> torch.Tensor:
        """Satellite image embeddings in the joint space (projected, not normalised, as CLIP's).

        Args:
            pixel_values: `(batch, 3, height, width)` normalised images.
            interpolate_pos_encoding: Interpolate position embeddings; `None` does so when the input size differs
                from `config.vision_config.image_size`.

        Returns:
            `(batch, projection_dim)` embeddings.
        """
        self._warn_if_image_embeds_untrained()
        pooled = self._vision_forward(pixel_values, interpolate_pos_encoding).pooler_output
        return self.visual_projection(pooled)

    def _warn_if_image_embeds_untrained(self) -> None:
        # Pixel-level checkpoints whose training never reached the pooled head (config.image_embeds_trained=False).
        if getattr(self.config, "image_embeds_trained", True) or getattr(self, "_warned_untrained", False):
            return
        self._warned_untrained = True
        logger.warning(
            "this pixel-level GRAFT model's image embedding was never trained (config.image_embeds_trained=False): "
            "image-level scores from it are not meaningful; use get_patch_features, or an image-level checkpoint"
        )

    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Text embeddings in the joint space (projected, not normalised).

        Args:
            input_ids: `(batch, sequence_length)` CLIP token ids.
            attention_mask: `(batch, sequence_length)` padding mask.
            position_ids: optional `(batch, sequence_length)` positions.

        Returns:
            `(batch, projection_dim)` embeddings.
        """
        if input_ids.ndim != 2 or input_ids.shape[0] == 0:
            raise ValueError(
                f"input_ids must be a non-empty (batch, sequence_length) tensor, got {tuple(input_ids.shape)}"
            )
        pooled = self.text_model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, return_dict=True
        ).pooler_output
        return self.text_projection(pooled)

    def _patch_embeds(self, last_hidden_state: torch.Tensor, height: int, width: int) -> torch.Tensor:
        if self.patch_head is None:
            raise ValueError(
                "this GRAFT model has no patch head (config.use_patch_head=False: an image-level model); "
                "load a pixel-level checkpoint or build the model with use_patch_head=True"
            )
        patch = self.config.vision_config.patch_size
        grid_h, grid_w = height // patch, width // patch
        tokens = last_hidden_state[:, 1:, :]  # (batch, grid_h * grid_w, hidden): drop CLS
        embeds = _l2_normalize(self.patch_head(tokens))  # (batch, grid_h * grid_w, projection_dim)
        return embeds.reshape(embeds.shape[0], grid_h, grid_w, embeds.shape[-1])

    def get_patch_features(
        self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool | None = None
    ) -> torch.Tensor:
        """Text-aligned patch embeddings of the pixel-level model (CLS excluded).

        Args:
            pixel_values: `(batch, 3, height, width)` normalised images; other sizes than the training size use
                interpolated position embeddings.
            interpolate_pos_encoding: As in [`get_image_features`].

        Returns:
            `(batch, grid_h, grid_w, projection_dim)` L2-normalised embeddings, `grid = size // patch_size`.
        """
        hidden = self._vision_forward(pixel_values, interpolate_pos_encoding).last_hidden_state
        return self._patch_embeds(hidden, pixel_values.shape[-2], pixel_values.shape[-1])

    # ----------------------------------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        output_patch_embeds: bool = False,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> GraftOutput | tuple:
        """Encode images and/or texts; with both, return CLIP-style similarity logits.

        Args:
            input_ids: `(text_batch, sequence_length)` CLIP token ids.
            pixel_values: `(image_batch, 3, height, width)` normalised satellite images.
            attention_mask: `(text_batch, sequence_length)` padding mask.
            position_ids: optional text positions.
            interpolate_pos_encoding: See [`get_image_features`].
            output_patch_embeds: Also return the patch embedding grid (pixel-level models).
            return_dict: Return a [`GraftOutput`] (default) or a tuple.
        """
        if input_ids is None and pixel_values is None:
            raise ValueError("pass pixel_values, input_ids or both")
        image_embeds = text_embeds = patch_embeds = logits_per_image = logits_per_text = None
        vision_outputs = text_outputs = None
        if pixel_values is not None:
            vision_outputs = self._vision_forward(pixel_values, interpolate_pos_encoding)
            image_embeds = _l2_normalize(self.visual_projection(vision_outputs.pooler_output))
            if not output_patch_embeds:
                self._warn_if_image_embeds_untrained()
            if output_patch_embeds:
                patch_embeds = self._patch_embeds(
                    vision_outputs.last_hidden_state, pixel_values.shape[-2], pixel_values.shape[-1]
                )
        if input_ids is not None:
            text_outputs = self.text_model(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, return_dict=True
            )
            text_embeds = _l2_normalize(self.text_projection(text_outputs.pooler_output))
        if image_embeds is not None and text_embeds is not None:
            logits_per_text = text_embeds @ image_embeds.t().to(text_embeds.device) * self.logit_scale.exp()
            logits_per_image = logits_per_text.t()
        output = GraftOutput(
            logits_per_image=logits_per_image,
            logits_per_text=logits_per_text,
            image_embeds=image_embeds,
            text_embeds=text_embeds,
            patch_embeds=patch_embeds,
            vision_model_output=vision_outputs,
            text_model_output=text_outputs,
        )
        if return_dict is False:
            return tuple(v for v in output.to_tuple() if v is not None)
        return output

    # ------------------------------------------------------------------------------------------ zero-shot
    @torch.no_grad()
    def encode_text_queries(
        self,
        texts: str | list[str],
        tokenizer: Any,
        templates: list[str] | tuple[str, ...] | None = None,
        batch_size: int = 256,
    ) -> torch.Tensor:
        """L2-normalised text embeddings of queries, optionally averaged over a prompt-template ensemble.

        With `templates`, each query `q` is embedded as every `t.format(q)` (each template holds one `{}`); the
        normalised prompt embeddings are averaged and the mean re-normalised (CLIP's prompt ensembling, see
        [`ensemble_text_embeddings`]).

        Args:
            texts: A query or a list of queries (e.g. class names).
            tokenizer: A CLIP tokenizer, or a processor with a `tokenizer` attribute (`GraftProcessor`).
            templates: Prompt templates such as `"a satellite photo of {}."`; `None` embeds the texts as given.
            batch_size: Prompts per forward pass.

        Returns:
            `(num_texts, projection_dim)` unit-norm embeddings.
        """
        queries = [texts] if isinstance(texts, str) else list(texts)
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
        max_length = int(self.config.text_config.max_position_embeddings)
        device = self.text_projection.weight.device

        def encode(prompts: list[str]) -> torch.Tensor:
            tokens = tokenizer(prompts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            mask = tokens.get("attention_mask")
            return self.get_text_features(tokens["input_ids"].to(device), None if mask is None else mask.to(device))

        return ensemble_text_embeddings(encode, queries, templates, batch_size)

    @torch.no_grad()
    def zero_shot_classify(
        self,
        images: Any,
        class_names: list[str] | tuple[str, ...],
        processor: Any,
        templates: list[str] | tuple[str, ...] | None = None,
    ) -> torch.Tensor:
        """Zero-shot class probabilities of satellite images.

        Logits are `exp(logit_scale) * cos(image, class)` with class embeddings from
        [`encode_text_queries`], as in CLIP; the softmax runs over `class_names`.

        Args:
            images: Anything the processor's image side accepts (PIL images, `(bands, H, W)` arrays, paths).
            class_names: One name per class.
            processor: A `GraftProcessor` (image processor + tokenizer).
            templates: Prompt templates to ensemble (e.g. `["a satellite photo of {}."]`); `None` uses the names.

        Returns:
            `(num_images, num_classes)` probabilities (rows sum to 1).
        """
        if len(class_names) == 0:
            raise ValueError("class_names is empty; pass at least one class name")
        image_processor = getattr(processor, "image_processor", processor)
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None:
            raise ValueError("processor has no tokenizer; pass a GraftProcessor (image processor + CLIP tokenizer)")
        device = self.visual_projection.weight.device
        pixel_values = image_processor(images, return_tensors="pt")["pixel_values"].to(device, self.dtype)
        image_embeds = _l2_normalize(self.get_image_features(pixel_values).float())  # (num_images, dim)
        class_embeds = self.encode_text_queries(list(class_names), tokenizer, templates)  # (num_classes, dim)
        logits = self.logit_scale.exp().float() * image_embeds @ class_embeds.T.to(device)
        return logits.softmax(dim=-1)

    # ------------------------------------------------------------------------------------- CLIP interchange
    @classmethod
    def from_clip(
        cls,
        clip_model_or_path: CLIPModel | str | os.PathLike,
        *,
        use_patch_head: bool = True,
        sensor: str = "naip",
        **config_kwargs: Any,
    ) -> GraftModel:
        """Build a GRAFT model initialised from a CLIP checkpoint, as the paper does.

        The vision tower, both projections, the text tower and the logit scale are copied exactly; the patch head
        starts as CLIP's `post_layernorm` followed by its visual projection (so patch tokens begin in CLIP's space).

        Args:
            clip_model_or_path: A transformers `CLIPModel`, a local directory, or a Hub id (needs network).
            use_patch_head: Add the pixel-level patch head.
            sensor: Sensor preset for the metadata (`naip`, `sentinel2`, ...).
            **config_kwargs: Further [`GraftConfig`] fields (e.g. `gsd`, `band_names`).
        """
        clip = clip_model_or_path if isinstance(clip_model_or_path, CLIPModel) else _load_clip(clip_model_or_path)
        clip_config = clip.config
        config = GraftConfig(
            vision_config=clip_config.vision_config.to_dict(),
            text_config=clip_config.text_config.to_dict(),
            projection_dim=clip_config.projection_dim,
            logit_scale_init_value=float(clip.logit_scale.detach()),
            use_patch_head=use_patch_head,
            sensor=sensor,
            **config_kwargs,
        )
        model = cls(config)
        state = {k: v for k, v in clip.state_dict().items() if k not in _IGNORED_CLIP_KEYS}
        result = model.load_state_dict(state, strict=False)
        allowed_missing = {k for k in model.state_dict() if k.startswith("patch_head.") or k.endswith("position_ids")}
        _check_load_result(result, allowed_missing=allowed_missing, allowed_unexpected=set(), source="CLIP checkpoint")
        if model.patch_head is not None:
            with torch.no_grad():
                model.patch_head.norm.load_state_dict(clip.vision_model.post_layernorm.state_dict())
                model.patch_head.proj.weight.copy_(clip.visual_projection.weight)
                if model.patch_head.proj.bias is not None:
                    model.patch_head.proj.bias.zero_()
        model.to(dtype=next(clip.parameters()).dtype)
        return model

    def to_clip(self) -> CLIPModel:
        """A plain transformers `CLIPModel` with this model's image-level weights (the patch head is dropped).

        The result loads anywhere with no custom code and gives identical image and text embeddings.
        """
        if self.patch_head is not None:
            logger.warning("CLIPModel has no patch head: the pixel-level head is not exported")
        config = CLIPConfig(
            text_config=self.config.text_config.to_dict(),
            vision_config=self.config.vision_config.to_dict(),
            projection_dim=self.config.projection_dim,
            logit_scale_init_value=self.config.logit_scale_init_value,
        )
        clip = CLIPModel(config).to(self.dtype)
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("patch_head.")}
        result = clip.load_state_dict(state, strict=False)
        _check_load_result(
            result,
            allowed_missing={k for k in clip.state_dict() if k.endswith("position_ids")},
            allowed_unexpected=set(),
            source="GRAFT model",
        )
        return clip.eval()

    def save_clip_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Save as a plain `CLIPModel` directory (see [`to_clip`])."""
        self.to_clip().save_pretrained(save_directory, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Save config (with `auto_map`), the model files as remote code and safetensors weights."""
        self.config.auto_map = {
            "AutoConfig": "configuration_graft.GraftConfig",
            "AutoModel": "modeling_graft.GraftModel",
            "AutoModelForZeroShotImageClassification": "modeling_graft.GraftModel",
        }
        if kwargs.get("safe_serialization") is False:
            raise ValueError("GRAFT weights are written as safetensors only; drop safe_serialization=False")
        kwargs.pop("safe_serialization", None)
        super().save_pretrained(save_directory, **kwargs)

    # ------------------------------------------------------------------------------------------------- Hub
    #: Replaces transformers' push in `push_to_hub` when set (see `set_push_handler`); `None` by default.
    push_handler: ClassVar[Callable[..., Any] | None] = None

    @classmethod
    def set_push_handler(cls, handler: Callable[..., Any] | None) -> None:
        """Route `push_to_hub` through `handler(model, repo_id, **kwargs)`; `None` restores transformers' push.

        This is the hook through which a package built on these model files publishes more than transformers does:
        importing `graft_hf` sets it to `graft_hf.hub.push_model`, which sends weights, config, remote code,
        processor and model card in one commit. The handler receives the keyword arguments named in
        `PUSH_HANDLER_KWARGS`; a call with any other argument goes to transformers' `push_to_hub`.

        Args:
            handler: Called as `handler(model, repo_id, **kwargs)`; its return value is `push_to_hub`'s.
        """
        cls.push_handler = None if handler is None else staticmethod(handler)  # type: ignore[assignment]

    def push_to_hub(self, repo_id: str, *args: Any, **kwargs: Any) -> Any:
        """Push to the Hub, through the push handler when one is set (see `set_push_handler`).

        With `graft_hf` imported the handler is `graft_hf.hub.push_model` (any repo name allowed; `graft push`
        also checks the name against the config): safetensors weights, the config with `auto_map`, the model files
        as remote code, the processor built from the config and a rendered model card, all in a single commit,
        returning its `PushResult`. Without a handler (these files loaded as remote code), or with an argument
        outside `PUSH_HANDLER_KWARGS`, this is transformers' `push_to_hub` (weights, config and code only).
        """
        handler = type(self).push_handler
        if handler is None or args or set(kwargs) - PUSH_HANDLER_KWARGS:
            return super().push_to_hub(repo_id, *args, **kwargs)
        return handler(self, repo_id, **kwargs)


def _load_clip(path_or_id: str | os.PathLike) -> CLIPModel:
    try:
        return CLIPModel.from_pretrained(path_or_id)
    except (OSError, ValueError) as err:
        offline = is_offline_mode()
        hint = "HF_HUB_OFFLINE is set, so Hub ids cannot be fetched; " if offline else "it may be offline or missing; "
        raise OSError(
            f"could not load a CLIP checkpoint from {str(path_or_id)!r}: {hint}download it where the Hub is "
            f"reachable (`hf download {path_or_id} --local-dir DIR`) and pass the local DIR instead. "
            f"Underlying error: {err}"
        ) from err


def _check_load_result(result: Any, *, allowed_missing: set[str], allowed_unexpected: set[str], source: str) -> None:
    missing = set(result.missing_keys) - allowed_missing
    unexpected = set(result.unexpected_keys) - allowed_unexpected
    if missing or unexpected:
        raise ValueError(
            f"{source} does not match the model: missing keys {sorted(missing)[:10]}, unexpected keys "
            f"{sorted(unexpected)[:10]}; check that the checkpoint and the configuration describe the same "
            "architecture"
        )


__all__ = [
    "PUSH_HANDLER_KWARGS",
    "GraftModel",
    "GraftOutput",
    "GraftPatchHead",
    "GraftPreTrainedModel",
    "ensemble_text_embeddings",
]
