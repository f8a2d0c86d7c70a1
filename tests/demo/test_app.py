"""The Gradio app: served and driven in a real browser (headless Chromium through selenium) and through its API
(`gradio_client`: 20 concurrent queries, an upload, limits as errors); input errors as Gradio errors; built from
paths.

The browser test needs Debian's `chromium` and `chromium-driver` and selenium (tests/helpers/browser.py).
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from tests.helpers.browser import TIMEOUT_S  # noqa: E402


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_query_and_upload_in_a_real_browser(served_demo, browser, eurosat_png, demo_limits, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, TIMEOUT_S)
    browser.get(served_demo)

    # 1. Retrieval: type a query, search, and the k thumbnails with coordinates and scores appear with the map.
    box = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#retrieval-query input, #retrieval-query textarea"))
    box[0].send_keys("farmland with a river")
    browser.find_element(By.ID, "retrieval-button").click()
    k = demo_limits.k_default
    thumbs = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#retrieval-gallery img") or None)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#retrieval-gallery img")) == k)
    thumbs = browser.find_elements(By.CSS_SELECTOR, "#retrieval-gallery img")
    captions = [img.get_attribute("alt") for img in thumbs]
    assert [c.split()[0] for c in captions] == [f"#{i}" for i in range(1, k + 1)]
    assert all(", -99." in c or ", -98." in c for c in captions) and all("score" in c for c in captions)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#retrieval-map img"))
    assert f"{k} of 30 tiles" in browser.find_element(By.ID, "retrieval-summary").text
    browser.save_screenshot(str(tmp_path / "retrieval.png"))

    # 2. A query over the length limit: a visible error naming the limit, and the page keeps working.
    box[0].clear()
    box[0].send_keys("q" * (demo_limits.max_query_chars + 5))
    browser.find_element(By.ID, "retrieval-button").click()
    wait.until(lambda d: "max_query_chars" in d.find_element(By.TAG_NAME, "body").text)

    # 3. Segmentation: upload a real EuroSAT tile, segment with two queries, and the overlays appear.
    next(tab for tab in browser.find_elements(By.CSS_SELECTOR, "[role=tab]") if tab.text == "Segmentation").click()
    upload = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#seg-upload input[type=file]"))
    upload[0].send_keys(str(eurosat_png))
    wait.until(lambda d: eurosat_png.stem in d.find_element(By.ID, "seg-upload").text)  # the upload is listed
    queries = browser.find_element(By.CSS_SELECTOR, "#seg-queries textarea, #seg-queries input")
    queries.clear()
    queries.send_keys("water, farmland")
    browser.find_element(By.ID, "seg-button").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#seg-gallery img")) == 3)
    alts = [img.get_attribute("alt") for img in browser.find_elements(By.CSS_SELECTOR, "#seg-gallery img")]
    assert alts[0] == "all queries" and alts[1].startswith("water:") and alts[2].startswith("farmland:")
    assert "| background |" in browser.find_element(By.ID, "seg-summary").get_attribute("innerHTML") or (
        "background" in browser.find_element(By.ID, "seg-summary").text
    )

    screenshot = tmp_path / "demo.png"
    assert browser.save_screenshot(str(screenshot))
    width, height = _png_size(screenshot)
    assert width >= 800 and height >= 600 and screenshot.stat().st_size > 20_000


# ---------------------------------------------------------------------------------------------------- API
QUERIES = [
    "farmland", "a river", "a highway", "dense forest", "a lake", "industrial buildings", "pasture", "vineyards",
    "houses", "a bridge", "wetland", "an airport", "a parking lot", "crops in rows", "a harbour", "bare soil",
    "a golf course", "orchards", "a quarry", "a railway",
]  # fmt: skip


@pytest.fixture(scope="module")
def client(served_demo):
    return gradio_client.Client(served_demo, verbose=False)


def test_twenty_concurrent_queries_all_succeed(client):
    ks = [1 + i % 12 for i in range(len(QUERIES))]

    def ask(query_k: tuple[str, int]):
        query, k = query_k
        return client.predict(query, k, api_name="/retrieve")

    with ThreadPoolExecutor(max_workers=len(QUERIES)) as pool:
        answers = list(pool.map(ask, zip(QUERIES, ks)))
    assert len(answers) == 20
    for (query, k), (gallery, map_path, summary) in zip(zip(QUERIES, ks), answers):
        assert len(gallery) == k, query
        assert all("score" in item["caption"] and ", -9" in item["caption"] for item in gallery)
        assert map_path.endswith(".png") and f"{k} of 30 tiles" in summary and query in summary


def test_an_upload_through_the_api(client, naip_crop):
    overlays, summary = client.predict(
        gradio_client.handle_file(str(naip_crop)), "farmland, road", True, api_name="/segment"
    )
    assert [item["caption"].split(":")[0] for item in overlays] == ["all queries", "farmland", "road"]
    assert "96 x 96 px" in summary


def test_limits_reach_api_callers_as_errors(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="max_query_chars=60"):
        client.predict("x" * 100, 3, api_name="/retrieve")
    with pytest.raises(AppError, match="maximum value 12"):  # the slider's own range check (k_max)
        client.predict("farmland", 20, api_name="/retrieve")
    assert len(client.predict("farmland", 2, api_name="/retrieve")[0]) == 2  # the server is still fine


# ---------------------------------------------------------------------------------------------------- the app
def test_the_app_shows_input_errors_and_failures_as_gradio_errors(backend):
    import gradio as gr

    from graft_hf.demo.app import _guard

    with pytest.raises(gr.Error, match="max_query_chars=60"):
        _guard(backend.retrieve)("q" * 100, 3)

    def broken(*_):
        raise KeyError("boom")

    with pytest.raises(gr.Error, match=r"the request failed \(KeyError"):
        _guard(broken)()


def test_the_demo_without_gradio_names_the_extra():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['gradio'] = None\n"
        "try:\n    import graft_hf.demo.app\nexcept ImportError as error:\n    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "the GRAFT demo needs gradio, which is not installed: pip install 'graft-hf[demo]'" in result.stdout, (
        result.stderr[-2000:]
    )


def test_build_demo_from_paths_and_the_gallery_command(tmp_path, tiny_model_dir, naip_crop, demo_limits):
    import gradio as gr

    from graft_hf.demo import build_demo, load_gallery
    from graft_hf_cli import main

    gallery = tmp_path / "cli-gallery"
    argv = ["demo-gallery", "--model", str(tiny_model_dir), "--geotiffs", str(naip_crop), "-o", str(gallery)]
    assert main([*argv, "--device", "cpu", "--thumbnail-size", "48"]) == 0
    index, info = load_gallery(gallery)
    assert len(index) == 1 and info.thumbnail_size == 48 and info.model == str(tiny_model_dir)
    demo = build_demo(tiny_model_dir, gallery, limits=demo_limits, templates=None)
    try:
        assert isinstance(demo, gr.Blocks) and demo.graft_backend.limits == demo_limits
        api = {dep.api_name for dep in demo.fns.values() if dep.api_name}
        assert {"retrieve", "segment", "region_map"} <= api
        assert demo.graft_backend.retrieve("farmland", 1).hits[0].tile_id == naip_crop.stem
    finally:
        demo.graft_backend.close()
