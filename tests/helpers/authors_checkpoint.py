"""A stand-in for the GRAFT authors' Lightning checkpoints, for the `graft convert` tests (library and command line)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionModelWithProjection

from graft_hf.testing import tiny_clip_model

TEMPERATURE = 0.07


class AuthorsGraft(nn.Module):
    """Laid out like the authors' LightningModule: CLIP vision tower with projection, LayerNorm + Linear projector."""

    def __init__(self, vision_config, projection_dim: int) -> None:
        super().__init__()
        hidden = vision_config.hidden_size
        self.satellite_image_backbone = CLIPVisionModelWithProjection(vision_config)
        self.projector = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, projection_dim, bias=False))
        self.register_buffer("logit_scale", torch.tensor(1.0 / TEMPERATURE))

    @torch.no_grad()
    def embeds(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The authors' image embeds (projected CLS after post-LN) and patch embeds (normalised projector output)."""
        backbone = self.satellite_image_backbone
        hidden = backbone.vision_model(pixel_values=pixel_values).last_hidden_state  # (batch, 1 + patches, hidden)
        image_embeds = backbone.visual_projection(backbone.vision_model.post_layernorm(hidden[:, 0]))
        patch_embeds = F.normalize(self.projector(hidden[:, 1:]), dim=-1)  # (batch, patches, projection_dim)
        return image_embeds, patch_embeds


def tiny_clip(patch_size: int = 8):
    """Tiny CLIP with a trained-looking logit scale (log 100, as OpenAI CLIP), unlike GRAFT's log(1 / 0.07)."""
    clip = tiny_clip_model(seed=0, patch_size=patch_size)
    with torch.no_grad():
        clip.logit_scale.fill_(math.log(100.0))
    return clip


def make_authors() -> AuthorsGraft:
    """The authors' module around a tiny CLIP, every parameter moved away from CLIP's and LayerNorm's init."""
    clip = tiny_clip()
    torch.manual_seed(7)
    module = AuthorsGraft(clip.config.vision_config, clip.config.projection_dim).eval()
    with torch.no_grad():  # move every parameter away from CLIP's and from LayerNorm's 1/0 init
        for param in module.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return module


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
    if log_scale:
        state["logit_scale"] = torch.log(state["logit_scale"])
    # Older transformers saved the position ids buffer, which newer versions reject.
    num_positions = authors.satellite_image_backbone.vision_model.embeddings.num_positions
    prefix = "satellite_image_backbone.vision_model." if layout == "nested" else "satellite_image_backbone."
    state[prefix + "embeddings.position_ids"] = torch.arange(num_positions)[None]
    return {"state_dict": state, "epoch": 3, "global_step": 1200}
