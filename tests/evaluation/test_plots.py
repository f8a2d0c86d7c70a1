"""Figures: the confusion-matrix PNG and the retrieval grid are real images with the promised layout."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from graft_hf.evaluation.plots import CORRECT_COLOR, INCORRECT_COLOR, plot_confusion_matrix, retrieval_grid


def _solid(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Image.Image:
    return Image.new("RGB", size, colour)


def test_confusion_matrix_png(tmp_path):
    matrix = np.array([[5, 1, 0], [0, 3, 3], [2, 0, 0]])
    out = plot_confusion_matrix(matrix, ["AnnualCrop", "Forest", "HerbaceousVegetation"], tmp_path / "sub" / "cm.png")
    assert out == tmp_path / "sub" / "cm.png"
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.width >= 400 and image.height >= 400
        pixels = np.asarray(image.convert("RGB")).astype(int)
    # The darkest blue cell exists (row 0 holds 5/6): some strongly blue pixels are drawn.
    blue = (pixels[..., 2] > 100) & (pixels[..., 0] < 60)
    assert blue.sum() > 500


def test_confusion_matrix_counts_mode_and_empty_rows(tmp_path):
    matrix = np.array([[0, 0], [4, 1]])  # an empty true row must not divide by zero
    out = plot_confusion_matrix(matrix, ["a", "b"], tmp_path / "cm.png", normalize=False, title="counts")
    assert Image.open(out).size[0] > 0


@pytest.mark.parametrize(
    ("matrix", "names", "message"),
    [
        (np.zeros((2, 3)), ["a", "b"], "square"),
        (np.zeros((2, 2)), ["a", "b", "c"], "3 class names"),
        (-np.ones((2, 2)), ["a", "b"], "negative"),
    ],
)
def test_confusion_matrix_errors(tmp_path, matrix, names, message):
    with pytest.raises(ValueError, match=message):
        plot_confusion_matrix(matrix, names, tmp_path / "cm.png")


def test_confusion_matrix_requires_png_suffix(tmp_path):
    with pytest.raises(ValueError, match=".png"):
        plot_confusion_matrix(np.eye(2), ["a", "b"], tmp_path / "cm.jpg")


def test_retrieval_grid_layout_and_borders(tmp_path):
    images = [[_solid((0, 0, 255)), _solid((0, 0, 250))], [_solid((255, 255, 0))], [_solid((0, 0, 0))] * 3]
    correct = [[True, False], [False], [True, True, True]]
    out = retrieval_grid(
        ["solar farm", "river", "a very long query " * 5], images, tmp_path / "grid.png", correct=correct, thumb_size=64
    )
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    out_one = retrieval_grid(["solar farm"], images[:1], tmp_path / "one.png", correct=correct[:1], thumb_size=64)
    one = np.asarray(Image.open(out_one).convert("RGB"))
    out_two = retrieval_grid(
        ["solar farm", "river"], images[:2], tmp_path / "two.png", correct=correct[:2], thumb_size=64
    )
    two = np.asarray(Image.open(out_two).convert("RGB"))
    row_height = two.shape[0] - one.shape[0]
    assert row_height >= 64
    assert image.shape[0] == one.shape[0] + 2 * row_height  # one band per query
    assert image.shape[1] > two.shape[1]  # the widest row (3 images) sets the width

    def is_colour(pixels, colour):
        return (np.abs(pixels - np.array(colour)) <= 2).all(axis=-1)

    # In each row, scanning left to right the border colours appear in rank order.
    tops = [np.argmax(is_colour(image, CORRECT_COLOR).any(axis=1) | is_colour(image, INCORRECT_COLOR).any(axis=1))]
    line = image[tops[0] + 1]
    green = np.flatnonzero(is_colour(line, CORRECT_COLOR))
    red = np.flatnonzero(is_colour(line, INCORRECT_COLOR))
    assert green.size and red.size and green.max() < red.min()
    # Row 2 (three correct images) has green and no red; row 1 (one wrong image) has red and no green.
    band = lambda r: image[tops[0] + r * row_height : tops[0] + (r + 1) * row_height - 4]  # noqa: E731
    assert is_colour(band(1), INCORRECT_COLOR).any() and not is_colour(band(1), CORRECT_COLOR).any()
    assert is_colour(band(2), CORRECT_COLOR).any() and not is_colour(band(2), INCORRECT_COLOR).any()
    # The thumbnails themselves are pasted: the yellow image of row 1 is visible inside its band.
    assert is_colour(band(1), (255, 255, 0)).sum() > 64 * 40


def test_retrieval_grid_captions_without_correct(tmp_path):
    images = [[_solid((10, 200, 10), (64, 64)), _solid((10, 10, 200), (20, 80))]]
    plain = retrieval_grid(["q"], images, tmp_path / "plain.png", thumb_size=48)
    captioned = retrieval_grid(["q"], images, tmp_path / "cap.png", captions=[["47.10, 8.20", "Forest"]], thumb_size=48)
    plain_px, cap_px = np.asarray(Image.open(plain)), np.asarray(Image.open(captioned))
    assert cap_px.shape[0] > plain_px.shape[0]  # room for captions under the thumbnails
    assert not (np.abs(plain_px.astype(int) - np.array(CORRECT_COLOR)) <= 2).all(axis=-1).any()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"queries": ["a", "b"]}, "2 queries but 1 rows"),
        ({"captions": [["x"]]}, r"captions\[0\] has 1 entries but images\[0\] has 2"),
        ({"correct": [[True, False], [True]]}, "correct has 2 rows"),
        ({"queries": [], "images": []}, "at least one query"),
    ],
)
def test_retrieval_grid_errors(tmp_path, kwargs, message):
    args = {"queries": ["a"], "images": [[_solid((0, 0, 0)), _solid((1, 1, 1))]]} | kwargs
    with pytest.raises(ValueError, match=message):
        retrieval_grid(
            args["queries"],
            args["images"],
            tmp_path / "g.png",
            captions=args.get("captions"),
            correct=args.get("correct"),
        )
