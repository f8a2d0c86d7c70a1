"""Fixtures of the command-line tests: a saved tiny GRAFT model; another with a tiny SAM and a PNG, shared by the
`graft segment` / `detect` / `ask` tests (built once per session); a crop of a real NAIP GeoTIFF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.data import shared_data

NAIP = ("naip-nd", "m_4709963_se_14_1_20200831.tif")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny random GRAFT model saved with its processor as `graft-tiny` (the name reports show)."""
    from graft_hf import build_processor
    from graft_hf.testing import tiny_graft_model

    path = tmp_path_factory.mktemp("model") / "graft-tiny"
    model = tiny_graft_model(seed=0)
    model.save_pretrained(path)
    build_processor(model.config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def files(tmp_path_factory) -> dict[str, Path]:
    """A saved tiny GRAFT model (NAIP sensor, 1 m training GSD, 32 px input), a tiny SAM and a 40x56 PNG."""
    from PIL import Image

    from graft_hf.tasks.sam import tiny_sam
    from graft_hf.testing import tiny_graft_model

    root = tmp_path_factory.mktemp("cli-pixel")
    tiny_graft_model(seed=0).save_pretrained(root / "model")
    sam = tiny_sam(seed=0, image_size=64)
    sam.model.save_pretrained(root / "sam")
    sam.processor.save_pretrained(root / "sam")
    rgb = np.random.default_rng(0).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "tile.png")
    return {"root": root, "model": root / "model", "sam": root / "sam", "png": root / "tile.png"}


@pytest.fixture(scope="session")
def naip(tmp_path_factory) -> dict[str, object]:
    """A 64x48 crop of a real NAIP GeoTIFF (4 bands, EPSG:26914, 5 m/px) and a 2-band copy of it."""
    import rasterio
    from rasterio.windows import Window

    source = shared_data(*NAIP)
    root = tmp_path_factory.mktemp("naip")
    with rasterio.open(source) as src:
        window = Window(100, 200, 64, 48)
        bands = src.read(window=window)
        profile = {**src.profile, "width": 64, "height": 48, "transform": src.window_transform(window)}
    with rasterio.open(root / "crop.tif", "w", **profile) as dst:
        dst.write(bands)
    with rasterio.open(root / "two_bands.tif", "w", **{**profile, "count": 2}) as dst:
        dst.write(bands[:2])
    return {"tif": root / "crop.tif", "two_bands": root / "two_bands.tif", "profile": profile}
