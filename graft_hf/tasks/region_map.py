"""Region maps (GRAFT section 4.5): score every tile of a large raster against text queries.

`run_region_map` tiles a GeoTIFF/COG into windows of the model's input footprint, reads them in batches with
rasterio windowed reads (never the whole raster), embeds them with a `GraftModel` and writes, per query, a
georeferenced float32 score GeoTIFF (the input's CRS; the input's transform moved to the region and scaled to
the score grid), a PNG overlay and the top-k tiles as GeoJSON. Memory is O(batch), not O(raster): windows are
read per batch, scores are written per batch with windowed writes, GDAL's block cache is capped and the PNG
backdrop is a small preview GeoTIFF filled from the windows already read.

Scores are cosine similarities between L2-normalised tile (or patch) embeddings and query text embeddings
(`score="cosine"`, the default, in [-1, 1]), or a softmax across the queries of the logit-scaled similarities
(`score="softmax"`, CLIP's zero-shot probabilities, needs >= 2 queries). Tiles whose pixels are all nodata are
not run and are nodata (NaN) in the outputs; partly-nodata tiles are scored with the missing pixels black.

Ground sample distance: by default (`gsd="model"`) a tile covers the ground the model was trained on,
`tile_size * config.gsd` metres, i.e. `tile_size * config.gsd / raster_gsd` raster pixels (rounded). A window
larger than the model input is averaged down to it by GDAL while it is read (area-weighted, nodata-aware, from
overviews where the file has them: the cost of a coarse map does not grow with the raster's resolution); a
smaller one is read natively and upsampled by the image processor (antialiased bicubic, as in training).
`gsd="native"` uses `tile_size` raster pixels as they are; a number sets the tile's metres per pixel. Rasters in
a geographic CRS are tiled natively.

Resume: windows are processed in row-major order and committed at checkpoints (output GeoTIFFs closed, so GDAL
has flushed them, then a small JSON progress file replaced atomically). A killed run restarted with
`resume=True` continues after the last checkpoint; work before it is never rewritten.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.windows import Window
from tqdm.auto import tqdm

from graft_hf.config import ConfigError
from graft_hf.io import write_json
from graft_hf.modeling import GraftImageProcessor, GraftModel
from graft_hf.resume import check_resume
from graft_hf.tasks.map_render import create_preview, paste_preview, render_overlay, write_topk_geojson
from graft_hf.tasks.map_setup import (
    LoadedModel,
    RegionMapConfig,
    RegionMapResult,
    band_indexes,
    check_writable,
    load_map_model,
    open_raster,
    resolve_region,
    tile_grid,
)
from graft_hf.tasks.text import encode_queries
from graft_hf.tasks.tiling import TileGrid, raster_gsd_metres, read_window, valid_mask

logger = logging.getLogger(__name__)

__all__ = ["PROGRESS_FILE", "RegionMapConfig", "RegionMapResult", "load_map_model", "run_region_map"]

PROGRESS_FILE = ".graft_map_progress.json"
TOPK_FILE = "topk.geojson"
PREVIEW_FILE = "preview.tif"
_PROGRESS_VERSION = 1


# ------------------------------------------------------------------------------------------------- outputs
def _slugs(queries: tuple[str, ...]) -> list[str]:
    slugs: list[str] = []
    for query in queries:
        slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-")[:60] or "query"
        base, n = slug, 2
        while slug in slugs:
            slug, n = f"{base}-{n}", n + 1
        slugs.append(slug)
    return slugs


def _create_score_raster(path: Path, src: DatasetReader, grid: TileGrid) -> None:
    height, width = grid.score_shape
    block = 256
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 1,
        "width": width,
        "height": height,
        "crs": src.crs,
        "transform": grid.score_transform(src.transform),
        "nodata": float("nan"),
        "compress": "deflate",
        "predictor": 3,
        "BIGTIFF": "IF_SAFER",
    }
    if width >= block and height >= block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, height, block):  # initialise to nodata strip by strip: O(width * block) memory
            rows = min(block, height - row)
            dst.write(np.full((rows, width), np.nan, dtype=np.float32), 1, window=Window(0, row, width, rows))


def _settings(config: RegionMapConfig, src: DatasetReader, grid: TileGrid, tile: int) -> dict[str, Any]:
    """What the outputs depend on; a resumed run must match it."""
    return {
        "raster": os.path.abspath(config.raster) if os.path.exists(config.raster) else config.raster,
        "raster_shape": [src.height, src.width],
        "raster_transform": list(src.transform)[:6],
        "model": os.path.abspath(config.model) if os.path.exists(config.model) else config.model,
        "queries": list(config.queries),
        "templates": config.templates if not isinstance(config.templates, tuple) else list(config.templates),
        "score": config.score,
        "level": config.level,
        "tile_size": tile,
        "grid": {k: v for k, v in asdict(grid).items() if k not in ("raster_width", "raster_height")},
        "bands": list(config.bands) if config.bands else None,
    }


class _Top:
    """Top-k (score, window index) per query, kept as min-heaps."""

    def __init__(self, k: int, queries: tuple[str, ...], saved: dict[str, list] | None = None) -> None:
        self.k = k
        self.heaps: dict[str, list[tuple[float, int]]] = {q: [] for q in queries}
        for query, items in (saved or {}).items():
            self.heaps[query] = [(float(s), int(i)) for s, i in items]
            heapq.heapify(self.heaps[query])

    def push(self, query: str, score: float, index: int) -> None:
        heap = self.heaps[query]
        if len(heap) < self.k:
            heapq.heappush(heap, (score, index))
        elif score > heap[0][0]:
            heapq.heapreplace(heap, (score, index))

    def ranked(self, query: str) -> list[tuple[float, int]]:
        return sorted(self.heaps[query], key=lambda item: (-item[0], item[1]))

    def state(self) -> dict[str, list]:
        return {q: [[s, i] for s, i in heap] for q, heap in self.heaps.items()}


# ------------------------------------------------------------------------------------------------- the run
def _score_arrays(
    model: GraftModel,
    image_processor: GraftImageProcessor,
    arrays: list[np.ndarray],
    tile: int,
    text_embeds: torch.Tensor,
    config: RegionMapConfig,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Image scores `(batch, queries)` and, at patch level, patch scores `(batch, grid, grid, queries)`."""
    pixel_values = image_processor(arrays, size=tile, return_tensors="pt")["pixel_values"]
    pixel_values = pixel_values.to(text_embeds.device)
    with torch.inference_mode():
        output = model(pixel_values=pixel_values, output_patch_embeds=config.level == "patch")
        image_scores = output.image_embeds.float() @ text_embeds.T  # (batch, queries)
        patch_scores = None
        if config.level == "patch":
            patch_scores = output.patch_embeds.float() @ text_embeds.T  # (batch, grid, grid, queries)
        if config.score == "softmax":
            scale = model.logit_scale.exp().float()
            image_scores = (scale * image_scores).softmax(dim=-1)
            if patch_scores is not None:
                patch_scores = (scale * patch_scores).softmax(dim=-1)
    return image_scores.cpu().numpy(), None if patch_scores is None else patch_scores.cpu().numpy()


@dataclass
class _Run:
    """Everything one run needs, resolved from the config; mutable progress lives in `done`, `nodata`, `top`."""

    config: RegionMapConfig
    src: DatasetReader
    model: GraftModel
    image_processor: GraftImageProcessor
    text_embeds: torch.Tensor
    indexes: list[int]
    grid: TileGrid
    tile: int
    settings: dict[str, Any]
    score_paths: dict[str, Path]
    progress_path: Path
    preview_path: Path
    top: _Top
    preview: DatasetWriter | None = None
    done: int = 0
    nodata: int = 0
    run: int = 0

    def checkpoint(self, complete: bool = False) -> None:
        payload = {
            "version": _PROGRESS_VERSION,
            "settings": self.settings,
            "windows_done": self.done,
            "num_windows": self.grid.num_windows,
            "windows_nodata": self.nodata,
            "top": self.top.state(),
            "complete": complete,
        }
        write_json(self.progress_path, payload, durable=True)

    @property
    def rgb_positions(self) -> list[int]:
        """Positions of red, green and blue among the bands read."""
        return [0, 1, 2] if len(self.indexes) == 3 else list(self.model.config.rgb_bands)

    def score_batch(self, batch: range) -> np.ndarray:
        """Read, embed and score a batch of windows: `(queries, batch, k, k)` blocks, NaN where nodata."""
        config, grid, k = self.config, self.grid, self.grid.patches_per_side
        nodata_values = [v for v in (self.src.nodata, self.model.config.nodata_value) if v is not None]
        fill = self.src.nodata if self.src.nodata is not None and not math.isnan(self.src.nodata) else 0
        blocks = np.full((len(config.queries), len(batch), k, k), np.nan, dtype=np.float32)
        arrays, slots, patch_valid = [], [], []
        for slot, index in enumerate(batch):
            window = grid.window_at(index)
            array, inside = read_window(self.src, window, self.indexes, fill, out_size=self.tile)
            valid = valid_mask(array, nodata_values) & inside
            array[:, ~valid] = 0
            paste_preview(self.preview, grid.region, window, array[self.rgb_positions])
            if not valid.any():
                self.nodata += 1
                continue
            arrays.append(array)
            slots.append(slot)
            side_h, side_w = valid.shape[0] // k, valid.shape[1] // k
            patch_valid.append(valid.reshape(k, side_h, k, side_w).any(axis=(1, 3)))  # (k, k)
        if not arrays:
            return blocks
        image_scores, patch_scores = _score_arrays(
            self.model, self.image_processor, arrays, self.tile, self.text_embeds, config
        )
        for n, slot in enumerate(slots):
            for q, query in enumerate(config.queries):
                self.top.push(query, float(image_scores[n, q]), batch[slot])
            if patch_scores is None:
                blocks[:, slot, 0, 0] = image_scores[n]
            else:
                blocks[:, slot] = np.where(patch_valid[n], np.moveaxis(patch_scores[n], -1, 0), np.nan)
        self.run += len(arrays)
        return blocks


def run_region_map(config: RegionMapConfig, loaded: LoadedModel | None = None) -> RegionMapResult:
    """Map text queries over a raster; see the module docstring for the outputs and their guarantees.

    GDAL's block cache is capped at `config.gdal_cache_mb` for the run (GDAL reads the cap when its cache is first
    used, so in a process that already read rasters the earlier cap stays).

    Args:
        config: What to map and where to write it.
        loaded: `(model, image_processor, tokenizer)` already in memory (as `load_map_model` returns them) for a
            caller that maps many rasters, e.g. the demo; `config.model` then only names the model in the run's
            settings. By default the model is loaded from `config.model`.

    Returns:
        Paths of the outputs and run statistics.
    """
    with rasterio.Env(GDAL_CACHEMAX=config.gdal_cache_mb * 1024 * 1024), open_raster(config.raster) as src:
        state = _prepare(config, src, loaded)
        began = time.perf_counter()
        _tile_loop(state)
        seconds = time.perf_counter() - began
        result = _finish(state, seconds)
    logger.info(
        "mapped %d windows (%d run here, %d nodata) in %.1f s; outputs in %s",
        result.num_windows, result.windows_run, result.windows_nodata, seconds, config.output_dir,
    )  # fmt: skip
    return result


def _prepare(config: RegionMapConfig, src: DatasetReader, loaded: LoadedModel | None = None) -> _Run:
    """Check inputs, load the model, build the grid and either create fresh outputs or pick up a saved run."""
    output_dir = Path(config.output_dir)
    region = resolve_region(src, config)
    check_writable(output_dir)
    progress_path = output_dir / PROGRESS_FILE
    saved = json.loads(progress_path.read_text()) if progress_path.exists() else None
    if saved is not None and not (config.resume or config.overwrite):
        kind = "a finished" if saved.get("complete") else "an unfinished"
        raise ConfigError(
            "resume",
            f"{output_dir} holds {kind} region map; pass resume=True to continue it or overwrite=True to start again",
        )
    if config.resume and saved is None:
        logger.warning("resume: no progress file in %s, starting from the beginning", output_dir)

    model, image_processor, tokenizer = loaded if loaded is not None else load_map_model(config.model, config.device)
    indexes = band_indexes(src, config, model.config)
    grid, tile, _ = tile_grid(src, config, model.config, region)
    settings = _settings(config, src, grid, tile)
    slugs = _slugs(config.queries)
    score_paths = {q: output_dir / f"{s}.tif" for q, s in zip(config.queries, slugs, strict=True)}
    text_embeds = encode_queries(model, tokenizer, config.queries, templates=config.templates)
    state = _Run(
        config, src, model, image_processor, text_embeds, indexes, grid, tile, settings, score_paths, progress_path,
        preview_path=output_dir / PREVIEW_FILE, top=_Top(config.top_k, config.queries),
    )  # fmt: skip
    if config.resume and saved is not None:
        _resume(state, saved)
    else:
        progress_path.unlink(missing_ok=True)  # an interrupted overwrite must not look resumable
        for path in score_paths.values():
            _create_score_raster(path, src, grid)
        create_preview(state.preview_path, src, region, config.preview_max_side)
        state.checkpoint()
    return state


def _resume(state: _Run, saved: dict[str, Any]) -> None:
    """Pick up a saved run's progress, refusing one made with other settings or with damaged outputs."""
    config, output_dir = state.config, Path(state.config.output_dir)
    if saved.get("version") != _PROGRESS_VERSION:
        raise ConfigError(
            "resume",
            f"the run in {output_dir} was written by another version of graft-hf (progress version "
            f"{saved.get('version')!r}, expected {_PROGRESS_VERSION}); pass overwrite=True to start again",
        )
    settings = saved.get("settings")
    check_resume(
        settings if isinstance(settings, dict) else {"settings": settings},
        state.settings,
        what=f"the region map in {output_dir}",
        fix="repeat its exact settings (raster, model, queries, tiling) with resume=True, or pass overwrite=True to "
        "start again",
    )
    missing = [str(p) for p in [*state.score_paths.values(), state.preview_path] if not p.exists()]
    if missing:
        raise ConfigError("resume", f"cannot resume: score rasters {missing} are missing; pass overwrite=True instead")
    _check_resumable(list(state.score_paths.values()), state.grid.score_shape)
    state.done, state.nodata = int(saved["windows_done"]), int(saved["windows_nodata"])
    state.top = _Top(config.top_k, config.queries, saved["top"])
    logger.info("resuming at window %d of %d", state.done, state.grid.num_windows)


def _check_resumable(paths: list[Path], shape: tuple[int, int]) -> None:
    """Refuse to resume into score rasters that do not open as the expected grid (e.g. a flush cut by a kill)."""
    for path in paths:
        try:
            with rasterio.open(path) as ds:
                ok = ds.shape == shape and ds.count == 1
        except rasterio.errors.RasterioIOError as error:
            raise ConfigError(
                "resume", f"cannot resume: {path} is unreadable ({error}); pass overwrite=True instead"
            ) from error
        if not ok:
            raise ConfigError(
                "resume",
                f"cannot resume: {path} is not the {shape} score grid of this run; pass overwrite=True instead",
            )


def _tile_loop(state: _Run) -> None:
    """Score the remaining windows batch by batch; commit outputs then progress at each checkpoint."""
    config, grid = state.config, state.grid
    paths = [state.score_paths[q] for q in config.queries] + [state.preview_path]
    bar = _progress_bar(config.progress, grid.num_windows, state.done)
    writers = [rasterio.open(p, "r+") for p in paths]
    state.preview = writers[-1]
    last_checkpoint = time.monotonic()
    try:
        for batch_start in range(state.done, grid.num_windows, config.batch_size):
            batch = range(batch_start, min(batch_start + config.batch_size, grid.num_windows))
            _write_blocks(writers[:-1], grid, batch, state.score_batch(batch))
            bar.update(len(batch))
            state.done = batch.stop
            if state.done == grid.num_windows or time.monotonic() - last_checkpoint >= config.checkpoint_interval_s:
                for writer in writers:  # closing flushes GDAL's cache: the scores are on disk before the JSON
                    writer.close()
                state.checkpoint()
                last_checkpoint = time.monotonic()
                if state.done < grid.num_windows:
                    writers = [rasterio.open(p, "r+") for p in paths]
                    state.preview = writers[-1]
    finally:
        for writer in writers:
            writer.close()
        bar.close()


def _finish(state: _Run, seconds: float) -> RegionMapResult:
    """Write the GeoJSON and PNGs, mark the run complete and summarise it."""

    config, src, grid = state.config, state.src, state.grid
    output_dir = Path(config.output_dir)
    topk_path = output_dir / TOPK_FILE
    write_topk_geojson(topk_path, src, grid, state.top.ranked, config.queries)
    png_paths: dict[str, str] = {}
    if config.png:
        for query, path in state.score_paths.items():
            png = path.with_suffix(".png")
            render_overlay(src, grid.region, state.preview_path, path, png, query, config.score)
            png_paths[query] = str(png)
    state.checkpoint(complete=True)
    raster_gsd = raster_gsd_metres(src)
    region = grid.region
    return RegionMapResult(
        score_paths={q: str(p) for q, p in state.score_paths.items()},
        png_paths=png_paths,
        topk_path=str(topk_path),
        num_windows=grid.num_windows,
        windows_run=state.run,
        windows_nodata=state.nodata,
        area_km2=None if raster_gsd is None else region.width * region.height * raster_gsd**2 / 1e6,
        seconds=seconds,
        tile_gsd=None if raster_gsd is None else raster_gsd * grid.window / state.tile,
        window_pixels=grid.window,
        extras={"raster_gsd": raster_gsd, "tile_size": state.tile},
    )


def _write_blocks(writers: list[DatasetWriter], grid: TileGrid, batch: range, blocks: np.ndarray) -> None:
    """Write a batch's score blocks, one windowed write per grid row touched and per query."""
    k = blocks.shape[-1]
    grid_cols = grid.grid_shape[1]
    position = batch.start
    while position < batch.stop:
        row, col = divmod(position, grid_cols)
        end = min(batch.stop, (row + 1) * grid_cols)
        count = end - position
        segment = blocks[:, position - batch.start : end - batch.start]  # (queries, count, k, k)
        image = segment.transpose(0, 2, 1, 3).reshape(len(writers), k, count * k)  # (queries, k, count * k)
        for writer, values in zip(writers, image, strict=True):
            writer.write(values, 1, window=Window(col * k, row * k, count * k, k))
        position = end


def _progress_bar(enabled: bool, total: int, initial: int) -> tqdm:
    return tqdm(total=total, initial=initial, unit="tile", desc="graft map", disable=not enabled)
