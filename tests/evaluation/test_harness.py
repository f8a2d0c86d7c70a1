"""The evaluation harness end to end: tiny GRAFT on real EuroSAT (report files, card), multi-label BigEarthNet
through the Sentinel-2 processor, prompt template sets.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from graft_hf import build_processor
from graft_hf.evaluation.datasets import load_eval_dataset
from graft_hf.evaluation.harness import CLIP_EUROSAT_TEMPLATES, evaluate_model, resolve_templates
from graft_hf.hub.cards import load_eval_results, render_model_card
from graft_hf.testing import tiny_graft_model
from tests.helpers.data import BIGEARTHNET, needs_ben, needs_eurosat


@needs_eurosat
def test_tiny_graft_on_real_eurosat_end_to_end(eurosat, tmp_path):
    model = tiny_graft_model(seed=1)
    processor = build_processor(model.config)
    report = evaluate_model(model, eurosat, templates="clip-eurosat", progress=False, keep_embeddings=True)
    # The slow obvious reference: the model's own zero-shot method on every image.
    probs = model.zero_shot_classify(
        [eurosat.image(i) for i in range(len(eurosat))], eurosat.prompt_names, processor, list(CLIP_EUROSAT_TEMPLATES)
    )
    expected_top1 = float((probs.argmax(-1).numpy() == eurosat.labels).mean())
    assert report.classification.top_k["top1"] == pytest.approx(expected_top1)
    assert report.classification.confusion_matrix.sum() == 40
    assert report.image_embeds.shape == (40, 16)
    mean = report.retrieval.mean()
    assert set(mean) == {"mAP", "mAP@100", "mAP@20", "recall@1", "recall@5", "recall@10"}
    assert 0.0 < mean["mAP"] <= 1.0

    paths = report.write(tmp_path / "report", grid_queries=4, grid_k=5)
    results = load_eval_results(paths["json"])
    types = {(r.task_type, r.metric_type) for r in results}
    assert ("zero-shot-image-classification", "accuracy") in types and ("text-to-image-retrieval", "mAP@20") in types
    accuracy = next(r for r in results if r.metric_type == "accuracy")
    assert accuracy.metric_value == pytest.approx(expected_top1) and accuracy.dataset_name == "EuroSAT"
    data = json.loads(paths["json"].read_text())
    assert data["per_class"]["Forest"]["prompt_name"] == "forest"
    assert sum(row["support"] for row in data["per_class"].values()) == 40
    assert np.array(data["confusion_matrix"]).shape == (10, 10)
    markdown = paths["markdown"].read_text()
    assert (
        "| Zero-shot classification | top-1 accuracy |" in markdown and "| AnnualCrop | annual crop land |" in markdown
    )
    assert "model-index" in paths["model_index"].read_text()
    card = str(render_model_card(model.config, eval_results=results))
    assert "text-to-image-retrieval" in card
    with Image.open(paths["confusion_matrix"]) as image:
        assert image.format == "PNG"
    with Image.open(paths["retrieval_grid"]) as grid:
        one_row = grid.height // 4
        assert grid.width > 5 * 96 and one_row >= 96


@needs_ben
def test_multilabel_bigearthnet_through_the_sentinel2_processor(tmp_path):
    model = tiny_graft_model(seed=5)  # a NAIP model; the harness reads the 12-band stacks with the S2 preset
    data = load_eval_dataset(BIGEARTHNET)
    report = evaluate_model(model, data, progress=False)
    assert report.classification is None and report.multilabel is not None
    assert report.multilabel.threshold == pytest.approx(1 / data.num_classes)
    assert report.support.tolist() == data.labels.sum(0).tolist()
    paths = report.write(tmp_path / "ben", grid_k=3)
    assert "confusion_matrix" not in paths and paths["retrieval_grid"].is_file()
    results = load_eval_results(paths["json"])
    assert {r.metric_name for r in results} >= {"multi-label mAP", "micro F1", "retrieval mAP"}


def test_template_resolution(tmp_path):
    assert resolve_templates(None)[0] == "a satellite image of {}."
    assert resolve_templates("clip-eurosat") == CLIP_EUROSAT_TEMPLATES
    assert resolve_templates("an image of {}") == ("an image of {}",)
    path = tmp_path / "t.txt"
    path.write_text("# mine\na view of {}\n\nfarmland near {}\n")
    assert resolve_templates(path) == ("a view of {}", "farmland near {}")
    (tmp_path / "t.json").write_text(json.dumps({"templates": ["x {}"]}))
    assert resolve_templates(str(tmp_path / "t.json")) == ("x {}",)
    with pytest.raises(ValueError, match="unknown template set 'sattelite'"):
        resolve_templates("sattelite")
