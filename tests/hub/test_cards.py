"""Model cards and evaluation JSON: rendered with metadata and model-index, checked, filled from a train config; all
local, no network.
"""

from __future__ import annotations

import json

import pytest
import yaml
from huggingface_hub import ModelCard

from graft_hf.hub import ModelCardInfo, check_model_card, load_eval_results, render_model_card
from graft_hf.hub.cards import REQUIRED_MODEL_CARD_SECTIONS
from graft_hf.modeling import GraftConfig
from tests.helpers.hub_inputs import EVAL


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
