"""Figures for evaluation reports: a confusion-matrix heat map and a text-to-image retrieval grid.

matplotlib (the ``plots`` extra) is imported inside `plot_confusion_matrix` (Agg backend, no display needed) so
importing this module stays cheap; the retrieval grid is drawn with PIL only.
"""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from graft_hf.extras import require
from graft_hf.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

__all__ = ["CORRECT_COLOR", "INCORRECT_COLOR", "load_font", "plot_confusion_matrix", "retrieval_grid"]

CORRECT_COLOR = (40, 167, 69)
"""RGB of the border around a retrieved image that is relevant to its query."""
INCORRECT_COLOR = (220, 53, 69)
"""RGB of the border around a retrieved image that is not relevant to its query."""
_BACKGROUND = (255, 255, 255)
_TEXT_COLOR = (20, 20, 20)
_NEUTRAL_BORDER = (200, 200, 200)


def _output_path(path: str | os.PathLike) -> Path:
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ValueError(f"figure path {str(out)!r} must end in .png")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def plot_confusion_matrix(
    matrix: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    normalize: bool = True,
) -> Path:
    """Write a confusion matrix as a PNG heat map.

    Args:
        matrix: Counts, shape (num_classes, num_classes); rows are the true class, columns the predicted one
            (the layout of `graft_hf.evaluation.metrics.confusion_matrix`).
        class_names: One name per row/column.
        path: Output `.png` file; parent folders are created.
        title: Figure title; defaults to "Confusion matrix".
        normalize: Colour each cell by its share of the row (recall per true class) and annotate the percentage
            above the count. With False, colours and annotations are raw counts.

    Returns:
        The written path.

    Raises:
        ValueError: `matrix` is not square, does not match `class_names`, or holds negative counts.
    """
    counts = _checked_counts(matrix, class_names)
    out = _output_path(path)
    matplotlib = require("matplotlib", "plots", "the confusion-matrix figure")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = counts.shape[0]
    side = max(4.0, 0.6 * n + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1.0, side), dpi=100)
    try:
        _draw_confusion(fig, ax, counts, class_names, normalize)
        ax.set_title(title or "Confusion matrix")
        fig.tight_layout()
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    logger.info("wrote confusion matrix (%d classes) to %s", n, out)
    return out


def _checked_counts(matrix: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """The matrix as float64 counts, refusing one that is not square, empty, negative or mislabelled."""
    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"confusion matrix must be square (num_classes, num_classes), got shape {counts.shape}")
    if counts.shape[0] != len(class_names):
        raise ValueError(
            f"confusion matrix is {counts.shape[0]}x{counts.shape[0]} but {len(class_names)} class names were given"
        )
    if counts.shape[0] == 0:
        raise ValueError("confusion matrix is empty: pass at least one class")
    if (counts < 0).any():
        raise ValueError("confusion matrix holds negative counts; pass raw counts (rows = true class)")
    return counts.astype(np.float64)


def _draw_confusion(fig: Figure, ax: Axes, counts: np.ndarray, class_names: Sequence[str], normalize: bool) -> None:
    """Cells coloured by row share (or count), annotated with percentage and count; axes labelled."""
    row_sums = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_sums, out=np.zeros_like(counts), where=row_sums > 0)
    colours = shares if normalize else counts
    vmax = 1.0 if normalize else max(colours.max(), 1.0)
    n = counts.shape[0]
    image = ax.imshow(colours, cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class" if normalize else "count")
    ax.set_xticks(range(n), labels=list(class_names), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels=list(class_names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fontsize = 8 if n <= 12 else 6
    for i in range(n):
        for j in range(n):
            count = int(round(counts[i, j]))
            text = f"{100 * shares[i, j]:.0f}%\n{count}" if normalize else f"{count}"
            colour = "white" if colours[i, j] > 0.5 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)


def load_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """PIL's default font at `size` pixels (a fixed bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _fit_thumbnail(image: Image.Image, size: int) -> Image.Image:
    """`image` as RGB scaled to fit a `size` x `size` square (aspect kept), centred on white."""
    rgb = image.convert("RGB")
    scale = size / max(rgb.width, rgb.height)
    resized = rgb.resize(
        (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.Resampling.BICUBIC
    )
    canvas = Image.new("RGB", (size, size), _BACKGROUND)
    canvas.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
    return canvas


def _check_nested(name: str, values: Sequence[Sequence] | None, images: Sequence[Sequence[Image.Image]]) -> None:
    if values is None:
        return
    if len(values) != len(images):
        raise ValueError(f"{name} has {len(values)} rows but images has {len(images)}; pass one row per query")
    for row, (vals, imgs) in enumerate(zip(values, images, strict=True)):
        if len(vals) != len(imgs):
            raise ValueError(f"{name}[{row}] has {len(vals)} entries but images[{row}] has {len(imgs)} images")


def retrieval_grid(
    queries: Sequence[str],
    images: Sequence[Sequence[Image.Image]],
    path: str | os.PathLike,
    *,
    captions: Sequence[Sequence[str]] | None = None,
    correct: Sequence[Sequence[bool]] | None = None,
    thumb_size: int = 96,
) -> Path:
    """Write a text-to-image retrieval grid: one row per query, its top-k images left to right in rank order.

    The query text sits in a column at the left of each row (wrapped). With `correct`, each thumbnail gets a
    green (`CORRECT_COLOR`) or red (`INCORRECT_COLOR`) border; otherwise a thin grey one. Rows may hold
    different numbers of images; the grid is as wide as the longest row.

    Args:
        queries: Query texts, one per row.
        images: `images[q]` are the retrieved images for query q, best first (any size or mode).
        path: Output `.png` file; parent folders are created.
        captions: Optional `captions[q][i]` drawn under image i of row q (e.g. coordinates or the true label).
        correct: Optional `correct[q][i]` marking whether image i of row q is relevant.
        thumb_size: Side of each square thumbnail, in pixels.

    Returns:
        The written path.

    Raises:
        ValueError: Lengths of `queries`, `images`, `captions` or `correct` disagree, or there is nothing to draw.
    """
    if len(queries) != len(images):
        raise ValueError(f"got {len(queries)} queries but {len(images)} rows of images; pass one row per query")
    if not queries:
        raise ValueError("retrieval grid needs at least one query")
    if thumb_size < 8:
        raise ValueError(f"thumb_size must be at least 8 pixels, got {thumb_size}")
    _check_nested("captions", captions, images)
    _check_nested("correct", correct, images)
    out = _output_path(path)
    columns = max((len(row) for row in images), default=0)
    layout = _GridLayout(thumb_size, caption_lines=2 if captions is not None else 0)
    canvas = Image.new("RGB", layout.canvas_size(len(queries), columns), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for q, query in enumerate(queries):
        top = layout.pad + q * layout.cell_h
        layout.draw_query(draw, str(query), top)
        for i, image in enumerate(images[q]):
            colour = _NEUTRAL_BORDER if correct is None else CORRECT_COLOR if correct[q][i] else INCORRECT_COLOR
            caption = None if captions is None else str(captions[q][i])
            layout.draw_thumbnail(
                canvas, draw, image, layout.query_width + layout.pad + i * layout.cell_w, top, colour, caption
            )
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")
    logger.info("wrote retrieval grid (%d queries x %d images) to %s", len(queries), columns, out)
    return out


@dataclass(frozen=True)
class _GridLayout:
    """Sizes of the retrieval grid, all derived from the thumbnail side."""

    thumb_size: int
    caption_lines: int

    @property
    def border(self) -> int:
        return max(2, self.thumb_size // 24)

    @property
    def pad(self) -> int:
        return max(4, self.thumb_size // 12)

    @property
    def text_size(self) -> int:
        return max(10, self.thumb_size // 8)

    @property
    def query_width(self) -> int:
        return max(3 * self.thumb_size // 2, 140)

    @property
    def cell_w(self) -> int:
        return self.thumb_size + 2 * self.border + self.pad

    @property
    def cell_h(self) -> int:
        return self.thumb_size + 2 * self.border + self.caption_lines * (self.text_size + 1) + self.pad

    def canvas_size(self, rows: int, columns: int) -> tuple[int, int]:
        return self.query_width + self.pad + max(columns, 1) * self.cell_w + self.pad, self.pad + rows * self.cell_h

    def draw_query(self, draw: ImageDraw.ImageDraw, query: str, top: int) -> None:
        """The query text, wrapped into the left column and cut with an ellipsis where it does not fit."""
        chars_per_line = max(8, int(self.query_width / (0.55 * self.text_size)))
        line_height = self.text_size + 3
        lines = textwrap.wrap(query, width=chars_per_line) or [""]
        max_lines = max(1, (self.thumb_size + 2 * self.border) // line_height)
        if len(lines) > max_lines:
            lines = [*lines[: max_lines - 1], lines[max_lines - 1][: chars_per_line - 1] + "…"]
        font = load_font(self.text_size)
        for i, line in enumerate(lines):
            draw.text((self.pad, top + i * line_height), line, fill=_TEXT_COLOR, font=font)

    def draw_thumbnail(
        self,
        canvas: Image.Image,
        draw: ImageDraw.ImageDraw,
        image: Image.Image,
        left: int,
        top: int,
        colour: tuple[int, int, int],
        caption: str | None,
    ) -> None:
        """One retrieved image in its coloured border, with its caption underneath."""
        side = self.thumb_size + 2 * self.border
        draw.rectangle([left, top, left + side - 1, top + side - 1], fill=colour)
        canvas.paste(_fit_thumbnail(image, self.thumb_size), (left + self.border, top + self.border))
        if caption is None:
            return
        font = load_font(max(8, self.text_size - 2))
        wrapped = textwrap.wrap(caption, width=max(4, int(self.thumb_size / (0.5 * self.text_size))))
        for j, line in enumerate(wrapped[: self.caption_lines]):
            draw.text((left, top + side + 1 + j * (self.text_size + 1)), line, fill=_TEXT_COLOR, font=font)
