"""The Gradio app: three tabs over :class:`~graft_hf.demo.backend.DemoBackend`.

`graft demo` and the Space's `app.py` both call :func:`build_demo_from_config` (or :func:`build_demo`) then
:func:`launch_demo`, so they run the same code. Every callback turns a bad input into a visible `gr.Error` naming
the broken limit; an unexpected failure is logged with its traceback on the server and shown to the visitor as a
one-line error, never as a crash.

API endpoints (for `gradio_client`): `/retrieve (query, k)`, `/segment (file, queries, background)` and
`/region_map (file, query, gsd)`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graft_hf.demo.backend import DemoBackend
from graft_hf.demo.limits import IMAGE_SUFFIXES, RASTER_SUFFIXES, DemoInputError, DemoLimits
from graft_hf.extras import require

if TYPE_CHECKING:
    import gradio as gr

    from graft_hf.demo.config import DemoConfig
else:
    gr = require("gradio", "demo", "the GRAFT demo")

logger = logging.getLogger(__name__)

__all__ = ["build_demo", "build_demo_from_backend", "build_demo_from_config", "build_setup_page", "launch_demo"]

_ABOUT = """# GRAFT: text queries over satellite images
A satellite encoder aligned to CLIP through geotagged ground photos (Mall, Phoo et al., ICLR 2024), so a text query
finds satellite tiles (retrieval), pixels (segmentation) and places on a large raster (region map) with no
text annotations in training."""
_INTRO = _ABOUT + " Model: `{model}`; {gallery}."
#: How `graft demo` users set the model and the gallery (the Space names its variables instead, see `space.py`).
CLI_SETTINGS = {"model": "`graft demo --model MODEL`", "gallery": "`graft demo --gallery GALLERY`"}


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Runs a callback, showing input errors as they are and anything else as a one-line error."""

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except DemoInputError as error:
            raise gr.Error(str(error), title="Input not accepted") from error
        except gr.Error:
            raise
        except Exception as error:  # noqa: BLE001 - a visitor sees a message, the log keeps the traceback
            logger.exception("demo callback %s failed", fn.__name__)
            raise gr.Error(f"the request failed ({type(error).__name__}: {str(error)[:300]})", title="Error") from error

    return wrapper


def _limits_text(limits: DemoLimits) -> str:
    return (
        f"Limits: uploads up to {limits.max_upload_bytes / 2**20:.3g} MiB and {limits.max_pixels:,} pixels "
        f"(region maps {limits.max_map_pixels:,} pixels, {limits.max_map_windows:,} tiles); queries up to "
        f"{limits.max_query_chars} characters, {limits.max_queries} per segmentation."
    )


def _retrieval_tab(backend: DemoBackend, notice: str | None) -> None:
    if backend.index is None:
        with gr.Tab("Text to image retrieval", id="retrieval"):
            gr.Markdown(notice or "No retrieval gallery is loaded.", elem_id="retrieval-notice")
        return
    limits = backend.limits
    k_max = min(limits.k_max, len(backend.index))
    slider_max = max(k_max, limits.k_min + 1)  # Gradio needs min < max; check_k still caps k at the gallery size

    @_guard
    def retrieve(query: str, k: float) -> tuple[list[tuple[Any, str]], Any, str]:
        out = backend.retrieve(query, k)
        where = None if out.map_image is None else backend.save_picture(out.map_image)
        return [(hit.image_path, hit.caption) for hit in out.hits], where, out.summary

    with gr.Tab("Text to image retrieval", id="retrieval"):
        with gr.Row():
            query = gr.Textbox(
                label="Query", placeholder="e.g. a river crossing farmland", max_lines=1, scale=4,
                elem_id="retrieval-query",
            )  # fmt: skip
            k_value = max(limits.k_min, min(limits.k_default, k_max))
            k = gr.Slider(limits.k_min, slider_max, value=k_value, step=1, label="Results (k)",
                          elem_id="retrieval-k")  # fmt: skip
            search = gr.Button("Search", variant="primary", elem_id="retrieval-button")
        summary = gr.Markdown(elem_id="retrieval-summary")
        with gr.Row():
            gallery = gr.Gallery(label="Top results (lat, lon, score)", columns=3, height=520, format="png",
                                 elem_id="retrieval-gallery")  # fmt: skip
            where = gr.Image(label="Where they are", type="pil", format="png", elem_id="retrieval-map")
        outputs = [gallery, where, summary]
        search.click(retrieve, [query, k], outputs, api_name="retrieve", concurrency_limit=4)
        query.submit(retrieve, [query, k], outputs, api_visibility="private", concurrency_limit=4)


def _segmentation_tab(backend: DemoBackend) -> None:
    @_guard
    def segment(upload: Any, queries: str, background: bool) -> tuple[list[tuple[Any, str]], str]:
        out = backend.segment(upload, queries, bool(background))
        return [(backend.save_picture(image), caption) for image, caption in out.overlays], out.summary

    with gr.Tab("Segmentation", id="segmentation"):
        with gr.Row():
            seg_file = gr.File(label="Image or GeoTIFF", file_types=list(IMAGE_SUFFIXES + RASTER_SUFFIXES),
                               type="filepath", elem_id="seg-upload")  # fmt: skip
            with gr.Column():
                seg_queries = gr.Textbox(label="Queries (comma-separated)", value="water, road, trees, buildings",
                                         elem_id="seg-queries")  # fmt: skip
                seg_background = gr.Checkbox(value=True, label="background label", elem_id="seg-background")
                seg_button = gr.Button("Segment", variant="primary", elem_id="seg-button")
        seg_gallery = gr.Gallery(label="Mask overlays", columns=2, height=560, format="png", object_fit="contain",
                                 elem_id="seg-gallery")  # fmt: skip
        seg_summary = gr.Markdown(elem_id="seg-summary")
        seg_button.click(segment, [seg_file, seg_queries, seg_background], [seg_gallery, seg_summary],
                         api_name="segment", concurrency_limit=1)  # fmt: skip


def _region_map_tab(backend: DemoBackend) -> None:
    @_guard
    def region_map(upload: Any, query: str, gsd: str) -> tuple[Any, str, str]:
        out = backend.region_map(upload, query, gsd)
        return backend.save_picture(out.overlay), out.score_path, out.summary

    with gr.Tab("Region map", id="region-map"):
        with gr.Row():
            map_file = gr.File(label="GeoTIFF (with a CRS)", file_types=list(RASTER_SUFFIXES), type="filepath",
                               elem_id="map-upload")  # fmt: skip
            with gr.Column():
                map_query = gr.Textbox(label="Query", value="farmland", max_lines=1, elem_id="map-query")
                map_gsd = gr.Radio(["model", "native"], value="model", label="Tile ground sample distance",
                                   elem_id="map-gsd")  # fmt: skip
                map_button = gr.Button("Map", variant="primary", elem_id="map-button")
        map_image = gr.Image(label="Scores over the imagery", type="pil", format="png", elem_id="map-image")
        with gr.Row():
            map_scores = gr.File(label="Score GeoTIFF", elem_id="map-scores")
            map_summary = gr.Markdown(elem_id="map-summary")
        map_button.click(region_map, [map_file, map_query, map_gsd], [map_image, map_scores, map_summary],
                         api_name="region_map", concurrency_limit=1)  # fmt: skip


def build_demo_from_backend(backend: DemoBackend, title: str = "GRAFT demo", notice: str | None = None) -> gr.Blocks:
    """The Gradio Blocks app over an existing backend (tests and embedding in other apps).

    Args:
        backend: The model and (optionally) the gallery.
        title: Browser tab title.
        notice: Shown in the retrieval tab when the backend has no gallery: how to set one.

    Returns:
        A `gradio.Blocks`; call :func:`launch_demo` (or `.launch()`) to serve it.
    """
    gallery = f"gallery: {backend.gallery_size:,} tiles" if backend.index is not None else "no retrieval gallery"
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(_INTRO.format(model=backend.model_ref, gallery=gallery))
        _retrieval_tab(backend, notice)
        _segmentation_tab(backend)
        _region_map_tab(backend)
        gr.Markdown(_limits_text(backend.limits))
    demo.queue(max_size=64)
    return demo


def build_demo(
    model_dir_or_id: str | Path,
    gallery_index_dir: str | Path | None,
    *,
    limits: DemoLimits | None = None,
    templates: str | Sequence[str] | None = "satellite",
    device: str = "cpu",
    title: str = "GRAFT demo",
    notice: str | None = None,
) -> gr.Blocks:
    """Loads a GRAFT model and a gallery and builds the demo app.

    Args:
        model_dir_or_id: Model directory saved with `save_pretrained`, a Hub id or a registered name.
        gallery_index_dir: Folder written by :func:`graft_hf.demo.build_gallery` or a Hub dataset holding one; None
            serves segmentation and region maps only.
        limits: Input limits (defaults: :class:`DemoLimits`).
        templates: Prompt templates for queries (`"satellite"`, templates with `{}`, or None for the text as typed).
        device: Where the model runs.
        title: Browser tab title.
        notice: What the retrieval tab says without a gallery (how to set one).

    Returns:
        A `gradio.Blocks`; its backend is `demo.graft_backend`.
    """
    backend = DemoBackend.from_paths(str(model_dir_or_id), gallery_index_dir, limits, templates, device)
    demo = build_demo_from_backend(backend, title, notice)
    demo.graft_backend = backend
    return demo


def build_demo_from_config(config: DemoConfig) -> gr.Blocks:
    """The demo app `config` describes (model, gallery, prompt templates, device, title, limits); serve it with
    ``launch_demo(demo, config.host, config.port, config.share, config.limits)``. Without a gallery, the retrieval
    tab says how to pass one."""
    assert config.model is not None  # checked by the config's rules
    notice = f"No retrieval gallery: build one with `graft demo-gallery` and serve it with {CLI_SETTINGS['gallery']}."
    return build_demo(
        config.model, config.gallery, limits=config.limits, templates=config.prompt_templates,
        device=config.device, title=config.title, notice=notice,
    )  # fmt: skip


def build_setup_page(problems: Sequence[str], title: str = "GRAFT demo") -> gr.Blocks:
    """A page in place of the demo when it cannot run: what GRAFT is and, per problem, what to set.

    Args:
        problems: Markdown lines, each naming what is wrong and the setting that fixes it.
        title: Browser tab title.
    """
    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(_ABOUT)
        text = "\n".join(f"- {problem}" for problem in problems)
        gr.Markdown(f"## This demo is not set up yet\n{text}", elem_id="setup-problems")
    return page


def launch_demo(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    share: bool = False,
    limits: DemoLimits | None = None,
    **launch_kwargs: Any,
) -> Any:
    """Serves the app; uploads larger than `limits.max_upload_bytes` are refused by the server itself too.

    Returns:
        What `gradio.Blocks.launch` returns.
    """
    limits = limits or getattr(getattr(demo, "graft_backend", None), "limits", None) or DemoLimits()
    logger.info("serving the GRAFT demo on http://%s:%s", host, port)
    return demo.launch(
        server_name=host, server_port=port, share=share, max_file_size=limits.max_upload_bytes, **launch_kwargs
    )
