"""Hub repo names: derived from the sensor and patch size, validated against the config."""

from __future__ import annotations

import pytest

from graft_hf.hub import model_repo_name, validate_model_repo_id, validate_repo_id
from graft_hf.modeling import GraftConfig
from graft_hf.testing import tiny_graft_model


def test_repo_names_follow_sensor_and_patch_size():
    assert model_repo_name(GraftConfig.vit_b16()) == "graft-naip-vitb16"
    assert model_repo_name(GraftConfig.vit_b32(sensor="sentinel2")) == "graft-s2-vitb32"
    assert model_repo_name(GraftConfig.vit_b16(sensor="sentinel2"), suffix="pixel") == "graft-s2-vitb16-pixel"
    assert model_repo_name(GraftConfig.vit_b16(sensor="sentinel2-l1c")) == "graft-s2-l1c-vitb16"
    assert model_repo_name(tiny_graft_model().config) == "graft-naip-vit-w32-d2-p8"
    with pytest.raises(ValueError, match="suffix"):
        model_repo_name(GraftConfig.vit_b16(), suffix="Bad_Suffix")


def test_repo_name_validation():
    config = GraftConfig.vit_b16()
    assert validate_model_repo_id("org/graft-naip-vitb16", config) == "org/graft-naip-vitb16"
    assert validate_model_repo_id("graft-naip-vitb16-v2", config) == "graft-naip-vitb16-v2"
    for bad in ("org/graft-naip-vitb32", "org/graft-sentinel2-vitb16", "org/graft-naip-vitb160", "org/my-model"):
        with pytest.raises(ValueError, match="expected 'graft-naip-vitb16'"):
            validate_model_repo_id(bad, config)
    sentinel = GraftConfig.vit_b16(sensor="sentinel2")
    for good in ("graft-hf/graft-s2-vitb16", "graft-hf/graft-s2-vitb16-pixel", "me/graft-sentinel2-vitb16"):
        assert validate_model_repo_id(good, sentinel) == good  # the registry's short form and the long one
    with pytest.raises(ValueError, match="expected 'graft-s2-vitb16'"):
        validate_model_repo_id("me/graft-s2-l1c-vitb16", sentinel)
    for bad in ("a/b/c", "org/-name", "org/na--me", "org/" + "x" * 97, "org/na me"):
        with pytest.raises(ValueError):
            validate_repo_id(bad)
