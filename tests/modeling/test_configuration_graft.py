"""GraftConfig: validation errors that name the field, presets, save/load round trip."""

from __future__ import annotations

import pytest

from graft_hf import GraftConfig


def test_config_validation_errors():
    with pytest.raises(ValueError, match="rgb_bands"):
        GraftConfig(rgb_bands=[0, 1])
    with pytest.raises(ValueError, match="index outside"):
        GraftConfig(rgb_bands=[0, 1, 7])
    with pytest.raises(ValueError, match="multiple of patch_size"):
        GraftConfig(vision_config={"image_size": 100, "patch_size": 16})
    with pytest.raises(ValueError, match="has no preset"):
        GraftConfig(sensor="spot6")
    with pytest.raises(ValueError, match="gsd"):
        GraftConfig(gsd=-1.0)
    with pytest.raises(TypeError, match="vision_config"):
        GraftConfig(vision_config=42)


def test_config_round_trip_and_presets(tmp_path):
    config = GraftConfig.vit_b32(sensor="sentinel2")
    assert config.vision_config.patch_size == 32 and config.patch_grid == (7, 7)
    assert config.band_names[config.rgb_bands[0]] == "B04" and config.gsd == 10.0
    config.save_pretrained(tmp_path)
    loaded = GraftConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    default = GraftConfig()
    assert (default.vision_config.patch_size, default.vision_config.hidden_size, default.projection_dim) == (
        16,
        768,
        512,
    )
    assert default.text_config.hidden_size == 512 and default.sensor == "naip"


def test_configs_saved_before_the_patch_head_bias_and_untrained_flag_load_as_before(tmp_path):
    config = GraftConfig()
    config.save_pretrained(tmp_path)
    raw = (tmp_path / "config.json").read_text()
    for key in ("patch_head_bias", "image_embeds_trained"):
        assert f'"{key}"' in raw
        raw = "\n".join(line for line in raw.splitlines() if f'"{key}"' not in line)
    (tmp_path / "config.json").write_text(raw)
    loaded = GraftConfig.from_pretrained(tmp_path)
    assert loaded.patch_head_bias is False and loaded.image_embeds_trained is True
