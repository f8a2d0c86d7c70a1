"""The registry of the paper's models: every record is consistent with its preset and the repo-name rules; names
resolve to a local folder first, then to the Hub repository (a local test Hub here); offline errors say how to get
the weights; every `--model` flag takes a name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import graft_hf
from graft_hf.evaluation.errors import UnavailableSourceError
from graft_hf.hub import MODELS, get_model_info, list_models, model_repo_name, resolve_model, validate_model_repo_id
from graft_hf.modeling import GraftConfig
from graft_hf.testing import tiny_graft_model
from graft_hf.training.presets import get_preset
from graft_hf_cli import main
from tests.helpers.hub_server import online_env, run_python


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_record_matches_its_preset_and_repo_name(name: str) -> None:
    entry = get_model_info(name)
    assert entry.name == name and entry.repo_id == f"graft-hf/{name}" and entry.status == "planned"
    preset = get_preset(entry.preset)
    assert (preset.student.sensor, preset.task, preset.teacher.name_or_path) == (
        entry.sensor,
        entry.level,
        entry.teacher,
    )
    patch = int(entry.architecture.rsplit("/", 1)[1])
    config = GraftConfig(
        vision_config={**GraftConfig().vision_config.to_dict(), "patch_size": patch},
        sensor=entry.sensor,
        use_patch_head=entry.level == "pixel",
    )
    assert model_repo_name(config, "pixel" if entry.level == "pixel" else None) == name
    assert validate_model_repo_id(entry.repo_id, config) == entry.repo_id
    assert entry.license and entry.paper_tasks and "ICLR 2024" in entry.paper


def test_registry_lists_the_papers_models() -> None:
    assert list_models() == graft_hf.list_models() == sorted(MODELS)
    assert {"graft-naip-vitb16", "graft-naip-vitb32", "graft-s2-vitb16", "graft-s2-vitb32"} <= set(MODELS)
    assert {f"{name}-pixel" for name in ("graft-naip-vitb16", "graft-s2-vitb32")} <= set(MODELS)
    with pytest.raises(KeyError, match="registered: graft-naip-vitb16"):
        get_model_info("graft-naip-vitl14")


def test_a_local_folder_of_the_name_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnavailableSourceError, match="HF_HUB_OFFLINE is set") as error:
        resolve_model("graft-naip-vitb16")
    assert "'naip-vitb16' preset" in str(error.value) and "folder named 'graft-naip-vitb16'" in str(error.value)
    assert error.value.key == "model"
    model = tiny_graft_model(seed=2)
    model.save_pretrained(tmp_path / "graft-naip-vitb16")
    graft_hf.build_processor(model.config).save_pretrained(tmp_path / "graft-naip-vitb16")
    assert resolve_model("graft-naip-vitb16") == "graft-naip-vitb16"
    loaded = graft_hf.load_model("graft-naip-vitb16")
    assert torch.equal(loaded.visual_projection.weight, model.visual_projection.weight) and not loaded.training
    assert type(graft_hf.load_processor("graft-naip-vitb16")).__name__ == "GraftProcessor"
    assert resolve_model("someone/graft-model") == "someone/graft-model"  # not registered: unchanged


def test_every_model_flag_takes_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from graft_hf.evaluation.encoders import load_encoder
    from graft_hf.tasks.map_setup import load_map_model

    monkeypatch.chdir(tmp_path)
    for name in ("forest", "river"):  # a two-class image folder dataset
        (tmp_path / "ucm" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (20, 20), (0, 60 * i + 40, 0)).save(tmp_path / "ucm" / name / f"{i}.png")
    argv = ["eval", "--data", "ucm", "--no-progress", "-o", "out"]
    assert main([*argv, "--model", "graft-s2-vitb16-pixel"]) == 1
    assert "--model: 'graft-s2-vitb16-pixel' is a registered GRAFT model" in capsys.readouterr().err
    model = tiny_graft_model(seed=2)
    model.save_pretrained(tmp_path / "graft-s2-vitb16-pixel")
    graft_hf.build_processor(model.config).save_pretrained(tmp_path / "graft-s2-vitb16-pixel")
    assert main([*argv, "--model", "graft-s2-vitb16-pixel"]) == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["dataset"]["num_images"] == 4
    assert load_encoder("graft-s2-vitb16-pixel").name == "graft-s2-vitb16-pixel"  # eval, index, search
    loaded, _, tokenizer = load_map_model("graft-s2-vitb16-pixel", "cpu")  # map, segment, detect, ask, demo
    assert loaded.config.use_patch_head and tokenizer is not None


_LOAD = r"""
import json, sys
import graft_hf

out = {"resolved": graft_hf.hub.resolve_model("graft-naip-vitb16")}
out["projection_dim"] = graft_hf.load_model("graft-naip-vitb16").config.projection_dim
try:
    graft_hf.load_model("graft-s2-vitb32")
except RuntimeError as error:
    out["missing"] = str(error)
print("RESULT " + json.dumps(out))
"""


def test_a_name_without_a_folder_loads_its_hub_repo(hub_server, online, tmp_path: Path) -> None:
    """Online, `graft-naip-vitb16` is `graft-hf/graft-naip-vitb16` (on the test Hub); a repo not published says so."""
    env = online_env(hub_server, tmp_path / "home")
    model = tiny_graft_model(seed=4, projection_dim=24)
    model.save_pretrained(tmp_path / "model")
    graft_hf.build_processor(model.config).save_pretrained(tmp_path / "model")
    push = (
        "import sys, graft_hf; graft_hf.hub.push_model(sys.argv[1], 'graft-hf/graft-naip-vitb16', allow_any_name=True)"
    )
    run_python(push, env, str(tmp_path / "model"))
    assert ("model", "graft-hf/graft-naip-vitb16") in hub_server.state.repos
    result = run_python(_LOAD, env)
    out = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert out["resolved"] == "graft-hf/graft-naip-vitb16" and out["projection_dim"] == 24
    assert "could not load 'graft-s2-vitb32' from graft-hf/graft-s2-vitb32" in out["missing"]
    assert "its weights are planned on the Hub" in out["missing"] and "'sentinel2-vitb32' preset" in out["missing"]
