"""What the demo's three tabs compute, without any Gradio: retrieval, segmentation and region maps.

:class:`DemoBackend` holds the model, its processor and tokenizer, the gallery index and a bounded LRU cache of
query embeddings. Its methods take what a visitor typed or uploaded, check it against :class:`DemoLimits` and
return pictures and text; bad inputs raise :class:`~graft_hf.demo.limits.DemoInputError` with the limit named.
The methods are safe to call from several threads at once (Gradio runs callbacks in a thread pool).
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from PIL import Image

from graft_hf.demo.gallery import THUMBNAIL_COLUMN, GalleryInfo, load_gallery, resolve_gallery
from graft_hf.demo.limits import (
    DemoInputError,
    DemoLimits,
    check_k,
    check_query,
    check_upload,
    parse_queries,
)
from graft_hf.demo.render import placeholder_thumbnail, render_results_map
from graft_hf.evaluation.archive import MANIFEST, hit_images
from graft_hf.index import EmbeddingIndex, SearchResult
from graft_hf.io import atomic_path
from graft_hf.tasks.map_setup import (
    RegionMapConfig,
    RegionMapResult,
    band_indexes,
    load_map_model,
    open_raster,
    resolve_region,
    tile_grid,
)
from graft_hf.tasks.region_map import run_region_map
from graft_hf.tasks.segmentation import PALETTE, SegmentationConfig, ZeroShotSegmenter, render_overlay
from graft_hf.tasks.text import encode_queries

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from graft_hf.modeling import GraftImageProcessor, GraftModel

logger = logging.getLogger(__name__)

__all__ = ["DemoBackend", "Hit", "QueryEmbeddingCache", "RegionMapOutput", "RetrievalOutput", "SegmentationOutput"]

_MAX_CONTEXT_POINTS = 4000
_KEPT_MAP_RUNS = 8
_KEPT_PICTURES = 512  # far more than can be in flight: Gradio copies a picture as soon as the callback returns
_MIN_DISPLAY_SIDE = 320
_SOURCE_THUMBNAIL_SIDE = 128


class QueryEmbeddingCache:
    """A thread-safe LRU cache of unit-norm query embeddings, keyed by (query, templates).

    Args:
        model: The GRAFT model whose text tower embeds the queries.
        tokenizer: Its CLIP tokenizer.
        max_size: Entries kept; the least recently used is dropped first.
    """

    def __init__(self, model: GraftModel, tokenizer: PreTrainedTokenizerBase, max_size: int) -> None:
        self.model, self.tokenizer, self.max_size = model, tokenizer, max_size
        self._entries: OrderedDict[tuple[str, Any], torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, queries: Sequence[str], templates: str | Sequence[str] | None) -> torch.Tensor:
        """`(len(queries), dim)` float32 unit-norm embeddings on the CPU; only uncached queries run the text tower."""
        key_templates = templates if templates is None or isinstance(templates, str) else tuple(templates)
        with self._lock:
            missing = [q for q in dict.fromkeys(queries) if (q, key_templates) not in self._entries]
            self.hits += len(queries) - len(missing)
            self.misses += len(missing)
        if missing:
            embeds = encode_queries(self.model, self.tokenizer, missing, templates).float().cpu()  # (missing, dim)
            with self._lock:
                for query, embed in zip(missing, embeds):
                    self._entries[(query, key_templates)] = embed
                    self._entries.move_to_end((query, key_templates))
                while len(self._entries) > self.max_size:
                    self._entries.popitem(last=False)
        with self._lock:
            rows = []
            for query in queries:
                key = (query, key_templates)
                if key in self._entries:
                    self._entries.move_to_end(key)
                    rows.append(self._entries[key])
                else:  # evicted by a concurrent request between the two locks: recompute
                    rows.append(encode_queries(self.model, self.tokenizer, [query], templates).float().cpu()[0])
        return torch.stack(rows)

    def __len__(self) -> int:
        return len(self._entries)


class _CachedSegmenter(ZeroShotSegmenter):
    """A segmenter whose query embeddings come from the demo's bounded LRU cache (the base keeps every query)."""

    def __init__(
        self,
        model: GraftModel,
        tokenizer: PreTrainedTokenizerBase,
        image_processor: GraftImageProcessor,
        cache: QueryEmbeddingCache,
    ) -> None:
        super().__init__(model, tokenizer, image_processor)
        self.cache = cache

    def encode_queries(self, queries: Sequence[str], templates: str | Sequence[str] | None) -> torch.Tensor:
        return self.cache.get(list(queries), templates)


@dataclass
class Hit:
    """One retrieval result. `score` is the cosine similarity of the tile with the query."""

    rank: int
    score: float
    lat: float
    lon: float
    tile_id: str | None
    caption: str
    image: Image.Image
    image_path: str


@dataclass
class RetrievalOutput:
    """Top-k tiles of a query, a map of where they are (None for a gallery without coordinates) and a summary."""

    hits: list[Hit]
    map_image: Image.Image | None
    summary: str


@dataclass
class SegmentationOutput:
    """Overlays (all queries, then one per query) with captions, the label mask and a summary."""

    overlays: list[tuple[Image.Image, str]]
    mask: np.ndarray
    class_names: tuple[str, ...]
    summary: str


@dataclass
class RegionMapOutput:
    """The region map's PNG overlay, its score GeoTIFF and the top tiles."""

    overlay: Image.Image
    score_path: str
    topk_path: str
    summary: str


def _png_to_image(data: bytes | None) -> Image.Image:
    if not data:
        return placeholder_thumbnail()
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


class DemoBackend:
    """The demo's model, gallery and computations.

    Args:
        model: A `GraftModel` in eval mode.
        image_processor: Its `GraftImageProcessor`.
        tokenizer: Its CLIP tokenizer.
        index: The gallery (see :func:`graft_hf.demo.gallery.build_gallery`), or None to serve segmentation and
            region maps only (retrieval then says that no gallery is loaded).
        gallery_info: What `gallery.json` says about it (None without a gallery).
        model_ref: Directory or Hub id of the model (region maps load it from there).
        limits: Input limits.
        templates: Prompt templates for queries (a set name, templates, or None for the text as typed).
        workdir: Folder for region-map outputs (a fresh temporary folder by default).
        gallery_dir: The gallery's folder; an index written by `graft index` (no stored thumbnails) shows the
            images it was built from, when they are still where they were.
    """

    def __init__(
        self,
        model: GraftModel,
        image_processor: GraftImageProcessor,
        tokenizer: PreTrainedTokenizerBase,
        index: EmbeddingIndex | None,
        gallery_info: GalleryInfo | None,
        model_ref: str,
        limits: DemoLimits | None = None,
        templates: str | Sequence[str] | None = "satellite",
        workdir: str | Path | None = None,
        gallery_dir: str | Path | None = None,
    ) -> None:
        projection_dim = int(model.config.projection_dim)
        if index is not None and index.dim != projection_dim:
            raise ValueError(
                f"the gallery holds {index.dim}-d embeddings but the model projects to {projection_dim}-d; rebuild "
                "the gallery with this model (graft_hf.demo.build_gallery)"
            )
        self.model, self.image_processor, self.tokenizer = model, image_processor, tokenizer
        self.index, self.gallery_info, self.model_ref = index, gallery_info, model_ref
        self.limits = limits or DemoLimits()
        self.templates = templates
        self.gallery_dir = Path(gallery_dir) if gallery_dir is not None else None
        self.cache = QueryEmbeddingCache(model, tokenizer, self.limits.query_cache_size)
        self.segmenter = _CachedSegmenter(model, tokenizer, image_processor, self.cache)
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="graft-demo-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._runs: list[Path] = []
        self._runs_lock = threading.Lock()
        self._thumbnails_lock = threading.Lock()  # one writer per thumbnail file (atomic_path names its temp by pid)
        self._pictures: deque[Path] = deque()
        (self.workdir / "thumbnails").mkdir(exist_ok=True)
        (self.workdir / "pictures").mkdir(exist_ok=True)
        self._context: tuple[list[float], list[float]] = ([], [])
        self.located = index is not None and index.columns.get("lat") is not None
        if self.located:
            lats = np.asarray(index.dataset[index.columns["lat"]], dtype=np.float64)
            lons = np.asarray(index.dataset[index.columns["lon"]], dtype=np.float64)
            if len(lats) > _MAX_CONTEXT_POINTS:  # a fixed sample keeps the map quick for a large gallery
                keep = np.random.default_rng(0).choice(len(lats), _MAX_CONTEXT_POINTS, replace=False)
                lats, lons = lats[keep], lons[keep]
            self._context = (lats.tolist(), lons.tolist())

    @property
    def gallery_size(self) -> int:
        """Tiles in the retrieval gallery (0 without one)."""
        return 0 if self.index is None else len(self.index)

    @classmethod
    def from_paths(
        cls,
        model_dir_or_id: str,
        gallery_index_dir: str | Path | None,
        limits: DemoLimits | None = None,
        templates: str | Sequence[str] | None = "satellite",
        device: str = "cpu",
        workdir: str | Path | None = None,
    ) -> DemoBackend:
        """Loads the model (directory, Hub id or registered name) and the gallery (folder or Hub dataset; None: no
        retrieval)."""
        gallery_dir = index = info = None
        if gallery_index_dir is not None:
            gallery_dir = resolve_gallery(gallery_index_dir)
            index, info = load_gallery(gallery_dir)
        model, image_processor, tokenizer = load_map_model(str(model_dir_or_id), device)
        return cls(
            model,
            image_processor,
            tokenizer,
            index,
            info,
            str(model_dir_or_id),
            limits,
            templates,
            workdir,
            gallery_dir,
        )

    # ------------------------------------------------------------------------------------------------ files
    # Pictures go to the browser as files: Gradio copies a file into its cache atomically, while a PIL image is
    # re-encoded into a path named by its hash and rewritten in place, so two requests showing the same thumbnail
    # race (a client can read a half-written file).
    def _thumbnail(self, result: SearchResult) -> tuple[Image.Image, str]:
        """The PIL thumbnail of a hit and a PNG file of it, written once per gallery row."""
        path = self.workdir / "thumbnails" / f"{result.row}.png"
        with self._thumbnails_lock:
            if path.exists():
                with Image.open(path) as cached:
                    return cached.convert("RGB"), str(path)
            data = result.extra.get(THUMBNAIL_COLUMN)
            image = _png_to_image(data) if data else self._source_thumbnail(result)
            with atomic_path(path) as tmp:
                image.save(tmp, format="PNG")
        return image, str(path)

    def _source_thumbnail(self, result: SearchResult) -> Image.Image:
        """A thumbnail read from the images an index of `graft index` was built from, or a grey placeholder."""
        if self.gallery_dir is None or not (self.gallery_dir / MANIFEST).is_file():
            return placeholder_thumbnail()

        try:
            image = hit_images(self.gallery_dir, [result])[0]
        except (OSError, ValueError, KeyError) as error:  # the source moved or is not shipped with the gallery
            logger.warning("no thumbnail for gallery row %d (%s); showing a placeholder", result.row, error)
            return placeholder_thumbnail()
        image.thumbnail((_SOURCE_THUMBNAIL_SIDE, _SOURCE_THUMBNAIL_SIDE))
        return image

    def save_picture(self, image: Image.Image) -> str:
        """Writes a PIL image to a fresh PNG file for the browser; the oldest of many such files are deleted."""
        path = self.workdir / "pictures" / f"{uuid.uuid4().hex}.png"
        image.save(path, format="PNG")
        with self._runs_lock:
            self._pictures.append(path)
            while len(self._pictures) > _KEPT_PICTURES:
                self._pictures.popleft().unlink(missing_ok=True)
        return str(path)

    # ------------------------------------------------------------------------------------------------ retrieval
    def retrieve(self, query: str | None, k: float | int | None) -> RetrievalOutput:
        """Top-k gallery tiles for a text query.

        Args:
            query: Free text, e.g. `"a river crossing farmland"`.
            k: Number of results, within the limits and the gallery size.

        Returns:
            The hits (thumbnail, coordinates, score, caption), a map of them and a summary line.

        Raises:
            DemoInputError: A bad query or k, or no gallery loaded.
        """
        if self.index is None:
            raise DemoInputError("no retrieval gallery is loaded; segmentation and region maps work without one")
        query = check_query(query, self.limits)
        k = check_k(k, self.limits, len(self.index))
        text_embeds = self.cache.get([query], self.templates)  # (1, dim)
        results = cast(list[list[SearchResult]], self.index.search(text_embeds, k=k))[0]  # the k hits of the query
        hits = []
        for rank, result in enumerate(results, start=1):
            lat = float("nan") if result.lat is None else float(result.lat)
            lon = float("nan") if result.lon is None else float(result.lon)
            label = result.extra.get("label")
            where = f"  {lat:.4f}, {lon:.4f}" if self.located else ""
            caption = f"#{rank}{where}  score {result.score:.3f}"
            if label is not None:
                caption += f"  ({label})"
            image, path = self._thumbnail(result)
            hits.append(Hit(rank, result.score, lat, lon, result.tile_id, caption, image, path))
        map_image = None
        if self.located:
            map_image = render_results_map(
                [h.lat for h in hits], [h.lon for h in hits], [h.score for h in hits], *self._context,
                title=f"top {k} for {query!r} (grey: gallery)",
            )  # fmt: skip
        summary = f"{k} of {len(self.index)} tiles for **{query}**; best score {hits[0].score:.3f}"
        return RetrievalOutput(hits, map_image, summary)

    # ------------------------------------------------------------------------------------------------ segmentation
    def _load_for_segmentation(self, upload: Any) -> str | Image.Image:
        info = check_upload(upload, self.limits)
        if info.is_raster:
            return info.path  # the image processor reads the sensor's bands with rasterio
        try:
            with Image.open(info.path) as image:
                image.load()
                return image.convert("RGB")
        except (OSError, SyntaxError, ValueError) as error:
            raise DemoInputError(
                f"cannot decode {Path(info.path).name!r} ({type(error).__name__}: {error}); is it a corrupt file?"
            ) from error

    def segment(self, upload: Any, queries_text: str | None, background: bool = True) -> SegmentationOutput:
        """Open-vocabulary segmentation of an uploaded image or GeoTIFF.

        Args:
            upload: Path of the uploaded PNG/JPEG/GeoTIFF.
            queries_text: Comma-separated queries, e.g. `"water, road, trees"`.
            background: Add a "background" label competing with the queries.

        Returns:
            A colour overlay of all labels, then one overlay per query with its mask, and a summary.
        """
        queries = parse_queries(queries_text, self.limits)
        if len(queries) == 1 and not background:
            raise DemoInputError("one query without the background label would cover every pixel; add a second query "
                                 "or tick 'background label'")  # fmt: skip
        config = SegmentationConfig(templates=self.templates, background_prompt="background" if background else None)
        if background and config.background_name in queries:
            raise DemoInputError("'background' is the name of the background label; untick it or rename the query")
        image = self._load_for_segmentation(upload)
        try:
            result = self.segmenter.segment(image, queries, config)
        except (ValueError, TypeError) as error:  # e.g. a band count the model's sensor cannot use
            raise DemoInputError(str(error)) from error
        mask = result.mask.numpy()
        assert result.image is not None  # segment() attaches the RGB rendering of the input
        fractions = result.label_fractions()
        # Small tiles (e.g. 64 px EuroSAT) are enlarged with nearest neighbours so the legend does not dwarf them.
        factor = max(1, _MIN_DISPLAY_SIDE // max(mask.shape))
        shown = np.repeat(np.repeat(result.image, factor, axis=0), factor, axis=1)  # (H * f, W * f, 3)
        shown_mask = np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)  # (H * f, W * f)
        overlays = [
            (render_overlay(shown, shown_mask, result.class_names, 0.5, result.background_index), "all queries")
        ]
        for i, query in enumerate(queries):
            binary = np.where(shown_mask == i, 0, 1)
            picture = render_overlay(shown, binary, [query, "other"], 0.55, background_index=1,
                                     palette=(PALETTE[i % len(PALETTE)], (0, 0, 0)))  # fmt: skip
            overlays.append((picture, f"{query}: {100 * fractions[query]:.1f}% of pixels"))
        height, width = result.size
        rows = "\n".join(f"| {name} | {100 * share:.1f}% |" for name, share in fractions.items())
        summary = f"{width} x {height} px, {len(queries)} queries\n\n| label | pixels |\n|---|---|\n{rows}"
        return SegmentationOutput(overlays, mask, result.class_names, summary)

    # ------------------------------------------------------------------------------------------------ region map
    def _new_run_dir(self) -> Path:
        run = self.workdir / f"map-{uuid.uuid4().hex[:12]}"
        with self._runs_lock:
            self._runs.append(run)
            while len(self._runs) > _KEPT_MAP_RUNS:  # Gradio copies outputs when the callback returns
                shutil.rmtree(self._runs.pop(0), ignore_errors=True)
        return run

    def _region_map_config(self, raster: str, query: str, gsd: str) -> RegionMapConfig:
        templates = (
            self.templates if isinstance(self.templates, str) or self.templates is None else tuple(self.templates)
        )
        return RegionMapConfig(
            raster=raster, queries=(query,), model=self.model_ref, output_dir=str(self._new_run_dir()), gsd=gsd,
            templates=templates, progress=False, checkpoint_interval_s=3600.0, preview_max_side=768, top_k=5,
            device="cpu",
        )  # fmt: skip

    def _check_map_windows(self, config: RegionMapConfig) -> None:
        """The same checks and tiling `run_region_map` will do, so a too large map is refused before it starts."""
        with open_raster(config.raster) as src:
            band_indexes(src, config, self.model.config)
            grid, _, _ = tile_grid(src, config, self.model.config, resolve_region(src, config))
        if grid.num_windows > self.limits.max_map_windows:
            raise DemoInputError(
                f"this raster needs {grid.num_windows:,} model tiles; the limit is "
                f"max_map_windows={self.limits.max_map_windows:,}: upload a smaller crop"
                + (" or choose gsd 'native'" if config.gsd == "model" else "")
            )

    def region_map(self, upload: Any, query: str | None, gsd: str = "model") -> RegionMapOutput:
        """Scores every tile of an uploaded GeoTIFF against a query (`graft_hf.tasks.region_map`).

        Args:
            upload: Path of the uploaded GeoTIFF (needs a CRS).
            query: Free text.
            gsd: `"model"` (tiles at the model's training ground sample distance) or `"native"`.

        Returns:
            The PNG overlay (scores over the imagery with a colour bar), the score GeoTIFF, the top tiles.
        """
        query = check_query(query, self.limits)
        if gsd not in ("model", "native"):
            raise DemoInputError(f"ground sample distance must be 'model' or 'native', got {gsd!r}")
        info = check_upload(upload, self.limits, max_pixels=self.limits.max_map_pixels, raster_only=True)
        config = self._region_map_config(info.path, query, gsd)
        try:
            self._check_map_windows(config)
            result = run_region_map(config, loaded=(self.model, self.image_processor, self.tokenizer))
        except DemoInputError:
            raise
        except (ValueError, FileNotFoundError) as error:
            raise DemoInputError(str(error)) from error
        with Image.open(result.png_paths[query]) as picture:
            overlay = picture.convert("RGB")
        summary = self._map_summary(result, query)
        return RegionMapOutput(overlay, result.score_paths[query], result.topk_path, summary)

    @staticmethod
    def _map_summary(result: RegionMapResult, query: str) -> str:
        features = json.loads(Path(result.topk_path).read_text())["features"]
        lines = [
            f"**{query}**: {result.num_windows} tiles of {result.window_pixels} px"
            + (f" ({result.area_km2:.2f} km²)" if result.area_km2 is not None else "")
            + f" in {result.seconds:.1f} s",
            "",
            "| rank | score | lat | lon |",
            "|---|---|---|---|",
        ]
        for feature in features:
            ring = np.asarray(feature["geometry"]["coordinates"][0][:-1], dtype=np.float64)  # (4, lon/lat)
            lon, lat = ring.mean(axis=0)
            props = feature["properties"]
            lines.append(f"| {props['rank']} | {props['score']:.3f} | {lat:.5f} | {lon:.5f} |")
        return "\n".join(lines)

    def close(self) -> None:
        """Deletes the region-map outputs."""
        shutil.rmtree(self.workdir, ignore_errors=True)
