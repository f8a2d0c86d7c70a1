"""Fixtures of the demo tests: a tiny random GRAFT model, a gallery of 30 real EuroSAT tiles with synthetic
coordinates, a real NAIP GeoTIFF crop, the demo backend and (once per session) the app served on 127.0.0.1.

Test modules load this file as a plugin (`pytest_plugins = ["demo_fixtures"]`), so its session fixtures are built
once per session. It is not a `conftest.py` on purpose: other test folders import names from the top-level
`tests/conftest.py` as module `conftest`, which a second conftest would shadow.
"""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_name, "1")

from demo_test_data import EUROSAT_CLASSES, EUROSAT_TEST, GALLERY_SIZE, NAIP, gallery_coordinates  # noqa: E402


@pytest.fixture(scope="session")
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the 2-core test machine is shared; oversubscription makes tiny models crawl
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random GRAFT model (32 px input, patch 8, NAIP sensor at 5 m) saved with its processor."""
    from graft_hf import build_processor
    from graft_hf.testing import tiny_graft_model

    path = tmp_path_factory.mktemp("tiny-graft-demo")
    model = tiny_graft_model(seed=0, gsd=5.0)
    model.save_pretrained(path)
    build_processor(model.config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def eurosat_records() -> list[dict]:
    """30 real EuroSAT RGB tiles (64 x 64 JPEG) with synthetic coordinates and their class names."""
    if not EUROSAT_TEST.exists():
        pytest.skip(f"EuroSAT parquet not found at {EUROSAT_TEST} (expected ../shared/data beside the repository)")
    import pyarrow.parquet as pq
    from PIL import Image

    rows = pq.read_table(EUROSAT_TEST).slice(0, GALLERY_SIZE).to_pylist()
    records = []
    for i, row in enumerate(rows):
        lat, lon = gallery_coordinates(i)
        image = Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB")
        records.append(
            {"image": image, "lat": lat, "lon": lon, "tile_id": row["filename"], "label": EUROSAT_CLASSES[row["label"]]}
        )
    return records


@pytest.fixture(scope="session")
def gallery_dir(tmp_path_factory, tiny_model_dir, eurosat_records, one_thread) -> Path:
    from graft_hf.demo import build_gallery
    from graft_hf.modeling import GraftModel

    path = tmp_path_factory.mktemp("gallery")
    model = GraftModel.from_pretrained(tiny_model_dir).eval()
    build_gallery(model, eurosat_records, path, thumbnail_size=64, model_name=str(tiny_model_dir))
    return path


@pytest.fixture(scope="session")
def naip_crop(tmp_path_factory) -> Path:
    """A real 96 x 96 px window of a NAIP GeoTIFF (RGBN uint8, EPSG:26914), georeferenced."""
    if not NAIP.exists():
        pytest.skip(f"NAIP GeoTIFF not found at {NAIP} (expected ../shared/data beside the repository)")
    import rasterio
    from rasterio.windows import Window

    path = tmp_path_factory.mktemp("naip") / "naip_crop.tif"
    with rasterio.open(NAIP) as src:
        window = Window(300, 300, 96, 96)
        profile = src.profile
        profile.update(width=96, height=96, transform=src.window_transform(window), tiled=False)
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(src.read(window=window))
    return path


@pytest.fixture(scope="session")
def eurosat_png(tmp_path_factory, eurosat_records) -> Path:
    """One real EuroSAT tile written as a PNG upload."""
    path = tmp_path_factory.mktemp("uploads") / "eurosat_tile.png"
    eurosat_records[0]["image"].save(path)
    return path


@pytest.fixture(scope="session")
def demo_limits():
    from graft_hf.demo import DemoLimits

    # Small enough that the tests can break every limit with small files.
    return DemoLimits(
        max_upload_bytes=200_000, max_pixels=128 * 128, max_map_pixels=200 * 200, max_map_windows=64,
        max_query_chars=60, max_queries=4, k_min=1, k_max=12, k_default=6,
    )  # fmt: skip


@pytest.fixture(scope="session")
def backend(tiny_model_dir, gallery_dir, demo_limits, one_thread, tmp_path_factory):
    from graft_hf.demo import DemoBackend

    backend = DemoBackend.from_paths(
        str(tiny_model_dir), gallery_dir, demo_limits, templates="satellite", workdir=tmp_path_factory.mktemp("work")
    )
    yield backend
    backend.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def served_demo(backend, tmp_path_factory):
    """The app served on 127.0.0.1 (a free port) through `launch_demo`, as `graft demo` does: yields its URL."""
    os.environ.setdefault("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio-tmp")))
    from graft_hf.demo import build_demo_from_backend, launch_demo

    demo = build_demo_from_backend(backend)
    port = _free_port()
    launch_demo(demo, host="127.0.0.1", port=port, limits=backend.limits, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()
