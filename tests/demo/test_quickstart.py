"""The demo after `graft quickstart`: its model and a gallery of real EuroSAT test tiles built on first use, served
by `graft demo` with no arguments; results without coordinates are listed without a map."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.demo_data import EUROSAT_CLASSES, EUROSAT_TEST

needs_eurosat = pytest.mark.skipif(not EUROSAT_TEST.exists(), reason=f"EuroSAT parquet not found at {EUROSAT_TEST}")
EUROSAT = EUROSAT_TEST.parents[1]


@pytest.fixture
def quickstart_run(tmp_path, tiny_model_dir) -> Path:
    """A folder laid out as `graft quickstart` leaves it (runs/quickstart/train/model), with a tiny model."""
    run = tmp_path / "runs" / "quickstart"
    shutil.copytree(tiny_model_dir, run / "train" / "model")
    return run


@needs_eurosat
def test_the_quickstart_gallery_is_built_once_from_eurosat_test_tiles(quickstart_run, one_thread):
    from graft_hf.demo import DemoBackend
    from graft_hf.demo.quickstart import quickstart_gallery

    gallery = quickstart_gallery(str(EUROSAT), quickstart_run, tiles=24)
    assert gallery == quickstart_run / "demo-gallery" and not (quickstart_run / "demo-gallery.partial").exists()
    stamp = (gallery / "gallery.json").stat().st_mtime_ns
    assert quickstart_gallery(str(EUROSAT), quickstart_run, tiles=24) == gallery
    assert (gallery / "gallery.json").stat().st_mtime_ns == stamp  # reused, not rebuilt

    backend = DemoBackend.from_paths(str(quickstart_run / "train" / "model"), gallery)
    try:
        out = backend.retrieve("a river", 5)
        assert len(out.hits) == 5 and out.map_image is None and backend.gallery_size == 24
        assert all(h.caption.split("(")[-1].rstrip(")") in EUROSAT_CLASSES for h in out.hits)
        assert ", " not in out.hits[0].caption.split("score")[0]  # no coordinates to show
    finally:
        backend.close()


@needs_eurosat
def test_graft_demo_without_arguments_serves_the_quickstart_model(quickstart_run, monkeypatch, one_thread):
    import graft_hf.demo.app
    import graft_hf.demo.quickstart
    import graft_hf_cli.quickstart
    from graft_hf_cli import main

    served = {}
    monkeypatch.chdir(quickstart_run.parents[1])
    monkeypatch.delenv("GRAFT_MODEL", raising=False)
    monkeypatch.setattr(graft_hf.demo.quickstart, "_GALLERY_TILES", 12)
    monkeypatch.setattr(graft_hf_cli.quickstart, "default_eurosat_path", lambda: EUROSAT)
    monkeypatch.setattr(graft_hf.demo.app, "launch_demo", lambda demo, **kw: served.update(demo=demo, **kw))
    assert main(["demo"]) == 0
    backend = served["demo"].graft_backend
    assert backend.model_ref == str(Path("runs/quickstart/train/model")) and backend.gallery_size == 12
    backend.close()


def test_graft_demo_without_a_model_says_what_to_pass(tmp_path, monkeypatch, capsys):
    from graft_hf_cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRAFT_MODEL", raising=False)
    assert main(["demo"]) == 1
    assert "graft demo: error: --model: no model given" in capsys.readouterr().err
