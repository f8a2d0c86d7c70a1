"""Decoding the images of evaluation datasets and indexed archives with bounded memory.

A dataset's image column is read undecoded (``datasets.Image(decode=False)``: the file bytes or path), each
image's header is checked against a pixel limit (the image processor's ``MAX_IMAGE_PIXELS``, 4096 x 4096) and
only then decoded, the way ``datasets`` decodes it (``load``, EXIF orientation, the feature's mode). An image over
the limit, a decompression bomb or an undecodable file is an :class:`ImageReadError` naming the row and the file,
instead of gigabytes allocated or a traceback.
"""

from __future__ import annotations

import io
import os
from typing import Any

from datasets import Dataset as HFDataset
from datasets import Image as ImageFeature
from PIL import Image, ImageOps, UnidentifiedImageError

from graft_hf.modeling.image_processing_graft import MAX_IMAGE_PIXELS

__all__ = ["ImageReadError", "check_image_size", "decode_image", "read_image_rows"]


class ImageReadError(ValueError):
    """An image cannot be read within the limits; the message names it and the reason."""


def check_image_size(name: str, width: int, height: int, max_pixels: int | None = MAX_IMAGE_PIXELS) -> None:
    """Refuse an image larger than ``max_pixels`` (width x height) before it is decoded.

    Raises:
        ImageReadError: naming the image, its size and the limit.
    """
    if max_pixels is not None and width * height > max_pixels:
        raise ImageReadError(
            f"{name} is {width} x {height} = {width * height:,} pixels, over the limit of {max_pixels:,} pixels per "
            "image (each image is resized into one model input); crop or downsample it, or tile large scenes with "
            "graft_hf.tasks.run_region_map"
        )


def decode_image(
    value: dict[str, Any], feature: ImageFeature, name: str, max_pixels: int | None = MAX_IMAGE_PIXELS
) -> Image.Image:
    """One undecoded ``datasets`` image (``{"bytes": ..., "path": ...}``) decoded after its header is checked.

    Args:
        value: The undecoded cell.
        feature: The column's image feature (its ``mode`` is applied as ``datasets`` would).
        name: How errors name the image (``"row 12 (photo.png)"``).
        max_pixels: Largest image accepted.

    Raises:
        ImageReadError: Too large, a decompression bomb, or not decodable.
    """
    data, path = value.get("bytes"), value.get("path")
    if data is None and path is not None and not os.path.exists(path):
        return _decode_remote(value, feature, name)  # fetched by datasets; Pillow's bomb check still applies
    try:
        image = Image.open(io.BytesIO(data) if data is not None else path)  # the header only
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as error:
        raise ImageReadError(f"cannot decode {name}: {type(error).__name__}: {error}") from error
    try:
        check_image_size(name, image.width, image.height, max_pixels)
        image.load()
    except (OSError, SyntaxError, MemoryError) as error:
        image.close()
        raise ImageReadError(f"cannot decode {name}: {type(error).__name__}: {error}") from error
    except ImageReadError:
        image.close()
        raise
    return _as_datasets_decodes(image, feature)


def _decode_remote(value: dict[str, Any], feature: ImageFeature, name: str) -> Image.Image:
    try:
        return ImageFeature(mode=feature.mode).decode_example(value)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, MemoryError) as error:
        raise ImageReadError(f"cannot decode {name}: {type(error).__name__}: {error}") from error


def _as_datasets_decodes(image: Image.Image, feature: ImageFeature) -> Image.Image:
    """EXIF orientation and the feature's mode, as ``datasets.Image.decode_example`` applies them."""
    if image.getexif().get(Image.ExifTags.Base.Orientation) is not None:
        image = ImageOps.exif_transpose(image)
    if feature.mode and feature.mode != image.mode:
        image = image.convert(feature.mode)
    return image


def read_image_rows(
    dataset: HFDataset, column: str, start: int, stop: int, max_pixels: int | None = MAX_IMAGE_PIXELS
) -> list[Any]:
    """Rows ``start:stop`` of an image column, each checked before it is decoded (other columns as stored).

    Args:
        dataset: The dataset (its image column decoded or not).
        column: The image column.
        start: First row.
        stop: Row after the last.
        max_pixels: Largest image accepted.

    Raises:
        ImageReadError: naming the first row (and file) that cannot be read.
    """
    feature = dataset.features[column]
    if not isinstance(feature, ImageFeature):
        return dataset[start:stop][column]
    raw = dataset.select_columns([column]).cast_column(column, ImageFeature(decode=False, mode=feature.mode))
    values = raw[start:stop][column]
    return [
        decode_image(value, feature, _row_name(start + offset, value), max_pixels)
        for offset, value in enumerate(values)
    ]


def _row_name(row: int, value: dict[str, Any]) -> str:
    path = value.get("path")
    return f"image row {row}" + (f" ({path})" if path else "")
