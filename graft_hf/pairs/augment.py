"""Rotated, translated views of a satellite crop that never leave the crop, with the photo locations moved along.

The pair shards store a ``448 x 448`` crop per tile; the student sees a ``224 x 224`` view of it at native
resolution. For training the view is rotated by any angle about its own centre and translated anywhere the
rotated square still lies completely inside the crop, so no pixel of the view is padding. For evaluation the
view is the axis-aligned centre ``224 x 224``.

Geometry. Points are written ``(row, col)`` in continuous pixel coordinates: ``(0, 0)`` is the top-left corner
of the top-left pixel and pixel centres sit at ``+0.5`` (the shard convention). A view is a centre ``c`` in crop
coordinates and an angle ``theta``; the view point ``v`` maps to the crop point

    p = c + R(theta) (v - s / 2),        R(theta) = [[cos, -sin], [sin, cos]] acting on (row, col),

where ``s`` is the view size. The rotated square's half extent along each crop axis is
``s / 2 (|cos theta| + |sin theta|)``, so ``c`` may range over ``[h, S - h]`` on each axis (``S`` the crop size):
the translation range follows from the angle. Keeping the square's corners inside the crop keeps every view
pixel centre at least half a pixel inside it, so bilinear sampling only ever reads real crop pixels.

Two implementations of the same geometry: per sample (:func:`extract_view_pil` on 8-bit images in DataLoader
workers, :func:`view_points` in numpy) and per batch on the training device (:func:`render_views`: one
``affine_grid``/``grid_sample`` for the whole batch, normalisation fused, photo positions moved by the same
matrices). The batched path reads a view as :func:`view_vector` ``(center_row, center_col, cos, sin)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = [
    "ViewParams",
    "center_view",
    "extract_view",
    "extract_view_pil",
    "random_view",
    "render_views",
    "view_corners",
    "view_half_extent",
    "view_points",
    "view_points_batched",
    "view_vector",
]


@dataclass(frozen=True)
class ViewParams:
    """One view of a crop.

    Attributes:
        center_row: Row of the view centre in crop coordinates.
        center_col: Column of the view centre in crop coordinates.
        angle: Rotation of the view about its centre, in degrees.
        size: Side of the (square) view in pixels.
    """

    center_row: float
    center_col: float
    angle: float
    size: int


def view_half_extent(size: int, angle: float) -> float:
    """Half the extent, along a crop axis, of a ``size`` square rotated by ``angle`` degrees.

    Args:
        size: Side of the view in pixels.
        angle: Rotation in degrees.

    Returns:
        ``size / 2 * (|cos| + |sin|)``.
    """
    cos, sin = _rotation(angle)
    return size / 2 * (abs(cos) + abs(sin))


def center_view(crop_height: int, crop_width: int, size: int = 224) -> ViewParams:
    """The evaluation view: no rotation, centred in the crop.

    Args:
        crop_height: Crop height in pixels.
        crop_width: Crop width in pixels.
        size: View side in pixels.

    Returns:
        The view parameters.
    """
    if size > min(crop_height, crop_width):
        raise ValueError(f"view size {size} does not fit in a {crop_height}x{crop_width} crop; lower the view size")
    return ViewParams(crop_height / 2, crop_width / 2, 0.0, size)


def random_view(
    rng: np.random.Generator,
    crop_height: int,
    crop_width: int,
    size: int = 224,
    rotate: bool = True,
    translate: bool = True,
    right_angles: bool = False,
) -> ViewParams:
    """Draw a view uniformly over angles and over every centre that keeps the rotated view inside the crop.

    Args:
        rng: Source of randomness (seed it for reproducible views).
        crop_height: Crop height in pixels.
        crop_width: Crop width in pixels.
        size: View side in pixels.
        rotate: Draw the angle uniformly in ``[0, 360)``; otherwise 0.
        translate: Draw the centre uniformly over its valid range; otherwise the crop centre.
        right_angles: With ``rotate``, draw the angle from 0, 90, 180, 270 only: the view stays axis-aligned, so
            a view as large as the crop fits (small tiles such as EuroSAT's 64 px ones).

    Returns:
        The view parameters.

    Raises:
        ValueError: If even an unrotated view does not fit in the crop.
    """
    center_view(crop_height, crop_width, size)  # validates the size
    if rotate and right_angles:
        angle = 90.0 * int(rng.integers(4))
    elif rotate:
        angle = float(rng.uniform(0.0, 360.0))
    else:
        angle = 0.0
    half = view_half_extent(size, angle)
    if half > min(crop_height, crop_width) / 2:
        # A rotated view can need up to size * sqrt(2) of crop.
        raise ValueError(
            f"a {size} px view rotated by {angle:.1f} degrees needs a {2 * half:.0f} px crop, got "
            f"{crop_height}x{crop_width}; build crops of at least {math.ceil(size * math.sqrt(2))} px or disable rotation"
        )
    # A hair of slack so float rounding never puts a corner outside the crop.
    eps = 1e-6 * size
    row, col = crop_height / 2, crop_width / 2
    if translate and right_angles and rotate:
        # Axis-aligned: whole-pixel offsets keep the view an exact crop.
        row = half + int(rng.integers(int(crop_height - 2 * half) + 1))
        col = half + int(rng.integers(int(crop_width - 2 * half) + 1))
    elif translate:
        if crop_height - 2 * half > 2 * eps:
            row = float(rng.uniform(half + eps, crop_height - half - eps))
        if crop_width - 2 * half > 2 * eps:
            col = float(rng.uniform(half + eps, crop_width - half - eps))
    return ViewParams(row, col, angle, size)


_RIGHT_ANGLES = {0: (1.0, 0.0), 90: (0.0, 1.0), 180: (-1.0, 0.0), 270: (0.0, -1.0)}


def _rotation(angle: float) -> tuple[float, float]:
    """``(cos, sin)`` of ``angle`` degrees, exact for multiples of 90 (so right-angle views stay pixel-aligned)."""
    if float(angle).is_integer() and int(angle) % 90 == 0:
        return _RIGHT_ANGLES[int(angle) % 360]
    theta = math.radians(angle)
    return math.cos(theta), math.sin(theta)


def view_corners(view: ViewParams) -> np.ndarray:
    """Crop coordinates of the view's four corners.

    Args:
        view: The view.

    Returns:
        Array of shape ``(4, 2)`` with ``(row, col)`` per corner.
    """
    half = view.size / 2
    local = np.array([[-half, -half], [-half, half], [half, half], [half, -half]])
    cos, sin = _rotation(view.angle)
    rot = np.array([[cos, -sin], [sin, cos]])
    return local @ rot.T + np.array([view.center_row, view.center_col])


def view_points(points: np.ndarray, view: ViewParams) -> tuple[np.ndarray, np.ndarray]:
    """Map crop points into the view's pixel coordinates.

    Args:
        points: Array of shape ``(num_points, 2)``: ``(row, col)`` in crop coordinates.
        view: The view.

    Returns:
        ``(view_points, in_view)``: array of shape ``(num_points, 2)`` with ``(row, col)`` in view coordinates,
        and a bool array of shape ``(num_points,)`` that is true where the point lies inside the view
        (``0 <= row, col < size``).
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    cos, sin = _rotation(view.angle)
    rel = points - np.array([view.center_row, view.center_col])
    # Inverse rotation R(-theta) = R(theta)^T.
    rot_inv = np.array([[cos, sin], [-sin, cos]])
    local = rel @ rot_inv.T + view.size / 2
    in_view = np.all((local >= 0) & (local < view.size), axis=1)
    return local, in_view


def extract_view(image: torch.Tensor, view: ViewParams) -> torch.Tensor:
    """Resample a view of ``image`` at native resolution with bilinear interpolation.

    Args:
        image: Tensor of shape ``(channels, height, width)``, floating point.
        view: The view; it must lie inside the image (as :func:`random_view` guarantees).

    Returns:
        Tensor of shape ``(channels, size, size)``.
    """
    if not image.is_floating_point():
        raise TypeError(f"extract_view needs a floating point image, got {image.dtype}; convert it first")
    channels, height, width = image.shape
    size = view.size
    if (
        view.angle == 0.0
        and float(view.center_row - size / 2).is_integer()
        and float(view.center_col - size / 2).is_integer()
    ):
        # Axis-aligned, pixel-aligned: an exact slice (the evaluation view).
        top, left = int(view.center_row - size / 2), int(view.center_col - size / 2)
        if top >= 0 and left >= 0 and top + size <= height and left + size <= width:
            return image[:, top : top + size, left : left + size].clone()
    centres = torch.arange(size, dtype=torch.float64) + 0.5
    grid_r, grid_c = torch.meshgrid(centres, centres, indexing="ij")  # (size, size) view pixel centres
    local = torch.stack([grid_r.reshape(-1), grid_c.reshape(-1)], dim=1).numpy()
    cos, sin = _rotation(view.angle)
    rel = local - size / 2
    crop = rel @ np.array([[cos, -sin], [sin, cos]]).T + np.array([view.center_row, view.center_col])
    # grid_sample with align_corners=False: -1 and +1 are the outer edges of the border pixels.
    norm_r = crop[:, 0] / height * 2 - 1
    norm_c = crop[:, 1] / width * 2 - 1
    grid = torch.from_numpy(np.stack([norm_c, norm_r], axis=1)).to(image.dtype).reshape(1, size, size, 2)
    # Zero padding on purpose: a view that strayed outside the crop would show up as dark pixels in tests.
    out = F.grid_sample(image.unsqueeze(0), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[0]


# Output pixel (x, y) reads input (cos x + sin y, -sin x + cos y) about the centre: a view rotated by 90 degrees
# shows the crop turned clockwise, PIL's (counter-clockwise) ROTATE_270.
_PIL_ROTATIONS = {
    (0.0, 1.0): Image.Transpose.ROTATE_270,
    (-1.0, 0.0): Image.Transpose.ROTATE_180,
    (0.0, -1.0): Image.Transpose.ROTATE_90,
}


def extract_view_pil(image: Image.Image, view: ViewParams) -> Image.Image:
    """Same view as :func:`extract_view`, resampled by PIL on 8-bit images (the loader's fast path).

    PIL's affine transform maps each output pixel centre ``(x + 0.5, y + 0.5)`` to an input point and samples it
    bilinearly with pixel centres at ``+0.5``: the shard convention, so the view matches :func:`extract_view` up
    to 8-bit rounding. It works on uint8 directly and runs single-threaded in C, which keeps DataLoader workers
    cheap.

    Args:
        image: The crop (any PIL mode; RGB in the loader).
        view: The view; it must lie inside the image (as :func:`random_view` guarantees).

    Returns:
        The ``size x size`` view, same mode as ``image``.
    """
    size = view.size
    half = size / 2
    cos, sin = _rotation(view.angle)
    top, left = view.center_row - half, view.center_col - half
    if cos * sin == 0.0 and float(top).is_integer() and float(left).is_integer() and top >= 0 and left >= 0:
        if top + size <= image.height and left + size <= image.width:
            # Pixel-aligned right-angle view: an exact crop (plus an exact transpose when rotated).
            crop = image.crop((int(left), int(top), int(left) + size, int(top) + size))
            return crop if cos == 1.0 else crop.transpose(_PIL_ROTATIONS[(cos, sin)])
    # Output (x, y) = view (col, row); input (col, row) = centre + R(theta) (view - size / 2), see module docstring.
    data = (
        cos,
        sin,
        view.center_col - half * (cos + sin),
        -sin,
        cos,
        view.center_row - half * (cos - sin),
    )
    return image.transform((size, size), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)


# ------------------------------------------------------------------------------- the batched path (any device)
def view_vector(view: ViewParams) -> np.ndarray:
    """A view as the batched path reads it: ``(center_row, center_col, cos, sin)``, float64.

    ``cos`` and ``sin`` are exact for right angles (as in the per-sample path), so axis-aligned views stay exact.
    """
    cos, sin = _rotation(view.angle)
    return np.array([view.center_row, view.center_col, cos, sin], dtype=np.float64)


def _affine_theta(views: torch.Tensor, crop_height: int, crop_width: int, size: int) -> torch.Tensor:
    """``affine_grid`` matrices ``(batch, 2, 3)``: normalised view ``(x, y)`` to normalised crop ``(x, y)``.

    With ``align_corners=False`` a normalised coordinate ``u`` of an ``n``-pixel axis is the pixel coordinate
    ``(u + 1) n / 2``. The view point ``(dr, dc) = (y, x) s / 2`` about the view centre maps to the crop point
    ``c + R (dr, dc)`` (module docstring), i.e. ``col = cc + sin dr + cos dc`` and ``row = cr + cos dr - sin dc``.
    """
    row, col, cos, sin = views.unbind(-1)  # each (batch,)
    sx, sy = size / crop_width, size / crop_height
    theta = torch.stack(
        [
            torch.stack([cos * sx, sin * sx, 2 * col / crop_width - 1], dim=-1),
            torch.stack([-sin * sy, cos * sy, 2 * row / crop_height - 1], dim=-1),
        ],
        dim=1,
    )  # (batch, 2, 3)
    return theta


def render_views(
    crops: torch.Tensor,
    views: torch.Tensor,
    size: int,
    mean: tuple[float, float, float] | torch.Tensor,
    std: tuple[float, float, float] | torch.Tensor,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Resample and normalise the views of a batch of 8-bit crops in one ``grid_sample`` (the training step's path).

    The same views as :func:`extract_view_pil` per sample, without its rounding to 8 bits after resampling: equal
    within interpolation tolerance (exact for pixel-aligned right-angle views). Runs wherever ``crops`` lives.

    Args:
        crops: Decoded crops, uint8, shape ``(batch, height, width, 3)`` (as decoded) or ``(batch, 3, height,
            width)``.
        views: Shape ``(batch, 4)``: :func:`view_vector` of each sample's view.
        size: View side in pixels.
        mean: Per-channel mean of the ``[0, 1]`` pixels.
        std: Per-channel standard deviation.
        dtype: Floating dtype of the resampling and the output.

    Returns:
        Normalised pixel values of shape ``(batch, 3, size, size)``.
    """
    if crops.ndim != 4:
        raise ValueError(
            f"crops must have shape (batch, height, width, 3) or (batch, 3, height, width), got {tuple(crops.shape)}"
        )
    if crops.shape[-1] == 3 and crops.shape[1] != 3:
        crops = crops.permute(0, 3, 1, 2)  # (batch, 3, height, width), a view
    batch, _, height, width = crops.shape
    pixels = crops.to(dtype)  # (batch, 3, height, width) in [0, 255]
    theta = _affine_theta(views.to(device=crops.device, dtype=torch.float64), height, width, size).to(dtype)
    grid = F.affine_grid(theta, [batch, 3, size, size], align_corners=False)  # (batch, size, size, 2)
    out = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    mean_t = torch.as_tensor(mean, dtype=dtype, device=crops.device).view(1, 3, 1, 1)
    std_t = torch.as_tensor(std, dtype=dtype, device=crops.device).view(1, 3, 1, 1)
    # (x / 255 - mean) / std as one multiply-add on the (smaller) views.
    return out.mul_(1.0 / (255.0 * std_t)).sub_(mean_t / std_t)


def view_points_batched(points: torch.Tensor, views: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`view_points` for a batch: crop points into each sample's view, by the views' rotation matrices.

    Args:
        points: Crop ``(row, col)`` of shape ``(batch, num_points, 2)``.
        views: Shape ``(batch, 4)``: :func:`view_vector` of each sample's view.
        size: View side in pixels.

    Returns:
        ``(view_points (batch, num_points, 2) float32, in_view (batch, num_points) bool)``.
    """
    views = views.to(device=points.device, dtype=torch.float64)
    rel = points.to(torch.float64) - views[:, None, :2]  # (batch, num_points, 2)
    cos, sin = views[:, None, 2], views[:, None, 3]  # (batch, 1)
    # Inverse rotation R(-theta) = R(theta)^T.
    local = torch.stack([cos * rel[..., 0] + sin * rel[..., 1], -sin * rel[..., 0] + cos * rel[..., 1]], dim=-1)
    local = local + size / 2
    in_view = ((local >= 0) & (local < size)).all(dim=-1)
    return local.to(torch.float32), in_view
