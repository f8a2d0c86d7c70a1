"""Configuration of GRAFT models (Ground Remote Alignment for Training; Mall, Phoo et al., ICLR 2024).

This file is uploaded to the Hub next to GRAFT weights as remote code: it imports torch and transformers only.
"""

from __future__ import annotations

import copy
from typing import Any

from transformers import CLIPTextConfig, CLIPVisionConfig

try:  # transformers >= 5
    from transformers import PreTrainedConfig
except ImportError:  # transformers 4.x, for remote-code users on older versions
    from transformers import PretrainedConfig as PreTrainedConfig

# Sensor metadata travels with the weights (as in torchgeo): which bands a raster holds, which three make the
# RGB image the ViT sees, how raw values map to [0, 1] and the ground sample distance in metres per pixel.
# `value_scale` is the raw value that maps to 1.0 (values above are clipped). Sentinel-2 reflectance is stored as
# DN = 10000 * reflectance; 3000 (reflectance 0.3) is the usual true-colour stretch. Data of processing baseline
# >= 04.00 (from 2022-01-25) carries an additive offset of -1000 (BOA_ADD_OFFSET / RADIO_ADD_OFFSET):
# set `value_offset=1000` for it so that (DN - 1000) / 10000 is the reflectance.
SENSOR_PRESETS: dict[str, dict[str, Any]] = {
    "naip": {
        "gsd": 1.0,
        "band_names": ["red", "green", "blue", "nir"],
        "rgb_bands": [0, 1, 2],
        "value_scale": 255.0,
        "value_offset": 0.0,
        "nodata_value": None,
    },
    "sentinel2": {
        "gsd": 10.0,
        # Level-2A order (the BigEarthNet and most L2A stacks): B10 (cirrus) is not delivered at L2A.
        "band_names": ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"],
        "rgb_bands": [3, 2, 1],
        "value_scale": 3000.0,
        "value_offset": 0.0,
        "nodata_value": 0,
    },
    "sentinel2-l1c": {
        "gsd": 10.0,
        "band_names": ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"],
        "rgb_bands": [3, 2, 1],
        "value_scale": 3000.0,
        "value_offset": 0.0,
        "nodata_value": 0,
    },
    "rgb": {
        "gsd": None,
        "band_names": ["red", "green", "blue"],
        "rgb_bands": [0, 1, 2],
        "value_scale": 255.0,
        "value_offset": 0.0,
        "nodata_value": None,
    },
}

# openai/clip-vit-base-patch16 and openai/clip-vit-base-patch32 vision towers; the text tower is the same.
_VIT_B_VISION = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "projection_dim": 512,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "image_size": 224,
    "hidden_act": "quick_gelu",
}
_VIT_B_TEXT = {
    "hidden_size": 512,
    "intermediate_size": 2048,
    "projection_dim": 512,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "hidden_act": "quick_gelu",
}


class GraftConfig(PreTrainedConfig):
    r"""Configuration of a [`GraftModel`]: a CLIP-shaped two-tower model whose vision tower encodes satellite images.

    The defaults rebuild the published ViT-B/16 GRAFT model (the hyper-parameters of
    `openai/clip-vit-base-patch16`) for NAIP imagery, so a tiny test configuration and a released checkpoint share
    one code path. [`GraftConfig.vit_b32`] gives the ViT-B/32 variant.

    Args:
        vision_config: Options of the satellite [`CLIPVisionConfig`] (the trained tower).
        text_config: Options of CLIP's [`CLIPTextConfig`] (frozen; carried so a GRAFT model answers text queries).
        projection_dim: Dimension of the joint image-text space.
        logit_scale_init_value: Initial value of the log of the zero-shot logit scale (CLIP's `logit_scale`).
        use_patch_head: Whether the pixel-level patch head (LayerNorm then a bias-free linear map of every patch
            token into the joint space) is present.
        freeze_text_tower: Whether the text tower, the text projection and the logit scale are frozen, as in GRAFT
            training (only the satellite tower learns).
        sensor: Sensor name; one of `SENSOR_PRESETS` fills the metadata below, any other name needs it explicitly.
        gsd: Ground sample distance in metres per pixel of the imagery the model was trained on.
        band_names: Names of the raster bands, in file order.
        rgb_bands: Indices into `band_names` of the red, green and blue bands the model sees.
        value_scale: Raw value (after subtracting `value_offset`) that maps to 1.0.
        value_offset: Additive offset subtracted from raw values before scaling.
        nodata_value: Raw value that marks missing pixels, or `None`.
        initializer_factor: Scale of the random initialisation (as in CLIP).
    """

    model_type = "graft"
    sub_configs = {"text_config": CLIPTextConfig, "vision_config": CLIPVisionConfig}

    def __init__(
        self,
        vision_config: dict | CLIPVisionConfig | None = None,
        text_config: dict | CLIPTextConfig | None = None,
        projection_dim: int = 512,
        logit_scale_init_value: float = 2.6592,
        use_patch_head: bool = True,
        freeze_text_tower: bool = True,
        sensor: str = "naip",
        gsd: float | None = None,
        band_names: list[str] | None = None,
        rgb_bands: list[int] | None = None,
        value_scale: float | None = None,
        value_offset: float | None = None,
        nodata_value: float | None = None,
        initializer_factor: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if vision_config is None:
            vision_config = {**_VIT_B_VISION, "patch_size": 16}
        if isinstance(vision_config, dict):
            vision_config = CLIPVisionConfig(**vision_config)
        if text_config is None:
            text_config = dict(_VIT_B_TEXT)
        if isinstance(text_config, dict):
            text_config = CLIPTextConfig(**text_config)
        if not isinstance(vision_config, CLIPVisionConfig):
            raise TypeError(f"vision_config must be a dict or CLIPVisionConfig, got {type(vision_config).__name__}")
        if not isinstance(text_config, CLIPTextConfig):
            raise TypeError(f"text_config must be a dict or CLIPTextConfig, got {type(text_config).__name__}")
        self.vision_config = vision_config
        self.text_config = text_config
        self.projection_dim = int(projection_dim)
        self.logit_scale_init_value = float(logit_scale_init_value)
        self.use_patch_head = bool(use_patch_head)
        self.freeze_text_tower = bool(freeze_text_tower)
        self.initializer_factor = float(initializer_factor)

        preset = SENSOR_PRESETS.get(sensor, {})
        self.sensor = sensor
        self.gsd = gsd if gsd is not None else preset.get("gsd")
        self.band_names = list(band_names) if band_names is not None else copy.copy(preset.get("band_names"))
        self.rgb_bands = list(rgb_bands) if rgb_bands is not None else copy.copy(preset.get("rgb_bands"))
        self.value_scale = float(value_scale) if value_scale is not None else preset.get("value_scale")
        self.value_offset = float(value_offset) if value_offset is not None else preset.get("value_offset", 0.0)
        self.nodata_value = nodata_value if nodata_value is not None else preset.get("nodata_value")
        self._validate()

    def _validate(self) -> None:
        vision, text = self.vision_config, self.text_config
        if self.projection_dim <= 0:
            raise ValueError(f"projection_dim must be positive, got {self.projection_dim}")
        if vision.hidden_size % vision.num_attention_heads:
            raise ValueError(
                f"vision_config.hidden_size ({vision.hidden_size}) must be divisible by num_attention_heads "
                f"({vision.num_attention_heads}); change one of them"
            )
        if vision.image_size % vision.patch_size:
            raise ValueError(
                f"vision_config.image_size ({vision.image_size}) must be a multiple of patch_size "
                f"({vision.patch_size}), e.g. image_size={vision.image_size // vision.patch_size * vision.patch_size}"
            )
        if text.hidden_size % text.num_attention_heads:
            raise ValueError(
                f"text_config.hidden_size ({text.hidden_size}) must be divisible by num_attention_heads "
                f"({text.num_attention_heads}); change one of them"
            )
        if self.band_names is None or self.rgb_bands is None or self.value_scale is None:
            raise ValueError(
                f"sensor {self.sensor!r} has no preset (known: {sorted(SENSOR_PRESETS)}); pass band_names, "
                "rgb_bands and value_scale explicitly"
            )
        if len(self.rgb_bands) != 3:
            raise ValueError(f"rgb_bands must name exactly 3 bands (red, green, blue), got {self.rgb_bands}")
        bad = [i for i in self.rgb_bands if not 0 <= int(i) < len(self.band_names)]
        if bad:
            raise ValueError(
                f"rgb_bands {self.rgb_bands} index outside band_names {self.band_names} "
                f"(valid indices 0..{len(self.band_names) - 1})"
            )
        if self.value_scale <= 0:
            raise ValueError(f"value_scale must be positive, got {self.value_scale}")
        if self.gsd is not None and self.gsd <= 0:
            raise ValueError(f"gsd must be a positive number of metres per pixel, got {self.gsd}")

    @property
    def patch_grid(self) -> tuple[int, int]:
        """Patch grid (rows, cols) at the configured input size."""
        side = self.vision_config.image_size // self.vision_config.patch_size
        return side, side

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for key in ("vision_config", "text_config"):
            value = getattr(self, key)
            output[key] = value.to_dict() if hasattr(value, "to_dict") else value
        return output

    @classmethod
    def vit_b16(cls, **kwargs: Any) -> GraftConfig:
        """ViT-B/16 GRAFT (`openai/clip-vit-base-patch16` hyper-parameters): the default."""
        return cls(vision_config={**_VIT_B_VISION, "patch_size": 16}, **kwargs)

    @classmethod
    def vit_b32(cls, **kwargs: Any) -> GraftConfig:
        """ViT-B/32 GRAFT (`openai/clip-vit-base-patch32` hyper-parameters)."""
        return cls(vision_config={**_VIT_B_VISION, "patch_size": 32}, **kwargs)


__all__ = ["SENSOR_PRESETS", "GraftConfig"]
