"""The demo in a real browser: headless Chromium driven by selenium through a query, an upload and an error.

Needs Debian's `chromium` and `chromium-driver` and selenium from PyPI (`.ci/run` installs them). Without them
the test skips, except under CI (the CI environment variable is set), where it fails.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import tempfile
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Flags measured to work here (../shared/ENVIRONMENT.md); nothing but 127.0.0.1 resolves.
CHROME_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--window-size=1400,1800",
)  # fmt: skip
TIMEOUT_S = 40


def _require_browser() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(path) or shutil.which(path))]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package")
    if missing:
        message = (
            f"browser test needs {', '.join(missing)}: apt-get install -y chromium chromium-driver && "
            "pip install selenium"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {message}")
        pytest.skip(message)


@pytest.fixture
def browser(tmp_path):
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(TIMEOUT_S)
    yield driver
    driver.quit()


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
