"""The published Space, met as a user meets it: a model, a gallery dataset and the Space pushed to the local Hub,
the Space downloaded into a clean folder and started in a fresh environment (only the third-party packages of its
requirements.txt; graft-hf comes from the Space's own copy), queried with `gradio_client` and in headless Chromium.
And the Space's behaviour without a model or gallery: it starts and names the Space variable to set.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.browser import TIMEOUT_S
from tests.helpers.hub_server import HUB_TOKEN, USER, free_port, online_env

gradio_client = pytest.importorskip("gradio_client")
pytest.importorskip("gradio")

MODEL, GALLERY, SPACE = f"{USER}/graft-tiny", f"{USER}/graft-demo-gallery", f"{USER}/graft-demo"


def _requirement_names(requirements: Path) -> list[str]:
    names = []
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.append(re.split(r"[\[=<>!~; ]", line, maxsplit=1)[0])
    return names


def _wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the Space exited with {process.returncode}:\n{log.read_text()[-6000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the Space did not answer within {timeout} s:\n{log.read_text()[-6000:]}")


@pytest.fixture
def published_space(hub_server, online, tiny_model_dir, gallery_dir) -> Path:
    """Model, gallery and Space pushed to the local Hub; the Space downloaded into a clean folder."""
    from huggingface_hub import snapshot_download

    from graft_hf.hub import push_gallery, push_model, push_space

    hub = {"endpoint": hub_server.endpoint, "token": HUB_TOKEN}
    push_model(tiny_model_dir, MODEL, allow_any_name=True, **hub)
    push_gallery(gallery_dir, GALLERY, license="mit", **hub)
    result = push_space(SPACE, MODEL, GALLERY, **hub)
    assert result.repo_type == "space" and "app.py" in result.files and "graft_hf/demo/space.py" in result.files
    return Path(snapshot_download(SPACE, repo_type="space", local_dir=online / "clean", **hub))


def test_the_published_space_runs_from_a_clean_copy_in_a_fresh_environment(
    published_space, hub_server, online, eurosat_png, tmp_path
):
    from huggingface_hub import SpaceCard

    from tests.helpers.bare_venv import bare_python

    space = published_space
    card = SpaceCard.load(space / "README.md")
    assert (card.data.sdk, card.data.app_file, card.data.models, card.data.datasets) == (
        "gradio", "app.py", [MODEL], [GALLERY]
    )  # fmt: skip
    import gradio

    assert (
        card.data.sdk_version == gradio.__version__
        and f"gradio=={gradio.__version__}" in (space / "requirements.txt").read_text()
    )

    # A fresh environment with only the requirements' third-party packages; pip finds every requirement satisfied.
    names = _requirement_names(space / "requirements.txt")
    assert "graft-hf" not in names and {"torch", "transformers", "gradio"} <= {n.lower() for n in names}
    python = bare_python(tmp_path / "env", names)
    check = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--dry-run", "--no-index", "--no-deps", "-r",
         str(space / "requirements.txt")], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0 and "Would install" not in check.stdout, check.stdout + check.stderr
    env = online_env(hub_server, tmp_path / "home")
    env.pop("PYTHONPATH")
    port = free_port()
    env.update({"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "HF_TOKEN": HUB_TOKEN})
    env.update({"GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False"})
    where = subprocess.run(
        [str(python), "-c", "import graft_hf; print(graft_hf.__file__)"], cwd=space, env=env, capture_output=True,
        text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where).resolve().is_relative_to(space.resolve()), where

    log = tmp_path / "space.log"
    with log.open("w") as out:
        process = subprocess.Popen([str(python), "app.py"], cwd=space, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(url, process, log)
        client = gradio_client.Client(url, verbose=False)
        hits, _, summary = client.predict("farmland with a river", 4, api_name="/retrieve")
        assert len(hits) == 4 and "4 of 30 tiles" in summary
        overlays, _ = client.predict(
            gradio_client.handle_file(str(eurosat_png)), "water, farmland", True, api_name="/segment"
        )
        assert len(overlays) == 3
        _browse(url, tmp_path)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _browse(url: str, tmp_path: Path) -> None:
    """Retrieval in headless Chromium: the query's thumbnails appear with coordinates."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.helpers.browser import headless_chromium

    driver_gen = headless_chromium(tmp_path)
    browser = next(driver_gen)
    try:
        wait = WebDriverWait(browser, TIMEOUT_S)
        browser.get(url)
        box = wait.until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#retrieval-query input, #retrieval-query textarea")
        )
        box[0].send_keys("a forest")
        browser.find_element(By.ID, "retrieval-button").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#retrieval-gallery img")) >= 1)
        captions = [
            img.get_attribute("alt") for img in browser.find_elements(By.CSS_SELECTOR, "#retrieval-gallery img")
        ]
        assert captions[0].startswith("#1") and "score" in captions[0]
        assert "graft-tiny" in browser.find_element(By.TAG_NAME, "body").text
    finally:
        next(driver_gen, None)


# ------------------------------------------------------------------------------------- settings in Space terms
def _markdown(demo) -> str:
    return "\n".join(
        str(block.value) for block in demo.blocks.values() if type(block).__name__ == "Markdown" and block.value
    )


def test_without_a_model_the_space_starts_and_names_the_variable(tmp_path):
    from graft_hf.demo.space import build_space_demo

    text = _markdown(build_space_demo(tmp_path, environ={}))
    assert "not set up yet" in text and "Space variable `MODEL_ID`" in text and "--model" not in text


def test_an_unreachable_model_shows_the_error_and_the_variable(tmp_path):
    from graft_hf.demo.space import build_space_demo

    text = _markdown(build_space_demo(tmp_path, environ={"MODEL_ID": str(tmp_path / "missing-model")}))
    assert "could not be loaded" in text and "`MODEL_ID`" in text and "missing-model" in text


def test_without_a_gallery_the_space_serves_the_other_tabs_and_names_gallery(tmp_path, tiny_model_dir, one_thread):
    from graft_hf.demo.space import build_space_demo

    demo = build_space_demo(tmp_path, environ={"MODEL_ID": str(tiny_model_dir)})
    text = _markdown(demo)
    assert (
        demo.graft_backend.index is None and "Space variable `GALLERY`" in text and "graft demo --gallery" not in text
    )
    demo = build_space_demo(tmp_path, environ={"MODEL_ID": str(tiny_model_dir), "GALLERY": "nobody/no-such-gallery"})
    assert "could not be loaded" in _markdown(demo) and demo.graft_backend.index is None


def test_space_variables_override_the_published_settings(tmp_path):
    from graft_hf.demo.space import space_config
    from graft_hf.io import write_json

    write_json(tmp_path / "space_config.json", {"model": "a/model", "gallery": "a/gallery", "templates": "none"})
    config = space_config(tmp_path, {"GALLERY": "b/gallery", "GRADIO_SERVER_PORT": "7000"})
    assert (config.model, config.gallery, config.templates, config.port) == ("a/model", "b/gallery", "none", 7000)
    assert space_config(tmp_path, {"GALLERY": "none"}).gallery is None


def test_a_local_model_folder_is_refused_for_a_space(tmp_path, tiny_model_dir):
    from graft_hf.hub import stage_space

    with pytest.raises(ValueError, match="local folder, which the Space cannot read"):
        stage_space(tmp_path / "space", str(tiny_model_dir))
    assert not os.path.exists(tmp_path / "space" / "app.py")


def test_the_repository_space_app_is_the_one_published():
    from graft_hf.hub.space import SPACE_APP
    from tests.helpers.data import REPO_ROOT

    assert (REPO_ROOT / "spaces" / "app.py").read_text() == SPACE_APP


def test_graft_push_space_dry_run_and_gallery(hub_server, online, gallery_dir, capsys):
    from graft_hf_cli import main

    assert main(["push", f"{USER}/graft-tiny", f"{USER}/demo", "--space", "--space-gallery", GALLERY, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "app.py" in out and "requirements.txt" in out and "graft_hf/demo/space.py" in out and "dry run:" in out
    hub = ["--endpoint", hub_server.endpoint, "--token", HUB_TOKEN]
    assert main(["push", str(gallery_dir), f"{USER}/cli-gallery", "--gallery", "--license", "mit", *hub]) == 0
    files = hub_server.files(f"{USER}/cli-gallery", "dataset")
    assert "gallery.json" in files and b"license: mit" in files["README.md"]


def test_a_registered_name_links_its_hub_repository(tmp_path):
    from huggingface_hub import SpaceCard

    from graft_hf.hub import stage_space

    space = stage_space(tmp_path / "space", "graft-naip-vitb16", "you/gallery")
    card = SpaceCard.load(space / "README.md")
    assert card.data.models == ["graft-hf/graft-naip-vitb16"] and card.data.datasets == ["you/gallery"]
    assert (space / "graft_hf" / "modeling" / "modeling_graft.py").is_file()  # the package, modeling included
    assert not list(space.rglob("__pycache__"))
