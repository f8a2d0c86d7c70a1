"""Region-map outputs for people: PNG overlays with a colour bar and the top-k tiles as GeoJSON.

The colour map is viridis (perceptually uniform, colour-blind safe) interpolated in numpy from 9 anchor colours,
so rendering needs only numpy and Pillow, not matplotlib. The RGB backdrop is a small georeferenced preview
GeoTIFF that the tiling loop fills from the windows it reads anyway (`paste_preview`), so no second pass over a
huge raster is needed and the preview survives a resumed run like the scores do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import rasterio
from PIL import Image, ImageDraw
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.transform import Affine
from rasterio.warp import transform_geom
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from graft_hf.io import atomic_path, atomic_write
from graft_hf.tasks.tiling import PixelWindow, TileGrid

__all__ = [
    "VIRIDIS_ANCHORS",
    "apply_colormap",
    "create_preview",
    "paste_preview",
    "preview_shape",
    "render_overlay",
    "topk_features",
    "write_topk_geojson",
]

# matplotlib's viridis sampled at 0, 1/8, ..., 1 (sRGB 0..255).
VIRIDIS_ANCHORS = np.array(
    [
        [68, 1, 84],
        [71, 45, 123],
        [59, 82, 139],
        [44, 114, 142],
        [33, 145, 140],
        [40, 174, 128],
        [94, 201, 98],
        [173, 220, 48],
        [253, 231, 37],
    ],
    dtype=np.float64,
)


def _viridis_lut() -> np.ndarray:
    """`(256, 3)` uint8 viridis lookup table, linear between the anchors."""
    t = np.linspace(0.0, len(VIRIDIS_ANCHORS) - 1, 256)
    lower = np.minimum(np.floor(t).astype(np.int64), len(VIRIDIS_ANCHORS) - 2)
    frac = (t - lower)[:, None]
    return np.round(VIRIDIS_ANCHORS[lower] * (1 - frac) + VIRIDIS_ANCHORS[lower + 1] * frac).astype(np.uint8)


_LUT = _viridis_lut()


def apply_colormap(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Map values to viridis RGB (256 levels).

    Args:
        values: `(height, width)` floats; NaN gives black.
        vmin: Value mapped to the first colour.
        vmax: Value mapped to the last colour.

    Returns:
        `(height, width, 3)` uint8.
    """
    span = vmax - vmin if vmax > vmin else 1.0
    scaled = np.clip((np.asarray(values, dtype=np.float32) - np.float32(vmin)) / np.float32(span), 0.0, 1.0)
    levels = np.round(np.nan_to_num(scaled, nan=0.0) * 255).astype(np.uint8)
    rgb = _LUT[levels]
    rgb[np.isnan(values)] = 0
    return rgb


def preview_shape(region: PixelWindow, max_side: int) -> tuple[int, int]:
    """`(height, width)` of the RGB preview of a region, its longest side at most `max_side`."""
    factor = min(1.0, max_side / max(region.height, region.width))
    return max(1, round(region.height * factor)), max(1, round(region.width * factor))


def create_preview(path: str | os.PathLike, src: DatasetReader, region: PixelWindow, max_side: int) -> None:
    """Create the georeferenced RGB preview GeoTIFF (raw band values, 0 where nodata) that tiles are pasted into."""
    height, width = preview_shape(region, max_side)
    transform = (
        src.transform
        @ Affine.translation(region.col_off, region.row_off)
        @ Affine.scale(region.width / width, region.height / height)
    )
    profile = {"driver": "GTiff", "dtype": src.dtypes[0], "count": 3, "width": width, "height": height}
    with rasterio.open(path, "w", crs=src.crs, transform=transform, compress="deflate", **profile) as dst:
        dst.write(np.zeros((3, height, width), dtype=src.dtypes[0]))


def paste_preview(dst: DatasetWriter, region: PixelWindow, window: PixelWindow, rgb: np.ndarray) -> None:
    """Paste a window's RGB into the preview (nearest sampling), where the window overlaps the region.

    Args:
        dst: The preview dataset opened for update.
        region: The mapped region.
        window: The window the pixels come from.
        rgb: `(3, h, w)` pixels of the window (native, or averaged down to the model input size).
    """
    sy, sx = dst.height / region.height, dst.width / region.width  # preview pixels per raster pixel
    c0 = max(window.col_off, region.col_off) - region.col_off
    r0 = max(window.row_off, region.row_off) - region.row_off
    c1 = min(window.col_off + window.width, region.col_off + region.width) - region.col_off
    r1 = min(window.row_off + window.height, region.row_off + region.height) - region.row_off
    if c1 <= c0 or r1 <= r0:
        return
    y0, x0 = min(int(r0 * sy), dst.height - 1), min(int(c0 * sx), dst.width - 1)
    y1, x1 = max(y0 + 1, min(round(r1 * sy), dst.height)), max(x0 + 1, min(round(c1 * sx), dst.width))
    # Raster position of each preview pixel centre, then its index in the window's (possibly averaged) array.
    rows = ((np.arange(y0, y1) + 0.5) / sy + region.row_off - window.row_off) * rgb.shape[1] / window.height
    cols = ((np.arange(x0, x1) + 0.5) / sx + region.col_off - window.col_off) * rgb.shape[2] / window.width
    rows = np.clip(rows.astype(np.int64), 0, rgb.shape[1] - 1)
    cols = np.clip(cols.astype(np.int64), 0, rgb.shape[2] - 1)
    dst.write(rgb[:, rows][:, :, cols], window=Window(x0, y0, x1 - x0, y1 - y0))


def _rgb_preview(preview_path: str | os.PathLike) -> np.ndarray:
    """`(height, width, 3)` uint8 RGB of the preview (2-98 % stretch per band over non-zero pixels)."""
    with rasterio.open(preview_path) as ds:
        data = ds.read().astype(np.float32)
    valid = np.any(data != 0, axis=0)
    out = np.zeros((*data.shape[1:], 3), dtype=np.uint8)
    for band in range(3):
        values = data[band][valid]
        if values.size == 0:
            continue
        low, high = np.percentile(values, [2, 98])
        scaled = np.clip((data[band] - low) / (high - low if high > low else 1.0), 0, 1)
        out[..., band] = np.round(scaled * 255).astype(np.uint8)
    out[~valid] = 0
    return out


def render_overlay(
    src: DatasetReader,
    region: PixelWindow,
    preview_path: str | os.PathLike,
    score_path: str | os.PathLike,
    png_path: str | os.PathLike,
    query: str,
    score_kind: str,
    alpha: float = 0.55,
) -> None:
    """Write a PNG: the query's scores colour-mapped over a downsampled RGB preview, with a colour bar.

    Args:
        src: Open rasterio dataset of the input raster.
        region: The mapped region.
        preview_path: The RGB preview GeoTIFF filled during tiling (see `paste_preview`).
        score_path: The query's score GeoTIFF.
        png_path: Where to write the PNG.
        query: Query text (the title).
        score_kind: `"cosine"` or `"softmax"` (legend label).
        alpha: Opacity of the scores over the imagery.
    """
    rgb = _rgb_preview(preview_path)
    values = _scores_on_preview(src, region, score_path, rgb.shape[:2])
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    blended = rgb.astype(np.float32)
    has_score = np.isfinite(values)
    blended[has_score] = (1 - alpha) * blended[has_score] + alpha * apply_colormap(values, vmin, vmax)[has_score]
    image = Image.fromarray(np.round(blended).astype(np.uint8), mode="RGB")
    canvas = _with_legend(image, f"{query}  ({score_kind} score)", vmin, vmax)
    with atomic_path(png_path) as tmp:
        canvas.save(tmp, format="PNG")


def _scores_on_preview(
    src: DatasetReader, region: PixelWindow, score_path: str | os.PathLike, shape: tuple[int, int]
) -> np.ndarray:
    """The score of every pixel of a `(height, width)` preview of the region (NaN where there is none)."""
    with rasterio.open(score_path) as scores_ds:
        # The score raster covers the region and possibly a partial cell beyond it; read a decimated copy and look
        # every preview pixel up by its position in raster pixels.
        score_shape = (min(scores_ds.height, shape[0]), min(scores_ds.width, shape[1]))
        scores = scores_ds.read(1, out_shape=score_shape)
        cover_h = scores_ds.height * abs(scores_ds.transform.e / src.transform.e)
        cover_w = scores_ds.width * abs(scores_ds.transform.a / src.transform.a)
    rows = ((np.arange(shape[0]) + 0.5) * region.height / shape[0] / cover_h * score_shape[0]).astype(np.int64)
    cols = ((np.arange(shape[1]) + 0.5) * region.width / shape[1] / cover_w * score_shape[1]).astype(np.int64)
    return scores[np.minimum(rows, score_shape[0] - 1)][:, np.minimum(cols, score_shape[1] - 1)]


def _with_legend(image: Image.Image, title: str, vmin: float, vmax: float) -> Image.Image:
    """`image` on a white canvas with the title above and a viridis colour bar from `vmin` to `vmax` to the right."""
    bar_w, margin, title_h = 18, 10, 22
    legend_w = bar_w + 70
    canvas = Image.new("RGB", (image.width + legend_w + 2 * margin, image.height + title_h + 2 * margin), "white")
    canvas.paste(image, (margin, margin + title_h))
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, margin), title, fill="black")
    bar_h = max(image.height, 40)
    ramp = np.linspace(vmax, vmin, bar_h)[:, None].repeat(bar_w, axis=1)
    canvas.paste(
        Image.fromarray(apply_colormap(ramp, vmin, vmax), mode="RGB"), (margin + image.width + 8, margin + title_h)
    )
    x_text = margin + image.width + 12 + bar_w
    for frac in (0.0, 0.5, 1.0):
        y = margin + title_h + int(frac * (bar_h - 10))
        draw.text((x_text, y), f"{vmax - frac * (vmax - vmin):.3f}", fill="black")
    return canvas


def topk_features(
    src: DatasetReader, grid: TileGrid, ranked: Callable[[str], list[tuple[float, int]]], queries: tuple[str, ...]
) -> list[dict[str, Any]]:
    """GeoJSON features (EPSG:4326 polygons) of the top-k tiles of every query.

    Args:
        src: Open rasterio dataset of the input raster.
        grid: The tile grid.
        ranked: `ranked(query) -> [(score, window_index), ...]`, best first.
        queries: Queries in output order.

    Returns:
        Features with properties `query`, `rank` (1-based), `score`, `row`, `col` (window grid) and `window`
        (`[col_off, row_off, width, height]` in raster pixels).
    """
    features = []
    for query in queries:
        for rank, (score, index) in enumerate(ranked(query), start=1):
            window = grid.window_at(index)
            left, bottom, right, top = window_bounds(window.to_rasterio(), src.transform)
            ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
            geometry = transform_geom(src.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]}, precision=8)
            row, col = grid.position(index)
            features.append(
                {
                    "type": "Feature",
                    "geometry": geometry,
                    "properties": {
                        "query": query,
                        "rank": rank,
                        "score": round(float(score), 6),
                        "row": row,
                        "col": col,
                        "window": [window.col_off, window.row_off, window.width, window.height],
                    },
                }
            )
    return features


def write_topk_geojson(
    path: str | os.PathLike,
    src: DatasetReader,
    grid: TileGrid,
    ranked: Callable[[str], list[tuple[float, int]]],
    queries: tuple[str, ...],
) -> None:
    """Write the top-k tiles of every query as a GeoJSON FeatureCollection (atomically)."""
    collection = {"type": "FeatureCollection", "features": topk_features(src, grid, ranked, queries)}
    atomic_write(path, json.dumps(collection))
