"""Model cards and evaluation JSON: rendered with metadata and model-index, checked, filled from the training and
evaluation records and saying only what they say; all local, no network.
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
    info = ModelCardInfo(
        repo_id="me/graft-sentinel2-vitb16",
        datasets=["me/pairs-s2"],
        training={"epochs": 10},
        base_model="openai/clip-vit-base-patch16",
        training_temperature=0.07,
    )
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
    # Plain result entries do not say on how many images or with which templates: the card says so.
    assert "| Zero-shot classification | EuroSAT | test | not recorded | not recorded | top-1 | 0.6172 |" in text
    assert "| zero-shot logit scale | 100 (stored in log space: 4.6052) (used for text-image logits) |" in text
    assert "| training temperature | 0.07 (logit scale 14.29) |" in text
    assert 'AutoModel.from_pretrained("me/graft-sentinel2-vitb16", trust_remote_code=True)' in text
    assert "B04, B03, B02" in text and "10 m/px" in text


def test_card_without_records_claims_nothing():
    config = GraftConfig.vit_b32(use_patch_head=False)
    text = str(render_model_card(config))
    metadata = check_model_card(text)
    assert "model-index" not in metadata and "base_model" not in metadata  # the architecture alone proves no origin
    assert "# graft-naip-vitb32" in text and "No evaluation results" in text
    assert "get_patch_features" not in text
    assert "holds no record of how its satellite image encoder was trained" in text
    for row in ("teacher", "initialisation", "targets", "ground observations", "training temperature"):
        assert f"| {row} | not recorded |" in text
    assert "Initialised from CLIP" not in text and "CLIP's frozen text encoder" not in text


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


def test_every_figure_says_its_images_and_templates(tmp_path):
    """`graft eval`'s results.json records images and templates once for the file; an entry may override them."""
    templates = ["a centered satellite photo of {}."]
    own = {**EVAL[1], "dataset": {**EVAL[1]["dataset"], "num_images": 57}, "templates": ["{}", "a photo of {}."]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"dataset": {"num_images": 200}, "templates": templates, "results": [EVAL[0], own]}))
    results = load_eval_results(path)
    assert [(r.num_images, r.templates) for r in results] == [(200, templates)] * 2 + [(57, ["{}", "a photo of {}."])]
    text = str(render_model_card(GraftConfig.vit_b16(), ModelCardInfo(repo_id="me/m"), results))
    assert "| Zero-shot classification | EuroSAT | test | 200 | 1 (set 1) | top-1 | 0.6172 |" in text
    assert "| image-retrieval | NAIP-ND | not recorded | 57 | 2 (set 2) | mAP@100 | 0.31 |" in text
    assert "Template set 1: `a centered satellite photo of {}.`" in text
    assert "Template set 2: `{}`, `a photo of {}.`" in text
    assert ModelCard(text).data.eval_results[0].metric_value == 0.6172  # model-index unchanged by the extra fields
    for bad, message in (({"num_images": 0}, "positive integer"), ({"num_images": "all"}, "positive integer")):
        with pytest.raises(ValueError, match=message):
            load_eval_results({"dataset": bad, "results": EVAL})
    with pytest.raises(ValueError, match="one '{}' each"):
        load_eval_results({"templates": ["no placeholder"], "results": EVAL})


TRAIN_CONFIG = {
    "task": "pixel",
    "seed": 0,
    "data": {"path": "me/graft-naip-pairs", "split": "train", "max_photos": 25, "rotate": True},
    "teacher": {"name_or_path": "openai/clip-vit-base-patch16"},
    "student": {"init": "from_clip"},
    "loss": {"target": "image", "temperature": 0.05, "text_weight": 0.5},
    "optim": {"lr": 1e-5, "weight_decay": 0.01},
    "train": {"batch_size": 256, "epochs": 10, "max_steps": None},
}


def test_card_info_from_train_config(tmp_path):
    from graft_hf.hub import card_info_from_train_config

    path = tmp_path / "train_config.yaml"
    path.write_text(yaml.safe_dump(TRAIN_CONFIG))
    (tmp_path / "metrics.jsonl").write_text('{"step": 20, "loss": 3.1}\n{"step": 40, "loss": 2.9}\n{"step": 6')
    info = card_info_from_train_config(path, repo_id="me/graft-naip-vitb16-pixel")
    assert info.datasets == ["me/graft-naip-pairs"] and info.base_model == "openai/clip-vit-base-patch16"
    assert (info.teacher, info.initialisation, info.targets) == ("openai/clip-vit-base-patch16", "from_clip", "image")
    assert info.training_temperature == 0.05 and info.training_steps == 40  # the log's last complete record
    assert info.data is None  # a Hub dataset is not looked into: not recorded
    assert "max steps" not in info.training and "text loss weight" not in info.training  # null / unused values
    config = GraftConfig.vit_b16(text_tower_name="openai/clip-vit-base-patch16")
    text = str(render_model_card(config, info))
    check_model_card(text)
    assert "| learning rate | 1e-05 |" in text and "| level (image / pixel) | pixel |" in text
    assert "| training temperature | 0.05 (logit scale 20) |" in text
    assert "`train` split of [`me/graft-naip-pairs`]" in text
    assert "started from a copy of the teacher CLIP (`openai/clip-vit-base-patch16`)" in text
    assert "The training log records 40 optimizer steps." in text
    assert "| ground observations | not recorded |" in text
    local = card_info_from_train_config({**TRAIN_CONFIG, "data": {"path": str(tmp_path)}})
    assert local.datasets == [] and "a local pairs build" in local.training_data and local.data is None


def test_alt_text_card_says_what_the_quickstart_did(tmp_path):
    """A scratch student trained on simulated observations' MiniLM text embeddings: no CLIP claim anywhere."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from graft_hf.hub import card_info_from_train_config

    pairs = tmp_path / "pairs"
    pairs.mkdir()
    DatasetCard.from_template(
        DatasetCardData(tags=["graft", "simulated"]), template_str="---\n{{ card_data }}\n---\n"
    ).save(pairs / "README.md")
    record = {
        "task": "image",
        "data": {"path": str(pairs)},
        "teacher": {"name_or_path": None},
        "student": {"init": "scratch", "text_tower": str(tmp_path / "all-MiniLM-L6-v2")},
        "loss": {"target": "text", "temperature": 0.07},
    }
    info = card_info_from_train_config(record)
    assert (info.teacher, info.initialisation, info.targets, info.data) == (
        "all-MiniLM-L6-v2",
        "scratch",
        "text",
        "simulated",
    )
    assert info.base_model is None
    text_config = {"model_type": "bert", "hidden_size": 384, "num_attention_heads": 12, "num_hidden_layers": 1}
    config = GraftConfig(
        text_config=text_config,
        projection_dim=384,
        text_pooling="mean",
        text_normalize=True,
        use_text_projection=False,
        text_tower_name="all-MiniLM-L6-v2",
        sensor="rgb",
        use_patch_head=False,
    )
    text = str(render_model_card(config, info))
    metadata = check_model_card(text)
    assert "clip" not in metadata["tags"] and "simulated-data" in metadata["tags"] and "base_model" not in metadata
    assert "| text tower | `all-MiniLM-L6-v2` (bert text encoder), frozen, shipped with the model |" in text
    assert "| text pooling | attention-masked mean, no projection, L2-normalised |" in text
    assert "| initialisation | random weights (trained from scratch) |" in text
    assert "| ground observations | simulated |" in text and "Simulated ground observations, not photos" in text
    assert "text embeddings of the ground observations" in text
    for claim in ("Initialised from CLIP", "CLIP's frozen text encoder", "initialised from CLIP", "teacher CLIP"):
        assert claim not in text


def test_scratch_model_without_a_text_tower_source_says_its_text_queries_mean_nothing():
    info = ModelCardInfo(initialisation="scratch", targets="text", teacher="all-MiniLM-L6-v2")
    text = str(render_model_card(GraftConfig.vit_b16(), info))
    check_model_card(text)
    assert "with random weights (no record names a source for it): text queries through it are not meaningful" in text
