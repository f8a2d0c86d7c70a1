"""GraftTextTower and GRAFT models with a BERT-style text tower: pooling against the slow obvious computation,
config round trips (old CLIP-text configs load unchanged), the matching tokenizer through AutoProcessor, the
zero-shot pipeline, and the same model as remote code without graft_hf.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from PIL import Image
from torch import nn
from transformers import AutoConfig, AutoModel, AutoProcessor, BertConfig, BertModel, BertTokenizer, pipeline

import graft_hf
from graft_hf.modeling import GraftConfig, GraftModel, GraftProcessor, GraftTextTower
from graft_hf.testing import TINY_VISION, TINY_VOCAB, tiny_graft_model

TEXTS = ["a satellite photo of a river .", "forest", "the road between crop fields and houses"]
BERT = {"model_type": "bert", "vocab_size": len(TINY_VOCAB), "hidden_size": 16, "num_hidden_layers": 1}
BERT_GRAFT = {
    "vision_config": {**TINY_VISION, "projection_dim": 16},
    "text_config": {**BERT, "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 64},
    "projection_dim": 16,
    "text_pooling": "mean",
    "text_normalize": True,
    "use_text_projection": False,
    "text_tower_name": "tiny-bert",
    "use_patch_head": False,
}


@pytest.fixture(scope="module")
def tokenizer() -> BertTokenizer:
    return BertTokenizer(vocab={token: i for i, token in enumerate(TINY_VOCAB)}, model_max_length=64)


@pytest.fixture(scope="module")
def bert_graft() -> GraftModel:
    torch.manual_seed(0)
    return GraftModel(GraftConfig(**BERT_GRAFT)).eval()


def _bert(seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    config = BertConfig(**{k: v for k, v in BERT.items() if k != "model_type"}, num_attention_heads=2)
    return BertModel(config).eval()


def test_pooling_modes_equal_the_slow_obvious_computation(tokenizer):
    encoder = _bert()
    tokens = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = encoder(**tokens)
    hidden, mask = out.last_hidden_state.double(), tokens["attention_mask"].double()
    mean = torch.stack([hidden[i, mask[i] > 0].mean(0) for i in range(len(TEXTS))])  # real tokens only
    expected = {"mean": mean, "cls": hidden[:, 0], "pooler": out.pooler_output.double()}
    for pooling, reference in expected.items():
        tower = GraftTextTower(encoder, pooling=pooling)
        torch.testing.assert_close(tower.encode(TEXTS, tokenizer).double(), reference, atol=1e-6, rtol=1e-6)
    normalised = GraftTextTower(encoder, pooling="mean", normalize=True).encode(TEXTS, tokenizer).double()
    torch.testing.assert_close(normalised, mean / mean.norm(dim=-1, keepdim=True), atol=1e-6, rtol=1e-6)
    projection = nn.Linear(16, 8, bias=False)
    projected = GraftTextTower(encoder, projection, pooling="mean").encode(TEXTS, tokenizer).double()
    torch.testing.assert_close(projected, mean @ projection.weight.double().T, atol=1e-6, rtol=1e-6)
    assert GraftTextTower(encoder, projection).output_dim == 8 and GraftTextTower(encoder).output_dim == 16
    with pytest.raises(ValueError, match="unknown text pooling"):
        GraftTextTower(encoder, pooling="max")


def test_tower_truncates_at_the_tokenizer_and_position_limits():
    encoder = _bert()
    vocab = {token: i for i, token in enumerate(TINY_VOCAB)}
    short, unbounded = BertTokenizer(vocab=vocab, model_max_length=4), BertTokenizer(vocab=vocab)
    tower = GraftTextTower(encoder, pooling="cls")
    assert tower.token_limit(short) == 4 and tower.token_limit(unbounded) == BertConfig().max_position_embeddings
    long_text = " ".join(["river"] * 2000)
    assert tower.encode([long_text], short).shape == (1, 16)  # 4 tokens, not 2002


def test_model_with_a_bert_tower_round_trips_with_its_tokenizer(tmp_path, bert_graft, tokenizer):
    processor = GraftProcessor(graft_hf.GraftImageProcessor.from_graft_config(bert_graft.config), tokenizer)
    bert_graft.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["text_config"]["model_type"] == "bert" and saved["text_pooling"] == "mean"
    assert not any(key.startswith("text_projection") for key in bert_graft.state_dict())
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded.text_model, BertModel) and loaded.text_projection is None
    assert not any(p.requires_grad for p in loaded.text_model.parameters())  # frozen as its config says
    loaded_processor = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded_processor.tokenizer).__name__.startswith("BertTokenizer")
    inputs = loaded_processor(text=TEXTS, images=torch.zeros(3, 32, 32, dtype=torch.uint8))
    assert "token_type_ids" in inputs  # BERT's segment ids reach the tower through forward
    with torch.no_grad():
        a, b = bert_graft(**inputs), loaded(**inputs)
    torch.testing.assert_close(a.logits_per_image, b.logits_per_image, rtol=0, atol=0)
    features = loaded.get_text_features(inputs["input_ids"], inputs["attention_mask"])
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(3))  # text_normalize
    classifier = pipeline("zero-shot-image-classification", model=str(tmp_path))
    scores = classifier(Image.new("RGB", (40, 40), (20, 120, 40)), candidate_labels=["forest", "river", "road"])
    assert sorted(s["label"] for s in scores) == ["forest", "river", "road"]
    assert sum(s["score"] for s in scores) == pytest.approx(1.0)


def test_configs_written_before_text_towers_load_unchanged(tmp_path, tiny_model, clip_tokenizer):
    """A config.json without the text-tower keys is a CLIP text tower with its projection, as it always was."""
    tiny_model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key in ("text_pooling", "text_normalize", "use_text_projection", "text_tower_name"):
        config.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert (loaded.config.text_pooling, loaded.config.use_text_projection) == ("pooler", True)
    assert loaded.config.text_model_type == "clip_text_model"
    tokens = clip_tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.get_text_features(tokens["input_ids"], tokens["attention_mask"]),
            tiny_model.get_text_features(tokens["input_ids"], tokens["attention_mask"]),
            rtol=0,
            atol=0,
        )
    assert type(AutoConfig.from_pretrained(tmp_path).text_config).__name__ == "CLIPTextConfig"


def test_set_text_tower_records_it_and_checks_the_space(bert_graft, tokenizer):
    model = tiny_graft_model(seed=1, projection_dim=16)
    tower = bert_graft.text_tower
    model.set_text_tower(tower, "tiny-bert")
    assert model.config.text_tower_name == "tiny-bert" and model.config.text_model_type == "bert"
    assert (model.config.text_pooling, model.config.text_normalize, model.config.use_text_projection) == (
        "mean",
        True,
        False,
    )
    torch.testing.assert_close(
        model.text_tower.encode(TEXTS, tokenizer), bert_graft.text_tower.encode(TEXTS, tokenizer)
    )
    with pytest.raises(ValueError, match="embeds into 16 dimensions but this model's joint space has 24"):
        tiny_graft_model(projection_dim=24).set_text_tower(tower)
    with pytest.raises(ValueError, match="to_clip needs CLIP's text tower, but this model's is a bert encoder"):
        model.to_clip()


def test_config_rules_for_text_towers():
    with pytest.raises(ValueError, match="projection_dim must be 16"):
        GraftConfig(**{**BERT_GRAFT, "projection_dim": 24})
    with pytest.raises(ValueError, match="text_pooling must be one of"):
        GraftConfig(**{**BERT_GRAFT, "text_pooling": "max"})
    with pytest.raises(ValueError, match="model_type 'no-such-encoder'"):
        GraftConfig(text_config={"model_type": "no-such-encoder"})
    config = GraftConfig(**BERT_GRAFT)
    again = GraftConfig.from_dict(config.to_dict())
    assert again.to_dict() == config.to_dict() and type(again.text_config) is BertConfig


_REMOTE_BERT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "graft_hf" or name.startswith("graft_hf."):
                raise ImportError("graft_hf is blocked in this test")

    sys.meta_path.insert(0, Block())
    import torch
    from PIL import Image
    from transformers import AutoModel, AutoProcessor, pipeline

    folder = sys.argv[1]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    inputs = processor(text=sys.argv[2:], images=torch.zeros(3, 32, 32, dtype=torch.uint8))
    with torch.no_grad():
        logits = model(**inputs).logits_per_image[0].tolist()
    classifier = pipeline("zero-shot-image-classification", model=folder, trust_remote_code=True)
    scores = classifier(Image.new("RGB", (40, 40), (20, 120, 40)), candidate_labels=sys.argv[2:])
    print("RESULT " + json.dumps({"logits": logits, "tokenizer": type(processor.tokenizer).__name__,
                                  "scores": {s["label"]: s["score"] for s in scores}}))
    """
)


def test_bert_tower_as_remote_code_without_graft_hf(tmp_path, bert_graft, tokenizer):
    processor = GraftProcessor(graft_hf.GraftImageProcessor.from_graft_config(bert_graft.config), tokenizer)
    bert_graft.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "text_tower_graft.py").is_file()  # copied as a relative import of modeling_graft.py
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    labels = ["forest", "river", "road"]
    result = subprocess.run(
        [sys.executable, "-c", _REMOTE_BERT, str(tmp_path), *labels],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert remote["tokenizer"].startswith("BertTokenizer")
    with torch.no_grad():
        local = bert_graft(**processor(text=labels, images=torch.zeros(3, 32, 32, dtype=torch.uint8)))
    torch.testing.assert_close(torch.tensor(remote["logits"]), local.logits_per_image[0], rtol=0, atol=1e-6)
    probs = local.logits_per_image[0].softmax(-1)  # the pipeline's image is not the zeros above; only check shape
    assert set(remote["scores"]) == set(labels) and probs.shape == (3,)
