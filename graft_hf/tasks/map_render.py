"""Region-map outputs for people: PNG overlays with a colour bar and the top-k tiles as GeoJSON.

The colour map is viridis (perceptually uniform, colour-blind safe) interpolated in numpy from 9 anchor colours,
so rendering needs only numpy and Pillow, not matplotlib. Every read here is decimated (bounded by the preview
size), never the full raster.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from graft_hf.tasks.tiling import PixelWindow, TileGrid

__all__ = ["VIRIDIS_ANCHORS", "apply_colormap", "render_overlay", "topk_features", "write_topk_geojson"]

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


def apply_colormap(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Map values to viridis RGB.

    Args:
        values: `(height, width)` floats; NaN gives black.
        vmin: Value mapped to the first colour.
        vmax: Value mapped to the last colour.

    Returns:
        `(height, width, 3)` uint8.
    """
    span = vmax - vmin if vmax > vmin else 1.0
    t = np.clip((np.nan_to_num(values, nan=vmin) - vmin) / span, 0.0, 1.0) * (len(VIRIDIS_ANCHORS) - 1)
    lower = np.minimum(np.floor(t).astype(np.int64), len(VIRIDIS_ANCHORS) - 2)
    frac = (t - lower)[..., None]
    rgb = VIRIDIS_ANCHORS[lower] * (1 - frac) + VIRIDIS_ANCHORS[lower + 1] * frac
    rgb[np.isnan(values)] = 0
    return np.round(rgb).astype(np.uint8)


def _preview_shape(height: int, width: int, max_side: int) -> tuple[int, int]:
    factor = min(1.0, max_side / max(height, width))
    return max(1, round(height * factor)), max(1, round(width * factor))


def _rgb_preview(src: Any, region: PixelWindow, indexes: list[int], model_config: Any, shape: tuple[int, int]):
    """`(height, width, 3)` uint8 RGB of the region (2-98 % stretch per band) and its `(height, width)` valid mask."""
    from rasterio.enums import Resampling

    rgb_indexes = [indexes[i] for i in model_config.rgb_bands] if len(indexes) != 3 else indexes
    data = src.read(
        rgb_indexes, window=region.to_rasterio(), out_shape=(3, *shape), resampling=Resampling.nearest
    ).astype(np.float64)
    valid = np.ones(shape, dtype=bool)
    for nodata in (src.nodata, model_config.nodata_value):
        if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
            valid &= ~np.all(data == nodata, axis=0)
    out = np.zeros((*shape, 3), dtype=np.uint8)
    for band in range(3):
        values = data[band][valid]
        if values.size == 0:
            continue
        low, high = np.percentile(values, [2, 98])
        scaled = np.clip((data[band] - low) / (high - low if high > low else 1.0), 0, 1)
        out[..., band] = np.round(scaled * 255).astype(np.uint8)
    out[~valid] = 0
    return out, valid


def render_overlay(
    src: Any,
    region: PixelWindow,
    score_path: str | os.PathLike,
    png_path: str | os.PathLike,
    query: str,
    model_config: Any,
    indexes: list[int],
    score_kind: str,
    max_side: int = 1024,
    alpha: float = 0.55,
) -> None:
    """Write a PNG: the query's scores colour-mapped over a downsampled RGB preview, with a colour bar.

    Args:
        src: Open rasterio dataset of the input raster.
        region: The mapped region.
        score_path: The query's score GeoTIFF.
        png_path: Where to write the PNG.
        query: Query text (the title).
        model_config: The model's `GraftConfig` (RGB bands, nodata).
        indexes: 1-based raster bands read for the model, in sensor order.
        score_kind: `"cosine"` or `"softmax"` (legend label).
        max_side: Longest side of the preview in pixels.
        alpha: Opacity of the scores over the imagery.
    """
    import rasterio
    from PIL import Image, ImageDraw

    shape = _preview_shape(region.height, region.width, max_side)
    rgb, _ = _rgb_preview(src, region, indexes, model_config, shape)
    with rasterio.open(score_path) as scores_ds:
        # The score raster covers the region and possibly a partial cell beyond it; read a decimated copy and look
        # every preview pixel up by its position in raster pixels.
        score_shape = (min(scores_ds.height, shape[0]), min(scores_ds.width, shape[1]))
        scores = scores_ds.read(1, out_shape=score_shape).astype(np.float64)
        cover_h = scores_ds.height * abs(scores_ds.transform.e / src.transform.e)
        cover_w = scores_ds.width * abs(scores_ds.transform.a / src.transform.a)
    rows = ((np.arange(shape[0]) + 0.5) * region.height / shape[0] / cover_h * score_shape[0]).astype(np.int64)
    cols = ((np.arange(shape[1]) + 0.5) * region.width / shape[1] / cover_w * score_shape[1]).astype(np.int64)
    values = scores[np.minimum(rows, score_shape[0] - 1)][:, np.minimum(cols, score_shape[1] - 1)]
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    colours = apply_colormap(values, vmin, vmax).astype(np.float64)
    has_score = np.isfinite(values)[..., None]
    blended = np.where(has_score, (1 - alpha) * rgb + alpha * colours, rgb)
    image = Image.fromarray(np.round(blended).astype(np.uint8), mode="RGB")

    # Canvas: title above, colour bar to the right.
    bar_w, margin, title_h = 18, 10, 22
    legend_w = bar_w + 70
    canvas = Image.new("RGB", (image.width + legend_w + 2 * margin, image.height + title_h + 2 * margin), "white")
    canvas.paste(image, (margin, margin + title_h))
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, margin), f"{query}  ({score_kind} score)", fill="black")
    bar_h = max(image.height, 40)
    ramp = np.linspace(vmax, vmin, bar_h)[:, None].repeat(bar_w, axis=1)
    canvas.paste(
        Image.fromarray(apply_colormap(ramp, vmin, vmax), mode="RGB"), (margin + image.width + 8, margin + title_h)
    )
    x_text = margin + image.width + 12 + bar_w
    for frac in (0.0, 0.5, 1.0):
        y = margin + title_h + int(frac * (bar_h - 10))
        draw.text((x_text, y), f"{vmax - frac * (vmax - vmin):.3f}", fill="black")
    tmp = Path(png_path).with_name(f".{Path(png_path).name}.tmp-{os.getpid()}")
    canvas.save(tmp, format="PNG")
    os.replace(tmp, png_path)


def topk_features(
    src: Any, grid: TileGrid, ranked: Callable[[str], list[tuple[float, int]]], queries: tuple[str, ...]
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
    from rasterio.warp import transform_geom
    from rasterio.windows import bounds as window_bounds

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
    src: Any,
    grid: TileGrid,
    ranked: Callable[[str], list[tuple[float, int]]],
    queries: tuple[str, ...],
) -> None:
    """Write the top-k tiles of every query as a GeoJSON FeatureCollection (atomically)."""
    collection = {"type": "FeatureCollection", "features": topk_features(src, grid, ranked, queries)}
    tmp = Path(path).with_name(f".{Path(path).name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(collection), encoding="utf-8")
    os.replace(tmp, path)
