"""Model cards, evaluation JSON, repo names and `graft push --dry-run`: all local, no network."""

from __future__ import annotations

import json

import pytest
import yaml
from huggingface_hub import ModelCard

from graft_hf.hub import (
    ModelCardInfo,
    check_dataset_card,
    check_model_card,
    load_eval_results,
    model_repo_name,
    render_model_card,
    validate_model_repo_id,
    validate_repo_id,
)
from graft_hf.hub.cards import REQUIRED_MODEL_CARD_SECTIONS
from graft_hf.modeling import GraftConfig
from graft_hf.testing import tiny_graft_model
from graft_hf_cli import main

EVAL = [
    {
        "task": "zero-shot-image-classification",
        "task_name": "Zero-shot classification",
        "dataset": {"name": "EuroSAT", "type": "eurosat", "split": "test"},
        "metrics": [{"type": "accuracy", "value": 0.6172, "name": "top-1"}, {"type": "accuracy", "value": 0.9}],
    },
    {
        "task": "image-retrieval",
        "dataset": {"name": "NAIP-ND", "type": "naip-nd"},
        "metrics": [{"type": "map", "value": 0.31, "name": "mAP@100"}],
    },
]


def _front_matter(text: str) -> dict:
    return yaml.safe_load(text.split("---\n")[1])


def test_rendered_card_has_metadata_model_index_and_sections():
    config = GraftConfig.vit_b16(sensor="sentinel2")
    info = ModelCardInfo(repo_id="me/graft-sentinel2-vitb16", datasets=["me/pairs-s2"], training={"epochs": 10})
    text = str(render_model_card(config, info, load_eval_results({"results": EVAL}), logit_scale=4.6052))
    metadata = check_model_card(text)
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "zero-shot-image-classification"
    assert {"remote-sensing", "clip", "sentinel-2"} <= set(metadata["tags"])
    assert metadata["base_model"] == "openai/clip-vit-base-patch16"
    assert metadata["datasets"] == ["me/pairs-s2"]
    # model-index round-trips through huggingface_hub into the same results.
    parsed = ModelCard(text).data.eval_results
    assert [(r.dataset_type, r.metric_name, r.metric_value) for r in parsed] == [
        ("eurosat", "top-1", 0.6172),
        ("eurosat", None, 0.9),
        ("naip-nd", "mAP@100", 0.31),
    ]
    assert "| Zero-shot classification | EuroSAT | test | top-1 | 0.6172 |" in text
    assert "| zero-shot logit scale | 100 (stored in log space: 4.6052) (CLIP's, used for text-image logits) |" in text
    assert "| training temperature | 0.07 (logit scale 14.29) |" in text
    assert 'AutoModel.from_pretrained("me/graft-sentinel2-vitb16", trust_remote_code=True)' in text
    assert "B04, B03, B02" in text and "10 m/px" in text


def test_card_without_results_or_patch_head_still_checks():
    config = GraftConfig.vit_b32(use_patch_head=False)
    text = str(render_model_card(config))
    metadata = check_model_card(text)
    assert "model-index" not in metadata and metadata["base_model"] == "openai/clip-vit-base-patch32"
    assert "# graft-naip-vitb32" in text and "No evaluation results" in text
    assert "get_patch_features" not in text


def test_check_model_card_reports_every_problem():
    text = str(render_model_card(GraftConfig.vit_b16()))
    broken = text.replace("pipeline_tag: zero-shot-image-classification\n", "").replace("## Limitations", "## Notes")
    with pytest.raises(ValueError, match=r"missing metadata key 'pipeline_tag'.*missing section '## Limitations'"):
        check_model_card(broken)
    with pytest.raises(ValueError, match="does not parse"):
        check_model_card("---\nlicense: [unclosed\n---\n" + "\n".join(REQUIRED_MODEL_CARD_SECTIONS))


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ([{"dataset": {"name": "x", "type": "x"}, "metrics": [{"type": "a", "value": 1}]}], r"#0 has no 'task'"),
        ([{"task": "t", "dataset": {"name": "x"}, "metrics": []}], r"#0 dataset has no 'type'"),
        ([{"task": "t", "dataset": {"name": "x", "type": "x"}, "metrics": [{"type": "a", "value": "high"}]}], "finite"),
        ([{"task": "t", "dataset": {"name": "x", "type": "x"}, "metrics": []}], "non-empty list"),
        ({"scores": []}, r"has no 'results'"),
    ],
)
def test_bad_evaluation_json_names_the_field(results, message):
    with pytest.raises(ValueError, match=message):
        load_eval_results(results)


def test_eval_results_from_file(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(EVAL))
    assert [r.metric_value for r in load_eval_results(path)] == [0.6172, 0.9, 0.31]


def test_repo_names_follow_sensor_and_patch_size():
    assert model_repo_name(GraftConfig.vit_b16()) == "graft-naip-vitb16"
    assert model_repo_name(GraftConfig.vit_b32(sensor="sentinel2")) == "graft-sentinel2-vitb32"
    assert model_repo_name(GraftConfig.vit_b16(sensor="sentinel2"), suffix="pixel") == "graft-sentinel2-vitb16-pixel"
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
    for bad in ("a/b/c", "org/-name", "org/na--me", "org/" + "x" * 97, "org/na me"):
        with pytest.raises(ValueError):
            validate_repo_id(bad)


def test_dataset_card_check():
    card = "---\nlicense: other\nconfigs:\n- config_name: default\n  data_files: data/*.parquet\n---\n"
    assert check_dataset_card(card)["license"] == "other"
    with pytest.raises(ValueError, match="missing metadata key 'configs'"):
        check_dataset_card("---\nlicense: other\n---\n")


def test_push_dry_run_stages_everything_without_network(tmp_path, capsys):
    model = tiny_graft_model()
    model.save_pretrained(tmp_path / "model")  # no processor, no card: both are added in the staging folder
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(json.dumps(EVAL))
    code = main(["push", str(tmp_path / "model"), "--namespace", "me", "--eval", str(eval_json), "--dry-run"])
    assert code == 0
    out = capsys.readouterr().out
    staged = {line.split("\t")[0] for line in out.splitlines() if "\t" in line}
    assert {"README.md", "processor_config.json", "model.safetensors", "modeling_graft.py"} <= staged
    assert "would be pushed to me/graft-naip-vit-w32-d2-p8" in out
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "config.json",
        "configuration_graft.py",
        "model.safetensors",
        "modeling_graft.py",
    ]


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


TRAIN_CONFIG = {
    "task": "pixel",
    "seed": 0,
    "data": {"path": "me/graft-naip-pairs", "split": "train", "max_photos": 25, "rotate": True},
    "teacher": {"name_or_path": "openai/clip-vit-base-patch16"},
    "loss": {"target": "pixel", "temperature": 0.05, "text_weight": 0.5},
    "optim": {"lr": 1e-5, "weight_decay": 0.01},
    "train": {"batch_size": 256, "epochs": 10, "max_steps": None},
}


def test_card_info_from_train_config(tmp_path):
    from graft_hf.hub import card_info_from_train_config

    path = tmp_path / "train_config.yaml"
    path.write_text(yaml.safe_dump(TRAIN_CONFIG))
    info = card_info_from_train_config(path, repo_id="me/graft-naip-vitb16-pixel")
    assert info.datasets == ["me/graft-naip-pairs"] and info.base_model == "openai/clip-vit-base-patch16"
    assert info.training_temperature == 0.05
    assert "max steps" not in info.training  # null values are left out
    text = str(render_model_card(GraftConfig.vit_b16(), info))
    check_model_card(text)
    assert "| learning rate | 1e-05 |" in text and "| level (image / pixel) | pixel |" in text
    assert "| training temperature | 0.05 (logit scale 20) |" in text
    assert "`train` split of [`me/graft-naip-pairs`]" in text
    local = card_info_from_train_config({**TRAIN_CONFIG, "data": {"path": str(tmp_path)}})
    assert local.datasets == [] and "a local pairs build" in local.training_data


def test_foreign_readme_in_folder_is_reported_with_the_fix(tmp_path):
    from graft_hf.hub import stage_model_files

    tiny_graft_model().save_pretrained(tmp_path)
    (tmp_path / "README.md").write_text("# my notes\n")
    with pytest.raises(ValueError, match=r"README.md: model card must start with.*card="):
        with stage_model_files(tmp_path):
            pass


def test_cli_push_names_the_flags(tmp_path, capsys):
    tiny_graft_model().save_pretrained(tmp_path)
    (tmp_path / "README.md").write_text("# my notes\n")
    assert main(["push", str(tmp_path), "me/graft-naip-vit-w32-d2-p8", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "graft push: error: " in err and "--eval / --license / --train-config" in err and "--card FILE" in err
    assert main(["push", str(tmp_path), "me/graft-sentinel2-vitb16", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "expected 'graft-naip-vit-w32-d2-p8'" in err and "pass --allow-any-name" in err
    assert main(["push", str(tmp_path), "me/graft-sentinel2-vitb16", "--dataset"]) == 1
    assert "no parquet shards" in capsys.readouterr().err
