"""Pictures of retrieval results drawn with Pillow: a map of where the hits are and placeholder thumbnails.

No web map tiles are fetched (a Space may have no internet, and tests run offline): the map is a scatter over
longitude/latitude in an equirectangular projection with the aspect corrected by `cos(latitude)`, a labelled
graticule, the whole gallery as grey context dots and the hits numbered by rank and coloured by score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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
) -> Image.Image:
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
    if not (len(lats) == len(lons) == len(scores)) or len(context_lats) != len(context_lons):
        raise ValueError("lats, lons and scores (and the context coordinates) must have equal lengths")
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = load_font(12)
    all_lat = np.asarray([*lats, *context_lats], dtype=np.float64)
    all_lon = np.asarray([*lons, *context_lons], dtype=np.float64)
    draw.text((_LEFT, 24), title, fill=(0, 0, 0), font=font)  # below the label Gradio floats over the corner
    if all_lat.size == 0:
        draw.text((_LEFT, height // 2), "no results", fill=(0, 0, 0), font=font)
        return image
    frame = _Frame.around(all_lat, all_lon, width, height)
    frame.draw_graticule(draw, font)
    for lat, lon in zip(context_lats, context_lons):
        x, y = frame.to_px(lat, lon)
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(185, 185, 185))
    score_array = np.asarray(scores, dtype=np.float32)
    if score_array.size:
        colours = apply_colormap(score_array[None], float(score_array.min()), float(score_array.max()))[0]
        for rank in range(len(lats) - 1, -1, -1):  # best hit drawn last, on top
            x, y = frame.to_px(lats[rank], lons[rank])
            draw.ellipse((x - 7, y - 7, x + 7, y + 7), fill=tuple(int(c) for c in colours[rank]), outline=(0, 0, 0))
            draw.text((x + 9, y - 7), str(rank + 1), fill=(0, 0, 0), font=font)
    return image


# Margins of the plot inside the picture, in pixels (room for the title and the graticule labels).
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 16, 46, 34


@dataclass(frozen=True)
class _Frame:
    """The plotted longitude/latitude extent and the picture size: degrees to pixels."""

    lat0: float
    lat1: float
    lon0: float
    lon1: float
    width: int
    height: int

    @property
    def plot_w(self) -> int:
        return self.width - _LEFT - _RIGHT

    @property
    def plot_h(self) -> int:
        return self.height - _TOP - _BOTTOM

    @classmethod
    def around(cls, lats: np.ndarray, lons: np.ndarray, width: int, height: int) -> _Frame:
        """A frame holding every point with a margin, equal ground distances per pixel at the centre latitude."""
        lat0, lat1 = float(lats.min()), float(lats.max())
        lon0, lon1 = float(lons.min()), float(lons.max())
        # A margin of at least 0.005 degrees, so a single point gets a sensible frame.
        pad_lat, pad_lon = max((lat1 - lat0) * 0.08, 0.005), max((lon1 - lon0) * 0.08, 0.005)
        lat0, lat1, lon0, lon1 = lat0 - pad_lat, lat1 + pad_lat, lon0 - pad_lon, lon1 + pad_lon
        plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
        coslat = max(math.cos(math.radians((lat0 + lat1) / 2)), 0.05)
        span_x, span_y = (lon1 - lon0) * coslat, lat1 - lat0
        scale = min(plot_w / span_x, plot_h / span_y)
        extra_x, extra_y = (plot_w / scale - span_x) / 2 / coslat, (plot_h / scale - span_y) / 2
        return cls(lat0 - extra_y, lat1 + extra_y, lon0 - extra_x, lon1 + extra_x, width, height)

    def to_px(self, lat: float, lon: float) -> tuple[float, float]:
        x = _LEFT + (lon - self.lon0) / (self.lon1 - self.lon0) * self.plot_w
        return x, _TOP + (self.lat1 - lat) / (self.lat1 - self.lat0) * self.plot_h

    def draw_graticule(self, draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> None:
        """The plot area, labelled meridians and parallels at 1-2-5 steps, and the axis names."""
        plot_w, plot_h, grey = self.plot_w, self.plot_h, (60, 60, 60)
        draw.rectangle((_LEFT, _TOP, _LEFT + plot_w, _TOP + plot_h), outline=(120, 120, 120), fill=(244, 246, 248))
        step = _nice_step(self.lon1 - self.lon0)
        for lon in np.arange(math.ceil(self.lon0 / step) * step, self.lon1, step):
            x = self.to_px(self.lat0, lon)[0]
            draw.line((x, _TOP, x, _TOP + plot_h), fill=(215, 215, 215))
            draw.text((x - 18, _TOP + plot_h + 4), f"{lon:.4g}°", fill=grey, font=font)
        step = _nice_step(self.lat1 - self.lat0)
        for lat in np.arange(math.ceil(self.lat0 / step) * step, self.lat1, step):
            y = self.to_px(lat, self.lon0)[1]
            draw.line((_LEFT, y, _LEFT + plot_w, y), fill=(215, 215, 215))
            draw.text((4, y - 7), f"{lat:.4g}°", fill=grey, font=font)
        draw.text((_LEFT + plot_w - 60, self.height - 14), "longitude", fill=grey, font=font)
        draw.text((4, _TOP - 14), "latitude", fill=grey, font=font)


def placeholder_thumbnail(text: str = "no thumbnail", size: int = 96) -> Image.Image:
    """A grey square with a short text, shown for results of a gallery saved without thumbnails."""
    image = Image.new("RGB", (size, size), (200, 200, 200))
    ImageDraw.Draw(image).text((6, size // 2 - 6), text, fill=(60, 60, 60), font=load_font(11))
    return image
