"""Configuration of GRAFT models (Ground Remote Alignment for Training; Mall, Phoo et al., ICLR 2024).

This file is uploaded to the Hub next to GRAFT weights as remote code: it imports torch and transformers only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers import CLIPTextConfig, CLIPVisionConfig

try:  # transformers >= 5
    from transformers import PreTrainedConfig
except ImportError:  # transformers 4.x, for remote-code users on older versions
    from transformers import PretrainedConfig as PreTrainedConfig


@dataclass(frozen=True)
class SensorSpec:
    """Everything graft-hf knows about one sensor: the one registry the model, the processor, the pair builder and
    the cards read (sensor metadata travels with the weights, as in torchgeo).

    Attributes:
        name: Registry key (``naip``, ``sentinel2``, ...), stored in ``GraftConfig.sensor``.
        display_name: Name for people (cards, reports).
        gsd: Training ground sample distance in metres per pixel (``None``: unknown, e.g. plain RGB photos).
        band_names: Names of the bands in file order.
        rgb_bands: Indices into ``band_names`` of the red, green and blue bands the ViT sees.
        rgb_aliases: Band names that identify red, green and blue in a raster whose bands are named (tried in
            order); ``None`` takes ``rgb_bands`` by position (NAIP files carry no band names).
        value_scale: Raw value (after subtracting ``value_offset``) that maps to 1.0 (brighter values are clipped).
            Sentinel-2 reflectance is stored as DN = 10000 x reflectance; 3000 (reflectance 0.3) is the usual
            true-colour stretch.
        value_offset: Subtracted from raw values before scaling. Sentinel-2 data of processing baseline >= 04.00
            (from 2022-01-25) carries an additive offset of -1000 (``BOA_ADD_OFFSET``): use 1000 for it.
        nodata_value: Raw value marking missing pixels, or ``None``.
        hub_tag: Tag of the sensor on Hub cards, or ``None``.
    """

    name: str
    display_name: str
    gsd: float | None
    band_names: tuple[str, ...]
    rgb_bands: tuple[int, int, int]
    value_scale: float
    value_offset: float = 0.0
    nodata_value: float | None = None
    rgb_aliases: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None = None
    hub_tag: str | None = None

    def preset(self) -> dict[str, Any]:
        """The ``GraftConfig`` / ``GraftImageProcessor`` metadata fields of this sensor (fresh lists)."""
        return {
            "gsd": self.gsd,
            "band_names": list(self.band_names),
            "rgb_bands": list(self.rgb_bands),
            "value_scale": self.value_scale,
            "value_offset": self.value_offset,
            "nodata_value": self.nodata_value,
        }

    def rgb_band_indices(self, band_names: Sequence[str]) -> list[int]:
        """0-based indices of red, green and blue among a raster's ``band_names``.

        Raises:
            ValueError: A band is missing (named sensors) or the raster has too few bands.
        """
        if self.rgb_aliases is None:
            if len(band_names) <= max(self.rgb_bands):
                raise ValueError(
                    f"{self.display_name} RGB needs bands {[i + 1 for i in self.rgb_bands]} but the raster has "
                    f"{len(band_names)} band(s)"
                )
            return list(self.rgb_bands)
        lookup = {name.lower(): i for i, name in enumerate(band_names)}
        indices = []
        for aliases in self.rgb_aliases:
            found = next((lookup[a.lower()] for a in aliases if a.lower() in lookup), None)
            if found is None:
                raise ValueError(
                    f"no {aliases[0]} band among {list(band_names)}; {self.display_name} RGB needs "
                    f"{', '.join(a[0] for a in self.rgb_aliases)}: name the raster's bands"
                )
            indices.append(found)
        return indices


_S2_RGB_ALIASES = (("B04", "B4", "red"), ("B03", "B3", "green"), ("B02", "B2", "blue"))

SENSORS: dict[str, SensorSpec] = {
    spec.name: spec
    for spec in (
        SensorSpec(
            name="naip",
            display_name="NAIP",
            gsd=1.0,
            band_names=("red", "green", "blue", "nir"),
            rgb_bands=(0, 1, 2),
            value_scale=255.0,
            hub_tag="naip",
        ),
        SensorSpec(
            name="sentinel2",
            display_name="Sentinel-2 (L2A)",
            gsd=10.0,
            # Level-2A order (the BigEarthNet and most L2A stacks): B10 (cirrus) is not delivered at L2A.
            band_names=("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"),
            rgb_bands=(3, 2, 1),
            value_scale=3000.0,
            nodata_value=0,
            rgb_aliases=_S2_RGB_ALIASES,
            hub_tag="sentinel-2",
        ),
        SensorSpec(
            name="sentinel2-l1c",
            display_name="Sentinel-2 (L1C)",
            gsd=10.0,
            band_names=("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"),
            rgb_bands=(3, 2, 1),
            value_scale=3000.0,
            nodata_value=0,
            rgb_aliases=_S2_RGB_ALIASES,
            hub_tag="sentinel-2",
        ),
        SensorSpec(
            name="rgb",
            display_name="RGB",
            gsd=None,
            band_names=("red", "green", "blue"),
            rgb_bands=(0, 1, 2),
            value_scale=255.0,
        ),
    )
}

#: ``GraftConfig`` metadata of each registered sensor (``SENSORS[name].preset()``), kept for existing callers.
SENSOR_PRESETS: dict[str, dict[str, Any]] = {name: spec.preset() for name, spec in SENSORS.items()}


def get_sensor(name: str) -> SensorSpec:
    """The registered sensor ``name``.

    Raises:
        ValueError: Unknown sensor, listing the known ones.
    """
    if name not in SENSORS:
        raise ValueError(f"unknown sensor {name!r}; known sensors: {', '.join(SENSORS)}")
    return SENSORS[name]


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
        use_patch_head: Whether the pixel-level patch head (LayerNorm then a linear map of every patch token into
            the joint space) is present.
        patch_head_bias: Whether the patch head's linear map has a bias (the authors' `projector` has one by
            default; graft-hf's own models do not, and configs without this key load as bias-free).
        image_embeds_trained: Whether the pooled image embedding (`get_image_features`) was trained. `False` for
            pixel-level checkpoints whose training reached only the patch head (the authors' pixel-level models):
            their image embeddings are CLIP's pooling head on an untrained CLS token, and
            `GraftModel.get_image_features` warns when asked for them.
        freeze_text_tower: Whether the text tower, the text projection and the logit scale are frozen, as in GRAFT
            training (only the satellite tower learns).
        sensor: Sensor name; a registered one (`SENSORS`) fills the metadata below, any other name needs it explicitly.
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
        patch_head_bias: bool = False,
        image_embeds_trained: bool = True,
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
        self.patch_head_bias = bool(patch_head_bias)
        self.image_embeds_trained = bool(image_embeds_trained)
        self.freeze_text_tower = bool(freeze_text_tower)
        self.initializer_factor = float(initializer_factor)

        preset = SENSORS[sensor].preset() if sensor in SENSORS else {}
        self.sensor = sensor
        self.gsd = gsd if gsd is not None else preset.get("gsd")
        self.band_names = list(band_names) if band_names is not None else preset.get("band_names")
        self.rgb_bands = list(rgb_bands) if rgb_bands is not None else preset.get("rgb_bands")
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
                f"sensor {self.sensor!r} has no preset (registered sensors: {sorted(SENSORS)}); pass band_names, "
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


__all__ = ["SENSORS", "SENSOR_PRESETS", "GraftConfig", "SensorSpec", "get_sensor"]
