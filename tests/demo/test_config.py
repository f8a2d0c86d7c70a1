"""The demo's configs (`DemoConfig`, `GalleryConfig`) check themselves and name the field."""

from __future__ import annotations

import pytest

pytest.importorskip("gradio")


def test_demo_configs_check_themselves():
    from graft_hf.config import ConfigError
    from graft_hf.demo import DemoConfig, GalleryConfig

    assert DemoConfig(model="m", gallery="g", templates="None").prompt_templates is None
    assert DemoConfig(model="m", gallery="g").prompt_templates == "satellite"
    assert DemoConfig(model="m").gallery is None  # served without retrieval, saying how to add a gallery
    with pytest.raises(ConfigError, match="model: no model given"):
        DemoConfig(gallery="g")
    with pytest.raises(ConfigError, match="exactly one source"):
        GalleryConfig(model="m", output_dir="o", pairs="p", geotiffs=["a.tif"])
    with pytest.raises(ConfigError, match="port: "):
        DemoConfig(model="m", gallery="g", port="80")
