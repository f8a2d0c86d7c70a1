"""The configs of the demo's two jobs: serving it (`graft demo`, the Space) and building its gallery
(`graft demo-gallery`). Both run one GRAFT model, described by the shared base :class:`DemoModelConfig`.

(No ``from __future__ import annotations`` here: these are strict config dataclasses, checked against their runtime
annotations.)
"""

from dataclasses import field

from graft_hf.config import config_dataclass, require
from graft_hf.demo.limits import DemoLimits

__all__ = ["DemoConfig", "DemoModelConfig", "GalleryConfig"]


@config_dataclass
class DemoModelConfig:
    """The GRAFT model a demo job runs.

    Attributes:
        model: GRAFT model directory or Hub id.
        device: Where the model runs (cpu, cuda, ...).
    """

    model: str | None = None
    device: str = "cpu"

    def validate_model(self) -> None:
        require(bool(self.model), "model", "no model given: pass a saved GRAFT model directory or a Hub id")


@config_dataclass
class DemoConfig(DemoModelConfig):
    """Serving the demo: the model, the retrieval gallery, the server and the input limits.

    Attributes:
        gallery: Gallery folder written by `graft demo-gallery`, or a Hub dataset repo holding one (`graft push
            --gallery`); without one the demo serves segmentation and region maps and says how to add it.
        host: Address to listen on (0.0.0.0 for every interface).
        port: Port to listen on.
        share: Ask Gradio for a public share link.
        templates: Prompt-template set for queries, or 'none' for the text as typed.
        title: Browser tab title.
        limits: What one request may ask (upload size, pixels, queries, results).
    """

    gallery: str | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    templates: str = "satellite"
    title: str = "GRAFT demo"
    limits: DemoLimits = field(default_factory=DemoLimits)

    @property
    def prompt_templates(self) -> str | None:
        """`templates` as the backend takes it: `None` (the text as typed) for 'none'."""
        return None if self.templates.lower() == "none" else self.templates


@config_dataclass
class GalleryConfig(DemoModelConfig):
    """Building the retrieval gallery: tiles from pairs shards or GeoTIFFs, embedded once with the model.

    Attributes:
        output_dir: Gallery folder to write.
        pairs: Pairs parquet file or folder of shards written by `graft pairs`.
        geotiffs: GeoTIFF tiles or folders of them (one gallery item per file).
        limit: Stop after this many tiles (pairs only).
        batch_size: Images per forward pass.
        thumbnail_size: Longest side of the stored thumbnails, in pixels.
        device: Where the model runs (auto, cpu, cuda, ...).
    """

    output_dir: str | None = None
    pairs: str | None = None
    geotiffs: list[str] | None = None
    limit: int | None = None
    batch_size: int = 32
    thumbnail_size: int = 128
    device: str = "auto"

    def validate_output_dir(self) -> None:
        require(bool(self.output_dir), "output_dir", "no output folder given for the gallery")

    def validate_source(self) -> None:
        require(
            (self.pairs is None) != (self.geotiffs is None),
            "pairs" if self.pairs is None else "geotiffs",
            "give exactly one source of gallery tiles: pairs shards or GeoTIFFs",
        )

    def validate_sizes(self) -> None:
        require(self.limit is None or self.limit > 0, "limit", f"must be positive, got {self.limit}")
        require(self.batch_size > 0, "batch_size", f"must be positive, got {self.batch_size}")
        require(self.thumbnail_size > 0, "thumbnail_size", f"must be positive, got {self.thumbnail_size}")
