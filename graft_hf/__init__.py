"""graft-hf: GRAFT vision-language models for satellite imagery, native to the Hugging Face ecosystem.

Importing this package registers GRAFT with transformers' Auto classes, so `AutoConfig`, `AutoModel`,
`AutoModelForZeroShotImageClassification`, `AutoImageProcessor`, `AutoProcessor` and
`pipeline("zero-shot-image-classification", model=...)` load GRAFT directories without remote code, and sets
`GraftModel`'s push handler so that `model.push_to_hub(repo_id)` sends weights, config, remote code, processor and
model card in one commit (`graft_hf.hub.push_model`).

`graft_hf.load_model("graft-naip-vitb16")` loads the paper's models by name (`graft_hf.hub.registry`: a local folder
of that name first, else its Hub repository `graft-hf/graft-naip-vitb16`), as well as any folder or Hub id.
"""

from __future__ import annotations

import functools

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForZeroShotImageClassification,
    AutoProcessor,
    PreTrainedTokenizerBase,
)

from graft_hf.hub.push import push_model
from graft_hf.hub.registry import list_models, load_model, load_processor
from graft_hf.modeling import (
    SENSOR_PRESETS,
    GraftConfig,
    GraftImageProcessor,
    GraftModel,
    GraftOutput,
    GraftProcessor,
)
from graft_hf.tokenizer import load_clip_tokenizer

__version__ = "0.1.0"


def _register() -> None:
    AutoConfig.register("graft", GraftConfig, exist_ok=True)
    AutoModel.register(GraftConfig, GraftModel, exist_ok=True)
    AutoModelForZeroShotImageClassification.register(GraftConfig, GraftModel, exist_ok=True)
    # One processor serves both of transformers' image backends (it resizes with torch, needs neither torchvision
    # nor PIL transforms); registered under both so that no "backend is not available" fallback is reported.
    backends = {"torchvision": GraftImageProcessor, "pil": GraftImageProcessor}
    AutoImageProcessor.register(GraftConfig, image_processor_classes=backends, exist_ok=True)
    AutoProcessor.register(GraftConfig, GraftProcessor, exist_ok=True)
    # Saved directories carry the model files and an `auto_map`, so they also load with trust_remote_code=True
    # where graft_hf is not installed.
    GraftConfig.register_for_auto_class()
    GraftModel.register_for_auto_class("AutoModel")
    GraftImageProcessor.register_for_auto_class("AutoImageProcessor")
    GraftProcessor.register_for_auto_class("AutoProcessor")
    # `graft push` checks the repo name against the config; a direct push_to_hub takes any name, as transformers'.
    GraftModel.set_push_handler(functools.partial(push_model, allow_any_name=True))


_register()


def build_processor(
    config: GraftConfig | None = None,
    tokenizer_name_or_path: str | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> GraftProcessor:
    """A `GraftProcessor` for a config's sensor and input size and its text tower's tokenizer.

    Args:
        config: The model's config (default: `GraftConfig()`).
        tokenizer_name_or_path: A saved tokenizer folder or Hub id.
        tokenizer: A tokenizer object (e.g. the one `graft_hf.text_towers.load_text_tower` returns).

    Without either, a CLIP text tower gets OpenAI CLIP's tokenizer built offline (`load_clip_tokenizer`).

    Raises:
        ValueError: The text tower is not CLIP's and no tokenizer is given.
    """
    config = config or GraftConfig()
    if tokenizer is None:
        if tokenizer_name_or_path is None and config.text_model_type != "clip_text_model":
            raise ValueError(
                f"the text tower of this model is a {config.text_model_type} encoder "
                f"({config.text_tower_name or 'source not recorded'}), which CLIP's tokenizer does not fit: pass its "
                "tokenizer (tokenizer=, or tokenizer_name_or_path= the encoder's folder)"
            )
        tokenizer = load_clip_tokenizer(tokenizer_name_or_path)
    image_processor = GraftImageProcessor.from_graft_config(config)
    return GraftProcessor(image_processor=image_processor, tokenizer=tokenizer)


__all__ = [
    "SENSOR_PRESETS",
    "GraftConfig",
    "GraftImageProcessor",
    "GraftModel",
    "GraftOutput",
    "GraftProcessor",
    "build_processor",
    "list_models",
    "load_clip_tokenizer",
    "load_model",
    "load_processor",
]
