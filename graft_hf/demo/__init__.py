"""The GRAFT demo (Gradio; also the Hugging Face Space in `spaces/`): text-to-image retrieval over a precomputed
gallery, open-vocabulary segmentation and region maps, behind input limits.

Names are imported on first use (PEP 562): `import graft_hf.demo` does not import gradio or torch.

Example:
    >>> from graft_hf.demo import build_demo, build_gallery, launch_demo
    >>> build_gallery(model, records, "gallery/")           # once: embed the gallery tiles
    >>> launch_demo(build_demo("graft-naip-vitb16", "gallery/"))

The two jobs also take their configs (what `graft demo` and `graft demo-gallery` build from their flags):
`build_demo_from_config(DemoConfig(...))` and `build_gallery_from_config(GalleryConfig(...))`.
"""

from __future__ import annotations

from graft_hf._lazy import lazy_exports

_EXPORTS = {
    "DemoBackend": "graft_hf.demo.backend",
    "DemoConfig": "graft_hf.demo.config",
    "DemoModelConfig": "graft_hf.demo.config",
    "GalleryConfig": "graft_hf.demo.config",
    "QueryEmbeddingCache": "graft_hf.demo.backend",
    "DemoInputError": "graft_hf.demo.limits",
    "DemoLimits": "graft_hf.demo.limits",
    "GalleryInfo": "graft_hf.demo.gallery",
    "build_gallery": "graft_hf.demo.gallery",
    "build_gallery_from_config": "graft_hf.demo.gallery",
    "load_gallery": "graft_hf.demo.gallery",
    "records_from_geotiffs": "graft_hf.demo.gallery",
    "records_from_pairs": "graft_hf.demo.gallery",
    "resolve_gallery": "graft_hf.demo.gallery",
    "build_demo": "graft_hf.demo.app",
    "build_demo_from_backend": "graft_hf.demo.app",
    "build_demo_from_config": "graft_hf.demo.app",
    "launch_demo": "graft_hf.demo.app",
    "render_results_map": "graft_hf.demo.render",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
