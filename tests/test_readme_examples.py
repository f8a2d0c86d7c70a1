"""The README's Python examples run as written (with a tiny model and a real NAIP tile)."""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModel, AutoProcessor, pipeline

import graft_hf
from graft_hf.testing import tiny_graft_model
from tests.helpers.data import shared_data


def test_readme_examples(tmp_path):
    tile = str(shared_data("naip-nd", "m_4709963_se_14_1_20200831.tif"))
    saved = tiny_graft_model(seed=0)
    saved.save_pretrained(tmp_path)
    graft_hf.build_processor(saved.config).save_pretrained(tmp_path)

    model = AutoModel.from_pretrained(tmp_path)
    processor = AutoProcessor.from_pretrained(tmp_path)
    inputs = processor(text=["farmland", "a solar farm"], images=tile)
    probs = model(**inputs).logits_per_image.softmax(-1)
    assert probs.shape == (1, 2) and torch.allclose(probs.sum(-1), torch.ones(1))
    patches = model.get_patch_features(inputs["pixel_values"])
    assert patches.shape == (1, 4, 4, 16)
    assert pipeline("zero-shot-image-classification", model=str(tmp_path)) is not None

    from graft_hf.index import EmbeddingIndex
    from graft_hf.tasks import ObjectDetector, VisualQuestionAnswerer, ZeroShotSegmenter

    seg = ZeroShotSegmenter(model, processor.tokenizer).segment(tile, ["farmland", "water", "road"])
    seg.overlay().save(tmp_path / "segmentation.png")
    detector = ObjectDetector(model, processor.tokenizer)
    det = detector.detect(tile, "solar farm", gsd=1.0)
    assert det is not None
    answer = VisualQuestionAnswerer(detector).answer(tile, "How many buildings are there?", gsd=1.0)
    assert answer.text

    from graft_hf.tasks import LLMPlanner
    from graft_hf.tasks.vqa import ChainPlanner, RuleBasedPlanner

    planner = ChainPlanner([RuleBasedPlanner(), LLMPlanner.from_openai("http://127.0.0.1:8080/v1", "qwen2.5-coder")])
    qa = VisualQuestionAnswerer(ObjectDetector(model, processor.tokenizer), planner)
    answer = qa.answer(tile, "Is there a parking lot south of the stadium?", gsd=1.0)
    assert answer.text in ("yes", "no") and ".below(other)" in answer.program and answer.stats.steps > 0
    embeds = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    index = EmbeddingIndex.from_embeddings(
        embeds, tile_id=[str(i) for i in range(50)], lat=np.zeros(50), lon=np.zeros(50)
    )
    assert index.search(embeds[3], 1)[0].tile_id == "3"
