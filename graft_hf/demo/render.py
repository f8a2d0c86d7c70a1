"""Pictures of retrieval results drawn with Pillow: a map of where the hits are and placeholder thumbnails.

No web map tiles are fetched (a Space may have no internet, and tests run offline): the map is a scatter over
longitude/latitude in an equirectangular projection with the aspect corrected by `cos(latitude)`, a labelled
graticule, the whole gallery as grey context dots and the hits numbered by rank and coloured by score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from graft_hf.tasks.map_render import apply_colormap
from graft_hf.tasks.segmentation import load_font

__all__ = ["placeholder_thumbnail", "render_results_map"]


def _nice_step(span: float, target_lines: int = 5) -> float:
    """A 1-2-5 step giving about `target_lines` graticule lines over `span` degrees."""
    raw = max(span, 1e-6) / target_lines
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def render_results_map(
    lats: Sequence[float],
    lons: Sequence[float],
    scores: Sequence[float],
    context_lats: Sequence[float] = (),
    context_lons: Sequence[float] = (),
    title: str = "",
    size: tuple[int, int] = (640, 440),
):
    """Draws the hits of a query on a longitude/latitude plot.

    Args:
        lats: Latitudes of the hits in rank order (degrees).
        lons: Longitudes of the hits.
        scores: Similarity of each hit (colours, viridis from lowest to highest).
        context_lats: Latitudes of the rest of the gallery (grey dots).
        context_lons: Longitudes of the rest of the gallery.
        title: Text above the plot.
        size: `(width, height)` of the picture in pixels.

    Returns:
        An RGB `PIL.Image.Image`.
    """
    from PIL import Image, ImageDraw

    if not (len(lats) == len(lons) == len(scores)) or len(context_lats) != len(context_lons):
        raise ValueError("lats, lons and scores (and the context coordinates) must have equal lengths")
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = load_font(12)
    all_lat = np.asarray([*lats, *context_lats], dtype=np.float64)
    all_lon = np.asarray([*lons, *context_lons], dtype=np.float64)
    left, right, top, bottom = 58, 16, 46, 34
    draw.text((left, 24), title, fill=(0, 0, 0), font=font)  # below the label Gradio floats over the corner
    if all_lat.size == 0:
        draw.text((left, height // 2), "no results", fill=(0, 0, 0), font=font)
        return image
    # Extent with a margin; at least 0.01 degrees so a single point gets a sensible frame.
    lat0, lat1 = float(all_lat.min()), float(all_lat.max())
    lon0, lon1 = float(all_lon.min()), float(all_lon.max())
    pad_lat = max((lat1 - lat0) * 0.08, 0.005)
    pad_lon = max((lon1 - lon0) * 0.08, 0.005)
    lat0, lat1, lon0, lon1 = lat0 - pad_lat, lat1 + pad_lat, lon0 - pad_lon, lon1 + pad_lon
    # Equal ground distances per pixel in both directions at the centre latitude.
    plot_w, plot_h = width - left - right, height - top - bottom
    coslat = max(math.cos(math.radians((lat0 + lat1) / 2)), 0.05)
    span_x, span_y = (lon1 - lon0) * coslat, lat1 - lat0
    scale = min(plot_w / span_x, plot_h / span_y)
    extra_x, extra_y = (plot_w / scale - span_x) / 2 / coslat, (plot_h / scale - span_y) / 2
    lon0, lon1, lat0, lat1 = lon0 - extra_x, lon1 + extra_x, lat0 - extra_y, lat1 + extra_y

    def to_px(lat: float, lon: float) -> tuple[float, float]:
        return left + (lon - lon0) / (lon1 - lon0) * plot_w, top + (lat1 - lat) / (lat1 - lat0) * plot_h

    draw.rectangle((left, top, left + plot_w, top + plot_h), outline=(120, 120, 120), fill=(244, 246, 248))
    for values, lo, hi, vertical in ((np.arange, lon0, lon1, True), (np.arange, lat0, lat1, False)):
        step = _nice_step(hi - lo)
        for value in values(math.ceil(lo / step) * step, hi, step):
            if vertical:
                x = to_px(lat0, value)[0]
                draw.line((x, top, x, top + plot_h), fill=(215, 215, 215))
                draw.text((x - 18, top + plot_h + 4), f"{value:.4g}°", fill=(60, 60, 60), font=font)
            else:
                y = to_px(value, lon0)[1]
                draw.line((left, y, left + plot_w, y), fill=(215, 215, 215))
                draw.text((4, y - 7), f"{value:.4g}°", fill=(60, 60, 60), font=font)
    draw.text((left + plot_w - 60, height - 14), "longitude", fill=(60, 60, 60), font=font)
    draw.text((4, top - 14), "latitude", fill=(60, 60, 60), font=font)
    for lat, lon in zip(context_lats, context_lons):
        x, y = to_px(lat, lon)
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(185, 185, 185))
    score_array = np.asarray(scores, dtype=np.float32)
    if score_array.size:
        colours = apply_colormap(score_array[None], float(score_array.min()), float(score_array.max()))[0]
        for rank in range(len(lats) - 1, -1, -1):  # best hit drawn last, on top
            x, y = to_px(lats[rank], lons[rank])
            draw.ellipse((x - 7, y - 7, x + 7, y + 7), fill=tuple(int(c) for c in colours[rank]), outline=(0, 0, 0))
            draw.text((x + 9, y - 7), str(rank + 1), fill=(0, 0, 0), font=font)
    return image


def placeholder_thumbnail(text: str = "no thumbnail", size: int = 96):
    """A grey square with a short text, shown for results of a gallery saved without thumbnails."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (200, 200, 200))
    ImageDraw.Draw(image).text((6, size // 2 - 6), text, fill=(60, 60, 60), font=load_font(11))
    return image
