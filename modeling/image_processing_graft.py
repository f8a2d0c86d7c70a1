"""Satellite image processor of GRAFT models.

Turns satellite imagery into the `pixel_values` a GRAFT ViT expects: pick the sensor's red, green and blue bands,
scale raw values (uint8 NAIP, uint16 Sentinel-2 reflectance, ...) to [0, 1], resize to 224 x 224 *without* centre
crop (a satellite tile has no "centre object"; cropping would drop ground that photos were matched to), and apply
CLIP's normalisation, as in the authors' release.

Accepted inputs: PIL images, numpy arrays and torch tensors in HWC or CHW layout (a leading batch dimension is
allowed), and paths to GeoTIFFs (read with rasterio) or ordinary image files. This file is uploaded to the Hub as
remote code: it imports torch and transformers only (rasterio and PIL are imported when a path or PIL image needs
them).

Files are checked from their header before a pixel is decoded: at most `max_image_pixels` pixels (width x height,
default `MAX_IMAGE_PIXELS` = 4096 x 4096; the whole image becomes one model input, so larger scenes belong to a
tiling tool such as graft-hf's region map), a band count the sensor reads (all of its bands, or 3 RGB bands) and a
supported data type. Of a raster only the red, green and blue bands are read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from .configuration_graft import SENSORS

_RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")
_SUPPORTED_DTYPES = (np.uint8, np.uint16, np.int16, np.uint32, np.int32, np.float16, np.float32, np.float64)
#: Pixel types (numpy / rasterio names) the processor reads.
SUPPORTED_DTYPE_NAMES = tuple(np.dtype(t).name for t in _SUPPORTED_DTYPES)

#: Largest image file (width x height) read from a path by default: 4096 x 4096 pixels. A file is one model input,
#: resized as a whole; a larger scene needs tiling, not one huge read.
MAX_IMAGE_PIXELS = 4096 * 4096


class GraftImageProcessor(BaseImageProcessor):
    r"""Prepare satellite images for a [`GraftModel`].

    Args:
        size: Output side in pixels (images are resized to `size x size`; no centre crop).
        do_resize: Resize to `size`. Without it all images of a batch must share one size.
        do_normalize: Apply CLIP mean/std normalisation.
        image_mean: Per-channel mean (CLIP's by default).
        image_std: Per-channel standard deviation (CLIP's by default).
        sensor: Sensor preset (`naip`, `sentinel2`, `sentinel2-l1c`, `rgb`) filling the fields below.
        band_names: Names of the bands in input order.
        rgb_bands: Indices of red, green and blue in `band_names`.
        value_scale: Raw value (after the offset) mapped to 1.0; larger values are clipped.
        value_offset: Subtracted from raw values before scaling.
        nodata_value: Raw value marking missing pixels (all bands equal to it); such pixels become 0.
        max_image_pixels: Largest image file read from a path, in pixels (width x height); `None` for no limit.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        size: int = 224,
        do_resize: bool = True,
        do_normalize: bool = True,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        sensor: str = "naip",
        band_names: Sequence[str] | None = None,
        rgb_bands: Sequence[int] | None = None,
        value_scale: float | None = None,
        value_offset: float | None = None,
        nodata_value: float | None = None,
        max_image_pixels: int | None = MAX_IMAGE_PIXELS,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("image_processor_type", None)
        super().__init__(**kwargs)
        if isinstance(size, dict):  # {"height": h, "width": w} / {"shortest_edge": s} from other processors
            size = size.get("height", size.get("shortest_edge"))
        preset = SENSORS[sensor].preset() if sensor in SENSORS else {}
        self.size = int(size)
        self.do_resize = bool(do_resize)
        self.do_normalize = bool(do_normalize)
        self.image_mean = list(image_mean) if image_mean is not None else list(OPENAI_CLIP_MEAN)
        self.image_std = list(image_std) if image_std is not None else list(OPENAI_CLIP_STD)
        self.sensor = sensor
        self.band_names = list(band_names) if band_names is not None else list(preset.get("band_names") or [])
        self.rgb_bands = list(rgb_bands) if rgb_bands is not None else list(preset.get("rgb_bands") or [])
        self.value_scale = float(value_scale) if value_scale is not None else preset.get("value_scale")
        self.value_offset = float(value_offset) if value_offset is not None else float(preset.get("value_offset", 0.0))
        self.nodata_value = nodata_value if nodata_value is not None else preset.get("nodata_value")
        self.max_image_pixels = int(max_image_pixels) if max_image_pixels is not None else None
        if not self.band_names or len(self.rgb_bands) != 3 or not self.value_scale:
            raise ValueError(
                f"sensor {sensor!r} has no preset (registered sensors: {sorted(SENSORS)}); pass band_names, rgb_bands "
                "(3 indices) and value_scale"
            )
        if self.size <= 0:
            raise ValueError(f"size must be a positive number of pixels, got {self.size}")

    @classmethod
    def from_graft_config(cls, config: Any, **kwargs: Any) -> GraftImageProcessor:
        """The processor matching a [`GraftConfig`]'s sensor metadata and input size."""
        return cls(
            size=config.vision_config.image_size,
            sensor=config.sensor,
            band_names=config.band_names,
            rgb_bands=config.rgb_bands,
            value_scale=config.value_scale,
            value_offset=config.value_offset,
            nodata_value=config.nodata_value,
            **kwargs,
        )

    # ---------------------------------------------------------------------------------------------- reading
    def _read(self, image: Any, data_format: str | None) -> list[np.ndarray]:
        """One input (possibly a batch) as a list of `(bands, height, width)` arrays."""
        if isinstance(image, (str, os.PathLike)):
            return [self._read_path(os.fspath(image))]
        if type(image).__module__.startswith("PIL."):
            array = np.asarray(image.convert("RGB") if image.mode in ("RGBA", "P", "CMYK", "YCbCr") else image)
            return [array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)]
        is_torch = isinstance(image, torch.Tensor)
        if is_torch:
            if image.dtype == torch.bfloat16:
                image = image.float()
            array = image.detach().cpu().numpy()
        elif isinstance(image, np.ndarray):
            array = image
        else:
            raise TypeError(
                f"unsupported image type {type(image).__name__}; pass a PIL image, a numpy array, a torch tensor or "
                "a path to a GeoTIFF/image file"
            )
        if array.size == 0:
            raise ValueError(f"empty image array of shape {array.shape}; check the raster window or crop")
        if array.ndim == 4:
            return [self._to_chw(a, data_format, is_torch) for a in array]
        return [self._to_chw(array, data_format, is_torch)]

    def _read_path(self, path: str) -> np.ndarray:
        if not os.path.exists(path):
            raise FileNotFoundError(f"image file not found: {path}")
        if path.lower().endswith(_RASTER_SUFFIXES):
            return self._read_raster(path)
        try:
            from PIL import Image
        except ImportError as err:
            raise ImportError("reading image files needs Pillow: pip install pillow") from err
        try:
            with Image.open(path) as img:  # the header only: pixels are decoded by load()
                self._check_header(path, img.width, img.height)
                img.load()
                return self._read(img, None)[0]
        except (OSError, SyntaxError, Image.DecompressionBombError) as err:
            raise ValueError(f"cannot decode image file {path}: {err}; is it a corrupt or unsupported file?") from err

    def _read_raster(self, path: str) -> np.ndarray:
        """The sensor's red, green and blue bands of a raster `(3, height, width)`, after checking its header."""
        try:
            import rasterio
            from rasterio.errors import RasterioError
        except ImportError as err:
            raise ImportError("reading GeoTIFFs needs rasterio: pip install rasterio") from err
        try:
            with rasterio.open(path) as src:
                self._check_header(path, src.width, src.height)
                indexes = self._raster_bands(path, src.count)
                if any(src.dtypes[i - 1] not in SUPPORTED_DTYPE_NAMES for i in indexes) or len(set(src.dtypes)) > 1:
                    raise ValueError(
                        f"{path} holds {', '.join(sorted(set(src.dtypes)))} pixels; the image processor reads uint8, "
                        "uint16, int16, uint32, int32 and float rasters"
                    )
                array = src.read(indexes)
                if self.nodata_value is None and src.nodata is not None and not np.isnan(src.nodata):
                    array = np.where(np.all(array == src.nodata, axis=0, keepdims=True), 0, array)
        except RasterioError as err:
            raise ValueError(f"cannot read raster {path}: {err}; is it a corrupt or unsupported file?") from err
        return array

    def _check_header(self, path: str, width: int, height: int) -> None:
        """Refuse an empty image, or one larger than `max_image_pixels`, before any pixel is read."""
        if width <= 0 or height <= 0:
            raise ValueError(f"{path} is empty ({width} x {height} pixels)")
        limit = self.max_image_pixels
        if limit is not None and width * height > limit:
            raise ValueError(
                f"{path} is {width} x {height} = {width * height:,} pixels, over the image processor's limit "
                f"max_image_pixels={limit:,}: a file is resized as a whole into one {self.size}-pixel model input. "
                "Map a large scene tile by tile (graft-hf's region map: `graft map`), or crop it"
            )

    def _raster_bands(self, path: str, count: int) -> list[int]:
        """1-based indexes of the bands to read: the sensor's RGB bands of a full stack, or a 3-band RGB file."""
        if count == len(self.band_names):
            return [i + 1 for i in self.rgb_bands]
        if count == 3:
            return [1, 2, 3]
        raise ValueError(
            f"{path}: expected {len(self.band_names)} bands ({', '.join(self.band_names)}) or 3 RGB bands for sensor "
            f"{self.sensor!r}, got {count}; pass a raster of that sensor, or a processor for the raster's sensor"
        )

    def _to_chw(self, array: np.ndarray, data_format: str | None, prefer_channels_first: bool) -> np.ndarray:
        if array.ndim == 2:
            return array[None]
        if array.ndim != 3:
            raise ValueError(
                f"an image must have 2 (H, W), 3 (HWC or CHW) or 4 (batched) dimensions, got shape {array.shape}"
            )
        if data_format in ("channels_first", "CHW"):
            return array
        if data_format in ("channels_last", "HWC"):
            return np.moveaxis(array, -1, 0)
        counts = {3, len(self.band_names)}
        first, last = array.shape[0] in counts, array.shape[-1] in counts
        if first and not last:
            return array
        if last and not first:
            return np.moveaxis(array, -1, 0)
        if first and last:  # ambiguous, e.g. a 3x3x3 array: torch convention is CHW, numpy/PIL is HWC
            return array if prefer_channels_first else np.moveaxis(array, -1, 0)
        # Neither end matches a valid band count: report with the smaller dimension as the band axis.
        return array if array.shape[0] <= array.shape[-1] else np.moveaxis(array, -1, 0)

    # ---------------------------------------------------------------------------------------------- scaling
    def _to_rgb_unit(self, array: np.ndarray, index: int) -> np.ndarray:
        """`(bands, H, W)` raw array -> `(3, H, W)` float32 RGB in [0, 1]."""
        if array.dtype == np.bool_ or array.dtype.type not in _SUPPORTED_DTYPES:
            raise TypeError(
                f"image {index}: unsupported dtype {array.dtype}; use uint8, uint16, int16, uint32, int32 or float "
                "(floats in [0, 1] are taken as already scaled, larger floats as raw sensor values)"
            )
        bands = array.shape[0]
        if bands == len(self.band_names):
            rgb = array[self.rgb_bands]
        elif bands == 3:
            rgb = array  # already red, green, blue
        else:
            raise ValueError(
                f"image {index}: expected {len(self.band_names)} bands ({', '.join(self.band_names)}) or 3 RGB bands "
                f"for sensor {self.sensor!r}, got {bands} (shape {array.shape}); pass a full band stack, an RGB "
                "image, or a processor for the right sensor"
            )
        rgb = rgb.astype(np.float32)
        if self.nodata_value is not None and array.dtype.kind in "iu":
            nodata = np.all(array == self.nodata_value, axis=0)
        else:
            nodata = np.zeros(rgb.shape[1:], dtype=bool)
        nodata |= np.any(np.isnan(rgb), axis=0)
        if nodata.all():
            raise ValueError(
                f"image {index} is entirely nodata/NaN (shape {array.shape}); check the raster window lies inside "
                "the scene's valid footprint"
            )
        if array.dtype == np.uint8:
            unit = rgb / 255.0
        elif array.dtype.kind == "f" and np.nanmax(rgb) <= 1.0 + 1e-6:
            unit = rgb
        else:
            unit = (rgb - self.value_offset) / self.value_scale
        unit = np.clip(np.nan_to_num(unit, nan=0.0), 0.0, 1.0)
        unit[:, nodata] = 0.0
        return unit

    # ---------------------------------------------------------------------------------------------- preprocess
    def preprocess(
        self,
        images: Any,
        return_tensors: str | None = "pt",
        size: int | None = None,
        do_resize: bool | None = None,
        do_normalize: bool | None = None,
        input_data_format: str | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Prepare one image or a batch.

        Args:
            images: An image, a list of images, or a batched array/tensor (see the class docstring).
            return_tensors: `"pt"` (default), `"np"` or `None` (a list of numpy arrays).
            size: Override the output side.
            do_resize: Override resizing.
            do_normalize: Override normalisation.
            input_data_format: `"channels_first"`/`"channels_last"` for arrays whose layout is ambiguous.

        Returns:
            `BatchFeature` with `pixel_values` of shape `(batch, 3, size, size)`.
        """
        size = int(size or self.size)
        do_resize = self.do_resize if do_resize is None else do_resize
        do_normalize = self.do_normalize if do_normalize is None else do_normalize
        if images is None:
            raise ValueError("no images given")
        inputs = list(images) if isinstance(images, (list, tuple)) else [images]
        arrays = [a for image in inputs for a in self._read(image, input_data_format)]
        if not arrays:
            raise ValueError("empty batch: pass at least one image")
        mean = torch.tensor(self.image_mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.image_std, dtype=torch.float32).view(3, 1, 1)
        pixel_values = []
        for index, array in enumerate(arrays):
            rgb = torch.from_numpy(np.ascontiguousarray(self._to_rgb_unit(array, index)))
            if do_resize and tuple(rgb.shape[-2:]) != (size, size):
                # Antialiased bicubic, like PIL's resize of CLIP's processor; clamp the bicubic overshoot.
                rgb = F.interpolate(rgb[None], size=(size, size), mode="bicubic", antialias=True, align_corners=False)
                rgb = rgb[0].clamp_(0.0, 1.0)
            if do_normalize:
                rgb = (rgb - mean) / std
            pixel_values.append(rgb)
        if return_tensors is None:
            return BatchFeature({"pixel_values": [p.numpy() for p in pixel_values]})
        shapes = {tuple(p.shape) for p in pixel_values}
        if len(shapes) > 1:
            raise ValueError(f"images of different sizes {sorted(shapes)} cannot be batched; keep do_resize=True")
        batch = torch.stack(pixel_values)
        return BatchFeature({"pixel_values": batch}, tensor_type=return_tensors)

    def __call__(self, images: Any = None, **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, **kwargs)


__all__ = ["MAX_IMAGE_PIXELS", "SUPPORTED_DTYPE_NAMES", "GraftImageProcessor"]
