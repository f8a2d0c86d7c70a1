"""Headless Chromium through selenium for the demo and Space tests.

Needs Debian's `chromium` and `chromium-driver` and selenium from PyPI (`.ci/run` installs them). Without them a
test skips, except under CI (the CI environment variable is set), where it fails.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["CHROME_FLAGS", "TIMEOUT_S", "headless_chromium", "require_browser"]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Flags measured to work here (../shared/ENVIRONMENT.md); nothing but 127.0.0.1 resolves.
CHROME_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--window-size=1400,1800",
)  # fmt: skip
TIMEOUT_S = 40


def require_browser() -> None:
    """Skip (fail under CI) when Chromium, its driver or selenium is missing."""
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


def headless_chromium(tmp_path: Path) -> Iterator:
    """A selenium Chrome driver over headless Chromium (a generator: the fixture's body), quit afterwards."""
    require_browser()
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
