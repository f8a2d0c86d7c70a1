"""The GRAFT authors' LightningModule re-implemented, and checkpoints of it, for the `graft convert` tests.

`AuthorsGraft` is the authors' `GRAFT(CLIP_version, temp, bias_projector)` module: a transformers
`CLIPVisionModelWithProjection` as `satellite_image_backbone`, a `projector = Sequential(LayerNorm, Linear)` built at
both levels (with a bias unless `bias_projector=False`), and a `logit_scale` buffer of 1/0.07 when `temp=True`.
`forward` gives the normalised projector output of every token (CLS first), `forward_features` the normalised
`image_embeds`. `train_authors` runs a few AdamW steps through one of the two outputs, the way image-level and
pixel-level training do, so the head the loss never reaches keeps its initial value bit for bit.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPModel, CLIPVisionModelWithProjection

from graft_hf.testing import tiny_clip_model

TEMPERATURE = 0.07


class AuthorsGraft(nn.Module):
    """The authors' GRAFT module around a CLIP vision tower (initialised from `clip`)."""

    def __init__(self, clip: CLIPModel, temp: bool = True, bias_projector: bool = True) -> None:
        super().__init__()
        config = copy.deepcopy(clip.config.vision_config)
        config.projection_dim = clip.config.projection_dim
        self.satellite_image_backbone = CLIPVisionModelWithProjection(config)
        clip_vision = {k: v for k, v in clip.state_dict().items() if k.startswith(("vision_model.", "visual_proj"))}
        result = self.satellite_image_backbone.load_state_dict(clip_vision, strict=False)
        assert not result.unexpected_keys and all(k.endswith("position_ids") for k in result.missing_keys)
        self.projector = nn.Sequential(
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps),
            nn.Linear(config.hidden_size, config.projection_dim, bias=bias_projector),
        )
        if temp:
            self.register_buffer("logit_scale", torch.ones([]) * (1 / TEMPERATURE))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(batch, 1 + patches, projection_dim)` normalised projector output of every token (CLS first)."""
        hidden = self.satellite_image_backbone(pixel_values).last_hidden_state  # (batch, 1 + patches, hidden)
        return F.normalize(self.projector(hidden), dim=-1)

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(batch, projection_dim)` normalised image embeddings."""
        return F.normalize(self.satellite_image_backbone(pixel_values).image_embeds)

    @torch.no_grad()
    def embeds(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(image_embeds, patch_embeds)`: unnormalised image embeddings and the normalised patch outputs."""
        image_embeds = self.satellite_image_backbone(pixel_values).image_embeds
        return image_embeds, self(pixel_values)[:, 1:]


def tiny_clip(patch_size: int = 8) -> CLIPModel:
    """Tiny CLIP with a trained-looking logit scale (log 100, as OpenAI CLIP), unlike GRAFT's log(1 / 0.07)."""
    clip = tiny_clip_model(seed=0, patch_size=patch_size)
    with torch.no_grad():
        clip.logit_scale.fill_(math.log(100.0))
    return clip


def copy_clip_head_into_projector(authors: AuthorsGraft) -> None:
    """The "fixed projector initialisation": the projector starts as CLIP's post_layernorm + visual_projection."""
    backbone = authors.satellite_image_backbone
    with torch.no_grad():
        authors.projector[0].load_state_dict(backbone.vision_model.post_layernorm.state_dict())
        authors.projector[1].weight.copy_(backbone.visual_projection.weight)
        if authors.projector[1].bias is not None:
            authors.projector[1].bias.zero_()


def train_authors(authors: AuthorsGraft, level: str, steps: int = 3, seed: int = 0) -> AuthorsGraft:
    """A few AdamW steps (weight decay 1e-2, as the paper) through `forward_features` (image) or `forward` (pixel).

    Every parameter is given to the optimiser, as Lightning's `configure_optimizers` does; parameters the loss never
    reaches have no gradient, so AdamW leaves them untouched.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(authors.parameters(), lr=1e-2, weight_decay=1e-2)
    authors.train()
    for _ in range(steps):
        pixel_values = torch.randn(2, 3, 32, 32, generator=generator)
        if level == "image":
            output = authors.forward_features(pixel_values)  # (batch, dim)
        else:
            output = authors(pixel_values)[:, 1:]  # (batch, patches, dim): the patches under ground photos
        target = F.normalize(torch.randn(output.shape, generator=generator), dim=-1)
        loss = -(output * target).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return authors.eval()


def make_authors(bias_projector: bool = False) -> AuthorsGraft:
    """The authors' module around a tiny CLIP with every parameter moved away from its initial value.

    Such a checkpoint does not tell its level by itself (both heads moved), as if trained at both levels.
    """
    torch.manual_seed(7)
    module = AuthorsGraft(tiny_clip(), bias_projector=bias_projector).eval()
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return module


def trained_authors(level: str, projector_init: str = "default", bias_projector: bool = True) -> AuthorsGraft:
    """The authors' module trained at `level` from a tiny CLIP, its projector initialised `default` or `clip`."""
    torch.manual_seed(11)
    module = AuthorsGraft(tiny_clip(), bias_projector=bias_projector)
    if projector_init == "clip":
        copy_clip_head_into_projector(module)
    return train_authors(module, level)


def authors_checkpoint(
    authors: AuthorsGraft, layout: str, log_scale: bool, projector_names: tuple[str, str] = ("0", "1")
) -> dict:
    """A Lightning-style checkpoint of `authors`: key layout "nested" or "flat", logit scale plain or in log space."""
    state = {}
    for key, tensor in authors.state_dict().items():
        if layout == "flat":
            key = key.replace("satellite_image_backbone.vision_model.", "satellite_image_backbone.")
        key = key.replace("projector.0.", f"projector.{projector_names[0]}.")
        key = key.replace("projector.1.", f"projector.{projector_names[1]}.")
        state[key] = tensor.clone()
    if log_scale and "logit_scale" in state:
        state["logit_scale"] = torch.log(state["logit_scale"])
    # Older transformers saved the position ids buffer, which newer versions reject.
    num_positions = authors.satellite_image_backbone.vision_model.embeddings.num_positions
    prefix = "satellite_image_backbone.vision_model." if layout == "nested" else "satellite_image_backbone."
    state[prefix + "embeddings.position_ids"] = torch.arange(num_positions)[None]
    return {"state_dict": state, "epoch": 3, "global_step": 1200}
