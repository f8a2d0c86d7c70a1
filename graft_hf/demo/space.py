"""The demo as a Hugging Face Space: settings from Space variables, and a page that says what to set when the model
or the gallery cannot be loaded, so a Space always starts.

A Space published by `graft push --space` holds `space_config.json` with the model and gallery it was published
with; the Space variables `MODEL_ID`, `GALLERY` and `TEMPLATES` (Settings -> Variables and secrets) override them.
Without a reachable model the Space serves a page naming the variable to set; without a gallery it serves
segmentation and region maps, and its retrieval tab names the variable.

Example (the Space's `app.py`):
    >>> from graft_hf.demo.space import build_space_demo, serve_space
    >>> demo = build_space_demo(Path(__file__).parent)
    >>> serve_space(demo)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graft_hf.demo.config import DemoConfig

if TYPE_CHECKING:
    import gradio as gr

logger = logging.getLogger(__name__)

__all__ = ["SPACE_CONFIG_FILE", "SPACE_VARIABLES", "build_space_demo", "serve_space", "space_config"]

#: The Space's defaults, written by `graft push --space` next to `app.py`.
SPACE_CONFIG_FILE = "space_config.json"
#: DemoConfig field -> the Space variable that sets it.
SPACE_VARIABLES = {"model": "MODEL_ID", "gallery": "GALLERY", "templates": "TEMPLATES"}
_WHERE = "(Space settings -> Variables and secrets, then restart the Space)"


def space_config(app_dir: str | Path, environ: Mapping[str, str] | None = None) -> DemoConfig:
    """The demo settings of a Space: `space_config.json` in `app_dir`, overridden by the Space variables.

    Args:
        app_dir: The Space's folder (where `app.py` is).
        environ: The environment (default `os.environ`); `GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT`, which
            Spaces set, choose the address.

    Returns:
        A `DemoConfig`; its `gallery` may be None (nothing set).

    Raises:
        ConfigError: No model is set (key `model`).
    """
    return DemoConfig(**_space_values(app_dir, environ))


def _space_values(app_dir: str | Path, environ: Mapping[str, str] | None) -> dict[str, Any]:
    environ = os.environ if environ is None else environ
    path = Path(app_dir) / SPACE_CONFIG_FILE
    values: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    values = {key: values[key] for key in ("model", "gallery", "templates", "title") if values.get(key)}
    for key, variable in SPACE_VARIABLES.items():
        if environ.get(variable, "").strip():
            values[key] = environ[variable].strip()
    if values.get("gallery", "").lower() == "none":
        values["gallery"] = None
    host = environ.get("GRADIO_SERVER_NAME", "0.0.0.0")
    port = int(environ.get("GRADIO_SERVER_PORT") or environ.get("PORT") or 7860)
    return {"host": host, "port": port, **values}


def _model_problem(config: DemoConfig, error: Exception | None) -> str:
    variable = SPACE_VARIABLES["model"]
    if error is None:
        return (
            f"No model is set: set the Space variable `{variable}` {_WHERE} to a GRAFT model repository "
            "(`owner/name`) or a registered name such as `graft-naip-vitb16`."
        )
    return (
        f"The model `{config.model}` could not be loaded ({type(error).__name__}: {str(error)[:400]}). Set the Space "
        f"variable `{variable}` {_WHERE} to a GRAFT model repository this Space can reach; a private repository "
        "also needs the Space secret `HF_TOKEN`."
    )


def _gallery_notice(config: DemoConfig, error: Exception | None) -> str:
    variable = SPACE_VARIABLES["gallery"]
    how = (
        f"set the Space variable `{variable}` {_WHERE} to a gallery dataset repository (`owner/name`; publish one "
        "with `graft push GALLERY_FOLDER OWNER/NAME --gallery`) or a gallery folder in this Space"
    )
    if error is None:
        return f"No retrieval gallery is set: {how}. Segmentation and region maps work without one."
    return (
        f"The gallery `{config.gallery}` could not be loaded ({type(error).__name__}: {str(error)[:400]}): {how}. "
        "Segmentation and region maps work without one."
    )


def build_space_demo(app_dir: str | Path, environ: Mapping[str, str] | None = None) -> gr.Blocks:
    """The Space's app: the demo, or a page saying which Space variable to set when the model cannot be loaded.

    Args:
        app_dir: The Space's folder (holds `space_config.json`; a relative `GALLERY` is a folder in it).
        environ: The environment (default `os.environ`).

    Returns:
        A `gradio.Blocks` with its config as `demo.graft_config` (and `demo.graft_backend` when the model loaded).
    """
    from graft_hf.demo.app import build_demo_from_backend, build_setup_page
    from graft_hf.demo.backend import DemoBackend
    from graft_hf.demo.gallery import load_gallery, resolve_gallery
    from graft_hf.tasks.map_setup import load_map_model

    values = _space_values(app_dir, environ)
    if not values.get("model"):
        config = DemoConfig(**{**values, "model": "(not set)"})
        return _with_config(build_setup_page([_model_problem(config, None)], config.title), config)
    config = DemoConfig(**values)
    try:
        model, image_processor, tokenizer = load_map_model(config.model, config.device)
    except Exception as error:  # noqa: BLE001 - any failure to load is shown on the page with the variable to set
        logger.exception("the Space's model %s could not be loaded", config.model)
        return _with_config(build_setup_page([_model_problem(config, error)], config.title), config)
    index = info = gallery_dir = None
    notice = _gallery_notice(config, None)
    if config.gallery:
        local = Path(app_dir) / config.gallery
        try:
            gallery_dir = resolve_gallery(local if local.is_dir() else config.gallery)
            index, info = load_gallery(gallery_dir)
            if index.dim != model.config.projection_dim:
                raise ValueError(f"{index.dim}-d embeddings, the model projects to {model.config.projection_dim}-d")
        except Exception as error:  # noqa: BLE001 - the demo still serves segmentation and region maps
            logger.exception("the Space's gallery %s could not be loaded", config.gallery)
            index = info = gallery_dir = None
            notice = _gallery_notice(config, error)
    backend = DemoBackend(
        model, image_processor, tokenizer, index, info, config.model, config.limits, config.prompt_templates,
        gallery_dir=gallery_dir,
    )  # fmt: skip
    demo = build_demo_from_backend(backend, config.title, notice)
    demo.graft_backend = backend
    return _with_config(demo, config)


def _with_config(demo: gr.Blocks, config: DemoConfig) -> gr.Blocks:
    demo.graft_config = config
    return demo


def serve_space(demo: gr.Blocks) -> Any:
    """Serves the Space's app on the address Spaces give it (`GRADIO_SERVER_NAME`, `GRADIO_SERVER_PORT`)."""
    from graft_hf.demo.app import launch_demo

    config: DemoConfig = demo.graft_config
    return launch_demo(demo, host=config.host, port=config.port, limits=config.limits)
