"""The Hugging Face Space (spaces/app.py, published by `graft push --space`): its metadata matches the installed gradio,
its app.py builds the demo from the Space variables."""

from __future__ import annotations

import pytest

from tests.helpers.data import REPO_ROOT

pytest.importorskip("gradio")


def test_the_published_space_metadata_matches_the_installed_gradio(tmp_path):
    import gradio
    import yaml

    from graft_hf.hub import stage_space

    space = stage_space(tmp_path / "space", "you/graft-naip-vitb16", "you/gallery")
    text = (space / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    for key in ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "license", "tags"):
        assert key in meta, key
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__
    assert (space / meta["app_file"]).read_text() == (REPO_ROOT / "spaces" / "app.py").read_text()
    assert meta["colorFrom"] in {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert f"gradio=={gradio.__version__}" in (space / "requirements.txt").read_text()
    assert "build_space_demo" in (space / meta["app_file"]).read_text()


def test_the_space_app_builds_the_same_demo_from_its_variables(monkeypatch, tiny_model_dir, gallery_dir):
    import runpy

    import gradio as gr

    monkeypatch.setenv("MODEL_ID", str(tiny_model_dir))
    monkeypatch.setenv("GALLERY", str(gallery_dir))
    monkeypatch.setenv("TEMPLATES", "none")
    app = REPO_ROOT / "spaces" / "app.py"
    namespace = runpy.run_path(str(app), run_name="space_app")  # not __main__: builds the app, does not serve it
    demo = namespace["demo"]
    try:
        assert isinstance(demo, gr.Blocks) and demo.graft_backend.templates is None
        assert len(demo.graft_backend.retrieve("farmland", 3).hits) == 3
    finally:
        demo.graft_backend.close()
