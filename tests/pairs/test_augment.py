"""Rotated/translated 224 views of a 448 crop: ground points follow, nothing outside the crop is sampled."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from graft_hf.pairs.augment import (
    ViewParams,
    center_view,
    extract_view,
    extract_view_pil,
    random_view,
    view_corners,
    view_half_extent,
    view_points,
)

CROP = 448
VIEW = 224


def _marked_crop(points: np.ndarray, colours: np.ndarray, radius: int = 4) -> torch.Tensor:
    """A grey crop with a solid square of a unique colour centred on each point."""
    crop = torch.full((3, CROP, CROP), 0.5)
    for (row, col), colour in zip(points, colours, strict=True):
        r, c = int(row), int(col)
        crop[:, r - radius : r + radius + 1, c - radius : c + radius + 1] = torch.tensor(colour).view(3, 1, 1)
    return crop


def _points_and_colours(rng: np.random.Generator, count: int = 40) -> tuple[np.ndarray, np.ndarray]:
    points = rng.uniform(20, CROP - 20, size=(count, 2))
    colours = rng.uniform(0.0, 1.0, size=(count, 3))
    colours[:, 0] = np.linspace(0.0, 1.0, count)  # distinct in at least one channel
    return points, colours


@pytest.mark.parametrize("angle", [0.0, 90.0, 37.0, 180.0, 301.5])
def test_photo_location_stays_on_its_mark(angle: float) -> None:
    rng = np.random.default_rng(int(angle * 10))
    points, colours = _points_and_colours(rng)
    crop = _marked_crop(points, colours)
    half = view_half_extent(VIEW, angle)
    view = ViewParams(float(rng.uniform(half, CROP - half)), float(rng.uniform(half, CROP - half)), angle, VIEW)
    pixels = extract_view(crop, view)
    coords, in_view = view_points(points, view)
    # Keep marks whose 3x3 neighbourhood in the view is away from any other mark (blobs may overlap).
    checked = 0
    for (row, col), inside, colour, point in zip(coords, in_view, colours, points, strict=True):
        if not inside or min(row, col) < 1 or max(row, col) > VIEW - 1:
            continue
        others = np.delete(points, np.where((points == point).all(axis=1))[0], axis=0)
        if np.min(np.abs(others - point).max(axis=1)) < 12:
            continue
        value = pixels[:, int(row), int(col)].numpy()
        np.testing.assert_allclose(value, colour, atol=1e-4, err_msg=f"mark at crop {point} lost at angle {angle}")
        checked += 1
    assert checked >= 3, "too few marks landed in the view to test anything"
    # Points outside the view really are outside: the inverse mapping of an out-of-view point leaves [0, 224).
    assert (~in_view).any()


def test_random_views_keep_marks_over_many_draws() -> None:
    rng = np.random.default_rng(0)
    points, colours = _points_and_colours(rng, count=12)
    points = np.array([[60.0 + 30 * i, 60.0 + 27 * (i % 11)] for i in range(12)]) + 0.5
    crop = _marked_crop(points, colours, radius=3)
    for _ in range(20):
        view = random_view(rng, CROP, CROP, VIEW)
        pixels = extract_view(crop, view)
        coords, in_view = view_points(points, view)
        for (row, col), inside, colour in zip(coords, in_view, colours, strict=True):
            if inside:
                np.testing.assert_allclose(pixels[:, int(row), int(col)].numpy(), colour, atol=1e-4)


def test_view_never_samples_outside_the_crop() -> None:
    rng = np.random.default_rng(1)
    angles = []
    for _ in range(500):
        view = random_view(rng, CROP, CROP, VIEW)
        angles.append(view.angle)
        corners = view_corners(view)
        assert (corners >= 0).all() and (corners <= CROP).all(), f"corner outside the crop: {corners}"
    assert np.ptp(angles) > 300, "angles should cover the whole circle"
    crop = torch.full((3, CROP, CROP), 0.7)
    for _ in range(25):
        view = random_view(rng, CROP, CROP, VIEW)
        # grid_sample pads with zeros: any sample outside the crop would pull a value below 0.7.
        assert torch.all(extract_view(crop, view) > 0.7 - 1e-5), f"view {view} sampled outside the crop"


def test_translation_range_follows_the_angle() -> None:
    rng = np.random.default_rng(2)
    unrotated = [random_view(rng, CROP, CROP, VIEW, rotate=False).center_row for _ in range(400)]
    # Unrotated views use the whole range [112, 336].
    assert min(unrotated) < 115 and max(unrotated) > 333
    slack = []
    for _ in range(400):
        view = random_view(rng, CROP, CROP, VIEW)
        half = view_half_extent(VIEW, view.angle)
        assert half <= view.center_row <= CROP - half and half <= view.center_col <= CROP - half
        slack.append(min(view.center_row - half, CROP - half - view.center_row))
    # The draws reach the edge of each angle's range: translation is not needlessly limited.
    assert min(slack) < 2.0
    assert view_half_extent(VIEW, 45.0) == pytest.approx(112 * np.sqrt(2))


def test_ninety_degrees_is_an_exact_pixel_rotation() -> None:
    crop = torch.rand(3, CROP, CROP, generator=torch.Generator().manual_seed(0))
    view = ViewParams(224.0, 200.0, 90.0, VIEW)
    expected = torch.rot90(crop[:, 112:336, 88:312], k=-1, dims=(1, 2))
    # float32 sampling grid: exact up to rounding of the coordinates.
    torch.testing.assert_close(extract_view(crop, view), expected, atol=1e-4, rtol=0)


def test_center_view_is_the_centre_slice_and_keeps_points() -> None:
    crop = torch.rand(3, CROP, CROP, generator=torch.Generator().manual_seed(1))
    view = center_view(CROP, CROP, VIEW)
    torch.testing.assert_close(extract_view(crop, view), crop[:, 112:336, 112:336])
    coords, in_view = view_points(np.array([[224.0, 224.0], [112.0, 335.9], [100.0, 200.0]]), view)
    np.testing.assert_allclose(coords[:2], [[112.0, 112.0], [0.0, 223.9]], atol=1e-9)
    assert in_view.tolist() == [True, True, False]


def test_too_small_crop_names_the_fix() -> None:
    with pytest.raises(ValueError, match="crop"):
        center_view(200, 200, VIEW)
    with pytest.raises(ValueError, match="disable rotation"):
        for seed in range(50):  # some angle needs more than 240 px
            random_view(np.random.default_rng(seed), 240, 240, VIEW)


def test_pil_view_matches_the_float_reference() -> None:
    rng = np.random.default_rng(3)
    array = rng.integers(0, 256, size=(CROP, CROP, 3), dtype=np.uint8)
    image, tensor = Image.fromarray(array), torch.from_numpy(array).permute(2, 0, 1).float()
    views = [random_view(rng, CROP, CROP, VIEW) for _ in range(6)] + [center_view(CROP, CROP, VIEW)]
    views.append(ViewParams(224.0, 200.0, 90.0, VIEW))
    for view in views:
        fast = np.asarray(extract_view_pil(image, view), dtype=np.float32)
        reference = extract_view(tensor, view).permute(1, 2, 0).numpy()
        # PIL works in 8 bits: within one grey level of the float64-grid reference everywhere.
        assert np.abs(fast - reference).max() <= 1.01, view


def test_pil_view_never_samples_outside_the_crop() -> None:
    rng = np.random.default_rng(4)
    image = Image.fromarray(np.full((CROP, CROP, 3), 180, dtype=np.uint8))
    for _ in range(200):
        view = random_view(rng, CROP, CROP, VIEW)
        # PIL fills samples outside the image with 0.
        assert np.asarray(extract_view_pil(image, view)).min() == 180, view
