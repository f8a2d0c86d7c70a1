"""Push a tiny GRAFT model and pairs dataset to a local Hub server, then load them back in fresh processes; errors
before and during a push; the files staged for a push and dataset card checks.

Push and pull run in subprocesses because huggingface_hub, transformers and datasets read HF_ENDPOINT and the
offline switches at import time (this test process runs offline).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

import graft_hf
from graft_hf.hub import (
    HubPushError,
    ModelCardInfo,
    check_dataset_card,
    check_model_card,
    push_model,
    render_model_card,
)
from graft_hf.pairs.schema import pairs_table
from graft_hf.testing import tiny_graft_model
from tests.helpers.data import REPO_ROOT
from tests.helpers.hub_inputs import EVAL, MODEL_NAME, saved_model
from tests.helpers.hub_server import HUB_TOKEN, USER, free_port, online_env, run_python

PLAIN_NAME = "plain-push-to-hub"
DATASET_ID = f"{USER}/graft-naip-pairs-tiny"

_PUSH = r"""
import sys
import graft_hf
import graft_hf.hub
from graft_hf.testing import tiny_graft_model
from graft_hf_cli import main

model_dir, eval_json, dataset_dir, dataset_id, plain_name = sys.argv[1:6]
assert main(["push", model_dir, "--namespace", "graft-tester", "--eval", eval_json,
             "--train-dataset", dataset_id]) == 0
assert main(["push", "--dataset", dataset_dir, dataset_id]) == 0
# model.push_to_hub with graft_hf installed: weights, config with auto_map, remote code, processor and card.
result = tiny_graft_model(seed=0).push_to_hub(plain_name, commit_message="plain push")
assert result.repo_id.endswith(plain_name), result
# The library call with a model object (saved into a staging folder, processor built from the config).
result = graft_hf.hub.push_model(tiny_graft_model(seed=0), "graft-naip-vit-w32-d2-p8-object")
assert result.repo_id == "graft-tester/graft-naip-vit-w32-d2-p8-object", result
"""

_PULL = r"""
import importlib.abc, json, sys


class BlockGraft(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "graft_hf" or name.startswith("graft_hf."):
            raise ImportError(f"graft_hf is blocked in this test ({name})")
        return None


blocker = BlockGraft()
sys.meta_path.insert(0, blocker)
import torch
from transformers import AutoModel, AutoProcessor

repo_id, plain_id, dataset_id, ref_path = sys.argv[1:5]
ref = torch.load(ref_path)
out = {}


def compare(key, model):
    out[key + "_class"] = type(model).__module__ + "." + type(model).__name__
    with torch.no_grad():
        out[key + "_image"] = (model.get_image_features(ref["pixel_values"]) - ref["image_embeds"]).abs().max().item()
        out[key + "_patch"] = (model.get_patch_features(ref["pixel_values"]) - ref["patch_embeds"]).abs().max().item()


# 1. Remote code: graft_hf cannot be imported, the repo's model files are used.
compare("remote", AutoModel.from_pretrained(repo_id, trust_remote_code=True).eval())
remote_processor = AutoProcessor.from_pretrained(repo_id, trust_remote_code=True)
out["remote_processor"] = type(remote_processor).__module__ + "." + type(remote_processor).__name__
out["remote_pixels"] = list(remote_processor(images=torch.zeros(3, 40, 40, dtype=torch.uint8))["pixel_values"].shape)
out["blocked"] = sorted(m for m in sys.modules if m == "graft_hf" or m.startswith("graft_hf."))
# 2. snapshot_download of the whole repository.
from huggingface_hub import snapshot_download
import os

out["snapshot"] = sorted(os.listdir(snapshot_download(repo_id)))
out["plain_snapshot"] = sorted(os.listdir(snapshot_download(plain_id)))
# 3. With graft_hf imported (registered Auto classes), no remote code.
sys.meta_path.remove(blocker)
import graft_hf
from datasets import load_dataset

compare("graft", AutoModel.from_pretrained(repo_id).eval())
compare("plain", AutoModel.from_pretrained(plain_id).eval())
processor = AutoProcessor.from_pretrained(repo_id)
out["processor"] = type(processor).__name__
out["input_ids"] = processor(text=["farmland"])["input_ids"][0].tolist()
rows = list(load_dataset(dataset_id, split="train", streaming=True))
out["tiles"] = [row["tile_id"] for row in rows]
out["image_size"] = list(rows[0]["image"].size)
out["photo"] = rows[0]["photos"][0]["photo_id"]
print("RESULT " + json.dumps(out))
"""


def _result(stdout: str) -> dict:
    line = next(line for line in stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def _digest(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (seed * 40 % 256, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_pairs(folder: Path) -> None:
    """A two-tile pairs build folder: parquet shard with the shared schema, card with `configs:`, bookkeeping."""
    photo = {
        "lat": 47.0,
        "lon": -97.0,
        "row": 8.0,
        "col": 8.0,
        "time": None,
        "license": "cc-by-2.0",
        "owner": "someone",
        "text": None,
        "image": None,
        "url": None,
        "embedding": [0.5, -0.5],
        "text_embedding": None,
    }
    rows = [
        {
            "tile_id": f"naip-{i}",
            "image": {"bytes": _png(i), "path": None},
            "bands": None,
            "band_names": ["red", "green", "blue"],
            "crs": "EPSG:26914",
            "transform": [1.0, 0.0, 500000.0, 0.0, -1.0, 5200000.0],
            "gsd": 1.0,
            "sensor": "naip",
            "acquisition_date": "2020-07-01",
            "center_lat": 47.0,
            "center_lon": -97.0,
            "raster": "naip.tif",
            "photos": [{**photo, "photo_id": f"p{i}"}],
        }
        for i in range(2)
    ]
    (folder / "data").mkdir(parents=True)
    pq.write_table(pairs_table(rows), folder / "data" / "train-00000-of-00001.parquet")
    (folder / "README.md").write_text(
        "---\nlicense: other\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
        "    path: data/train-*.parquet\n---\n\n# tiny pairs\n"
    )
    (folder / "build_report.json").write_text(json.dumps({"tiles": {"kept": 2}}))
    (folder / "_build").mkdir()
    (folder / "_build" / "plan.json").write_text("{}")


@pytest.fixture(scope="module")
def pushed(hub_server, tmp_path_factory):
    """Push the tiny model (graft push CLI), the pairs dataset (graft push --dataset) and a plain push_to_hub."""
    root = tmp_path_factory.mktemp("hub")
    model = tiny_graft_model(seed=0)
    model_dir, dataset_dir = root / "model", root / "pairs"
    model.save_pretrained(model_dir)
    graft_hf.build_processor(model.config).save_pretrained(model_dir)
    _write_pairs(dataset_dir)
    eval_json = root / "eval.json"
    eval_json.write_text(
        json.dumps(
            [
                {
                    "task": "zero-shot-image-classification",
                    "dataset": {"name": "EuroSAT", "type": "eurosat", "split": "test"},
                    "metrics": [{"type": "accuracy", "value": 0.125, "name": "top-1 accuracy"}],
                }
            ]
        )
    )
    torch.manual_seed(1)
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = {
            "pixel_values": pixel_values,
            "image_embeds": model.get_image_features(pixel_values),
            "patch_embeds": model.get_patch_features(pixel_values),
        }
    torch.save(ref, root / "ref.pt")
    before = {"model": _digest(model_dir), "pairs": _digest(dataset_dir)}
    env = online_env(hub_server, root / "push-home")
    run_python(_PUSH, env, str(model_dir), str(eval_json), str(dataset_dir), DATASET_ID, PLAIN_NAME)
    return {"root": root, "model_dir": model_dir, "dataset_dir": dataset_dir, "before": before, "ref": ref}


def test_push_is_one_commit_with_weights_config_code_processor_and_card(hub_server, pushed):
    repo_id = f"{USER}/{MODEL_NAME}"
    files = hub_server.files(repo_id)
    assert hub_server.num_commits(repo_id) == 2  # repo creation + exactly one upload commit
    expected = {
        "model.safetensors",
        "config.json",
        "configuration_graft.py",
        "modeling_graft.py",
        "image_processing_graft.py",
        "processing_graft.py",
        "processor_config.json",
        "tokenizer_config.json",
        "README.md",
    }
    assert expected <= set(files)
    assert not any(name.endswith((".bin", ".pt")) for name in files)
    config = json.loads(files["config.json"])
    assert config["auto_map"]["AutoModel"] == "modeling_graft.GraftModel"
    metadata = check_model_card(files["README.md"].decode())
    assert metadata["pipeline_tag"] == "zero-shot-image-classification"
    assert metadata["datasets"] == [DATASET_ID]
    result = metadata["model-index"][0]["results"][0]
    assert result["dataset"]["type"] == "eurosat" and result["metrics"][0]["value"] == 0.125
    # The weights went through git-LFS, the small text files as regular blobs.
    assert hashlib.sha256(files["model.safetensors"]).hexdigest() in hub_server.state.lfs_objects
    assert not hub_server.state.unhandled, hub_server.state.unhandled


def test_push_of_model_object_has_the_same_files(hub_server, pushed):
    from_folder = hub_server.files(f"{USER}/{MODEL_NAME}")
    from_object = hub_server.files(f"{USER}/{MODEL_NAME}-object")
    assert set(from_object) == set(from_folder)
    assert from_object["model.safetensors"] == from_folder["model.safetensors"]
    assert "# graft-naip-vit-w32-d2-p8-object" in from_object["README.md"].decode()


def test_push_leaves_local_folders_untouched(pushed):
    assert _digest(pushed["model_dir"]) == pushed["before"]["model"]
    assert _digest(pushed["dataset_dir"]) == pushed["before"]["pairs"]


def test_dataset_push_skips_build_bookkeeping(hub_server, pushed):
    files = hub_server.files(DATASET_ID, repo_type="dataset")
    assert set(files) == {".gitattributes", "README.md", "build_report.json", "data/train-00000-of-00001.parquet"}
    assert hub_server.num_commits(DATASET_ID, repo_type="dataset") == 2


def test_fresh_process_loads_model_processor_and_streams_dataset(hub_server, pushed, clip_tokenizer):
    env = online_env(hub_server, pushed["root"] / "pull-home")
    proc = run_python(
        _PULL, env, f"{USER}/{MODEL_NAME}", f"{USER}/{PLAIN_NAME}", DATASET_ID, str(pushed["root"] / "ref.pt")
    )
    out = _result(proc.stdout)
    # Without graft_hf (blocked on sys.meta_path): the repo's own model files as remote code.
    assert out["remote_class"].startswith("transformers_modules"), out["remote_class"]
    assert out["remote_processor"].startswith("transformers_modules"), out["remote_processor"]
    assert out["remote_pixels"] == [1, 3, 32, 32]
    assert out["blocked"] == []
    # With graft_hf: the registered classes, for the graft push and for transformers' plain push_to_hub.
    for key in ("graft", "plain"):
        assert out[f"{key}_class"] == "graft_hf.modeling.modeling_graft.GraftModel"
    for key in ("remote", "graft", "plain"):
        assert out[f"{key}_image"] == 0.0 and out[f"{key}_patch"] == 0.0, out
    for key in ("snapshot", "plain_snapshot"):
        assert {"README.md", "model.safetensors", "modeling_graft.py", "processor_config.json"} <= set(out[key])
    assert out["processor"] == "GraftProcessor"
    assert out["input_ids"] == clip_tokenizer("farmland", padding="max_length", max_length=77)["input_ids"]
    assert out["tiles"] == ["naip-0", "naip-1"] and out["image_size"] == [16, 16] and out["photo"] == "p0"
    assert not hub_server.state.unhandled, hub_server.state.unhandled


def test_bad_token_names_hf_token_and_login(hub_server, online):
    folder = saved_model(online / "model")
    before = _digest(folder)
    with pytest.raises(HubPushError, match=r"creating model repository.*HTTP 401.*HF_TOKEN.*hf auth login"):
        push_model(folder, MODEL_NAME, endpoint=hub_server.endpoint, token="wrong-token")
    assert _digest(folder) == before


def test_missing_token_fails_before_any_request(hub_server, online):
    folder = saved_model(online / "model")
    requests = len(hub_server.state.requests)
    with pytest.raises(HubPushError, match=r"no Hugging Face token.*HF_TOKEN.*hf auth login"):
        push_model(folder, MODEL_NAME, endpoint=hub_server.endpoint)
    assert len(hub_server.state.requests) == requests


def test_unreachable_endpoint_names_endpoint_option(online):
    folder = saved_model(online / "model")
    before = _digest(folder)
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(HubPushError, match=r"cannot reach the Hub at http://127\.0\.0\.1.*endpoint="):
        push_model(folder, MODEL_NAME, endpoint=endpoint, token=HUB_TOKEN)
    assert _digest(folder) == before


def test_offline_mode_is_named(tmp_path):
    folder = saved_model(tmp_path / "model")  # this process runs with HF_HUB_OFFLINE=1
    with pytest.raises(HubPushError, match="HF_HUB_OFFLINE"):
        push_model(folder, MODEL_NAME, endpoint="http://127.0.0.1:9", token=HUB_TOKEN)


def test_name_contradicting_config_is_rejected_before_network(tmp_path):
    folder = saved_model(tmp_path / "model")
    with pytest.raises(ValueError, match=r"expected 'graft-naip-vit-w32-d2-p8'"):
        push_model(folder, "me/graft-sentinel2-vitb16", endpoint="http://127.0.0.1:9", token=HUB_TOKEN)


def test_incomplete_model_folder_is_rejected(tmp_path):
    folder = saved_model(tmp_path / "model")
    (folder / "modeling_graft.py").unlink()
    from graft_hf.hub import stage_model_files

    with pytest.raises(HubPushError, match=r"missing \['modeling_graft.py'\]"):
        with stage_model_files(folder):
            pass


def test_real_pairs_build_without_card_gets_it_rendered_from_the_report(hub_server, online):
    """A `graft pairs build` folder on a real NAIP raster; README.md removed, so push renders it from the report."""
    raster = REPO_ROOT / ".." / "shared" / "data" / "naip-nd" / "m_4709963_se_14_1_20200831.tif"
    if not raster.is_file():
        pytest.skip(f"real NAIP raster not found at {raster} (../shared/data/naip-nd)")
    from rasterio.crs import CRS
    from rasterio.warp import transform

    from graft_hf.hub import push_dataset
    from graft_hf.pairs.builder import build_pairs
    from graft_hf.pairs.card import render_card
    from graft_hf.pairs.config import PairsBuildConfig

    xs, ys = [486500.0, 488500.0], [5206500.0, 5206500.0]
    lons, lats = transform(CRS.from_epsg(26914), CRS.from_epsg(4326), xs, ys)
    photos = pa.table({"photo_id": ["a", "b"], "lat": lats, "lon": lons, "license": ["CC0-1.0", "CC-BY-2.0"]})
    pq.write_table(photos, online / "photos.parquet")
    out = online / "build"
    config = PairsBuildConfig(
        photos=str(online / "photos.parquet"),
        output_dir=str(out),
        rasters=(str(raster),),
        crop_size=32,
        footprint_size=16,
        progress=False,
    )
    report = build_pairs(config)
    assert report["tiles"]["kept"] == 2
    (out / "README.md").unlink()
    before = _digest(out)
    result = push_dataset(out, "real-naip-pairs", endpoint=hub_server.endpoint, token=HUB_TOKEN)
    files = hub_server.files(result.repo_id, repo_type="dataset")
    assert files["README.md"].decode() == render_card(json.loads((out / "build_report.json").read_text()))
    assert any(name.startswith("data/") and name.endswith(".parquet") for name in files)
    assert not any(name.startswith("_build/") for name in files)
    assert _digest(out) == before  # the rendered card went to the Hub, not into the build folder


def test_dataset_card_check():
    card = "---\nlicense: other\nconfigs:\n- config_name: default\n  data_files: data/*.parquet\n---\n"
    assert check_dataset_card(card)["license"] == "other"
    with pytest.raises(ValueError, match="missing metadata key 'configs'"):
        check_dataset_card("---\nlicense: other\n---\n")


def test_staging_keeps_the_folders_card_unless_card_options_are_given(tmp_path):
    from graft_hf.hub import stage_model_files

    model = tiny_graft_model()
    model.save_pretrained(tmp_path)
    own = str(render_model_card(model.config, ModelCardInfo(repo_id="me/x", converted_from="the authors' file")))
    (tmp_path / "README.md").write_text(own)
    with stage_model_files(tmp_path, repo_id="me/graft-naip-vit-w32-d2-p8") as files:
        assert files["README.md"].read_text() == own
    with stage_model_files(tmp_path, eval_results=EVAL, repo_id="me/graft-naip-vit-w32-d2-p8") as files:
        text = files["README.md"].read_text()
    assert text != own and check_model_card(text)["model-index"][0]["name"] == "me/graft-naip-vit-w32-d2-p8"
    assert (tmp_path / "README.md").read_text() == own


def test_foreign_readme_in_folder_is_reported_with_the_fix(tmp_path):
    from graft_hf.hub import stage_model_files

    tiny_graft_model().save_pretrained(tmp_path)
    (tmp_path / "README.md").write_text("# my notes\n")
    with pytest.raises(ValueError, match=r"README.md: model card must start with.*card="):
        with stage_model_files(tmp_path):
            pass


def test_model_staging_skips_links_and_refuses_pickles(tmp_path):
    import os
    import pickle

    from graft_hf.hub import stage_model_files

    folder = saved_model(tmp_path / "model")
    os.symlink("/etc/passwd", folder / "passwd.txt")
    with stage_model_files(folder, repo_id="me/graft-naip-vit-w32-d2-p8") as files:
        assert "passwd.txt" not in files and all(not p.is_symlink() for p in files.values())
        assert files.skipped == {"passwd.txt": "symbolic link (links are never followed)"}
    (folder / "optimizer.pkl").write_bytes(pickle.dumps({"lr": 1e-5}))
    with pytest.raises(HubPushError, match=r"refusing to push pickle files \['optimizer.pkl'\]"):
        with stage_model_files(folder):
            pass
    (folder / "optimizer.pkl").unlink()
    (folder / "extra.json").write_bytes(pickle.dumps({"lr": 1e-5}, protocol=4))  # a pickle by content
    with pytest.raises(HubPushError, match=r"pickle files \['extra.json'\]"):
        with stage_model_files(folder):
            pass


def test_a_cache_snapshot_of_links_is_explained(tmp_path):
    import os

    from graft_hf.hub import stage_model_files

    real = saved_model(tmp_path / "blobs")
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    for path in real.iterdir():
        os.symlink(path, snapshot / path.name)  # how the Hugging Face cache lays out a snapshot
    with pytest.raises(HubPushError, match=r"are symbolic links, which are never uploaded"):
        with stage_model_files(snapshot):
            pass


def test_dataset_push_uploads_regular_files_only(hub_server, online):
    import os

    from graft_hf.hub import push_dataset

    folder = online / "pairs"
    _write_pairs(folder)
    secret = online / "secret.txt"
    secret.write_text("token")
    os.symlink(secret, folder / "notes.txt")
    os.symlink(folder / "data" / "train-00000-of-00001.parquet", folder / "data" / "train-00001-of-00001.parquet")
    result = push_dataset(folder, "linked-pairs", endpoint=hub_server.endpoint, token=HUB_TOKEN)
    files = hub_server.files(result.repo_id, repo_type="dataset")
    assert set(files) == {".gitattributes", "README.md", "build_report.json", "data/train-00000-of-00001.parquet"}
    assert result.skipped["notes.txt"].startswith("symbolic link")
    assert result.skipped["data/train-00001-of-00001.parquet"].startswith("symbolic link")
    assert result.skipped["_build/plan.json"].startswith("ignored")
