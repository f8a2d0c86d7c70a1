"""The training presets reproduce the paper's recipe; `get_preset` returns a copy."""

from __future__ import annotations

import pytest

from graft_hf.training.presets import PRESETS, get_preset


def test_presets_reproduce_the_paper_recipe() -> None:
    assert {"naip-vitb16", "naip-vitb16-pixel", "sentinel2-vitb16", "naip-vitb32", "sentinel2-vitb32-pixel"} <= set(
        PRESETS
    )
    for name, preset in PRESETS.items():
        assert preset.optim.weight_decay == pytest.approx(1e-2)
        assert preset.train.epochs == 10
        assert preset.optim.lr == pytest.approx(5e-5 if name.endswith("-pixel") else 1e-5)
        assert preset.task == ("pixel" if name.endswith("-pixel") else "image")
        assert preset.student.init == "from_clip"
    assert get_preset("sentinel2-vitb32").student.sensor == "sentinel2"
    assert get_preset("naip-vitb32").teacher.name_or_path.endswith("patch32")
    get_preset("naip-vitb16").optim.lr = 1.0  # a copy: the registry is not mutated
    assert PRESETS["naip-vitb16"].optim.lr == pytest.approx(1e-5)
