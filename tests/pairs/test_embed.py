"""`embed_pairs` (what `graft pairs embed` runs) on tiny shards: image and text embeddings in fp16, bad photo bytes,
an interrupted rewrite, texts embedded once.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from graft_hf.pairs.embed import EMBED_METADATA_KEY, EmbedConfig, embed_pairs, load_teacher, shard_embedding_record
from graft_hf.pairs.schema import pairs_table
from graft_hf_cli import main as graft_main
from tests.helpers.pairs_shards import shard_photos, write_shard


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import CLIPImageProcessor

    from graft_hf.testing import tiny_clip_model
    from graft_hf.tokenizer import load_clip_tokenizer

    path = tmp_path_factory.mktemp("tiny-clip")
    tiny_clip_model(seed=0).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    load_clip_tokenizer().save_pretrained(path)
    return path


def test_embed_command_end_to_end_with_tiny_clip(pairs_dir: Path, clip_dir: Path, tmp_path: Path) -> None:
    from transformers import CLIPImageProcessor, CLIPModel

    report_path = tmp_path / "report.json"
    argv = ["pairs", "embed", str(pairs_dir), "--teacher", str(clip_dir), "--device", "cpu", "--batch-size", "2"]
    assert graft_main([*argv, "--report", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["shards_embedded"] == 2 and report["shards_skipped"] == 0 and report["dim"] == 16
    assert report["photos_embedded"] == 4  # 6 photos, one corrupt, one without bytes
    assert report["photos_skipped"] == {"undecodable image (UnidentifiedImageError)": 1, "no image bytes": 1}

    shard0 = pairs_dir / "data" / "train-00000-of-00002.parquet"
    schema = pq.read_schema(shard0)
    assert schema.field("photos").type.value_type.field("embedding").type == pa.list_(pa.float16())
    assert b"huggingface" in schema.metadata, "the datasets features metadata must survive the rewrite"
    record = shard_embedding_record(shard0)["embedding"]
    assert record["dim"] == 16 and record["dtype"] == "float16" and record["teacher"].startswith("clip:")

    model = CLIPModel.from_pretrained(clip_dir).eval()
    processor = CLIPImageProcessor.from_pretrained(clip_dir)
    for shard in sorted((pairs_dir / "data").glob("*.parquet")):
        for photo in shard_photos(shard):
            if photo["photo_id"] in ("s0t1p0", "s0t1p1"):
                assert photo["embedding"] is None, "a photo that failed to decode must keep a null embedding"
                continue
            stored = np.asarray(photo["embedding"], dtype=np.float32)
            assert np.linalg.norm(stored) == pytest.approx(1.0, abs=2e-3)
            with torch.no_grad():
                pixels = processor(
                    images=Image.open(io.BytesIO(photo["image"]["bytes"])).convert("RGB"), return_tensors="pt"
                )
                reference = model.get_image_features(pixel_values=pixels["pixel_values"]).pooler_output[0]
            reference = torch.nn.functional.normalize(reference, dim=-1).numpy()
            np.testing.assert_allclose(stored, reference, atol=2e-3)

    # Resume: nothing left to do; the shards are not rewritten.
    before = {p: p.stat().st_mtime_ns for p in (pairs_dir / "data").glob("*.parquet")}
    time.sleep(0.01)
    again = embed_pairs(EmbedConfig(pairs=str(pairs_dir), teacher=str(clip_dir), device="cpu"))
    assert (again.shards_skipped, again.shards_embedded, again.photos_embedded) == (2, 0, 0)
    assert before == {p: p.stat().st_mtime_ns for p in (pairs_dir / "data").glob("*.parquet")}
    # A new shard (e.g. a later build job) is the only one embedded.
    write_shard(pairs_dir / "data" / "train-00002-of-00003.parquet", 2)
    third = embed_pairs(EmbedConfig(pairs=str(pairs_dir), teacher=str(clip_dir), device="cpu"))
    assert (third.shards_skipped, third.shards_embedded, third.photos_embedded) == (2, 1, 3)

    # The embedded shards still load with datasets (image decodes, embedding is fp16).
    from datasets import load_dataset

    dataset = load_dataset(str(pairs_dir), split="train", streaming=True)
    row = next(iter(dataset))
    assert row["image"].size == (32, 32)
    assert len(row["photos"][0]["embedding"]) == 16


def test_text_mode_fills_text_embedding_and_keeps_image_embedding(pairs_dir: Path, clip_dir: Path) -> None:
    embed_pairs(EmbedConfig(pairs=str(pairs_dir), teacher=str(clip_dir), device="cpu"))
    report = embed_pairs(EmbedConfig(pairs=str(pairs_dir), teacher=str(clip_dir), device="cpu", text=True))
    assert report.field == "text_embedding" and report.photos_embedded == 4
    assert report.photos_skipped == {"no text": 2}
    shard0 = pairs_dir / "data" / "train-00000-of-00002.parquet"
    assert set(shard_embedding_record(shard0)) == {"embedding", "text_embedding"}
    photos = {p["photo_id"]: p for p in shard_photos(shard0)}
    assert photos["s0t0p0"]["embedding"] is not None and photos["s0t0p0"]["text_embedding"] is not None
    assert photos["s0t1p1"]["text_embedding"] is None  # no text
    teacher = load_teacher(str(clip_dir), device="cpu")
    reference = torch.nn.functional.normalize(teacher.embed_texts([photos["s0t0p0"]["text"]]), dim=-1)[0]
    np.testing.assert_allclose(np.asarray(photos["s0t0p0"]["text_embedding"], np.float32), reference, atol=2e-3)


def test_interrupted_rewrite_leaves_the_shard_intact(pairs_dir: Path, clip_dir: Path, monkeypatch) -> None:
    from graft_hf.pairs import embed as embed_module

    shard0 = pairs_dir / "data" / "train-00000-of-00002.parquet"
    original = shard0.read_bytes()
    calls = {"n": 0}
    real = embed_module._ShardEmbedder.embed_column

    def failing(self, column):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, column)

    monkeypatch.setattr(embed_module._ShardEmbedder, "embed_column", failing)
    with pytest.raises(KeyboardInterrupt):
        embed_pairs(EmbedConfig(pairs=str(pairs_dir), teacher=str(clip_dir), device="cpu", rows_per_batch=2))
    assert shard0.read_bytes() == original
    assert not list(pairs_dir.rglob("*.embed-tmp"))
    assert EMBED_METADATA_KEY not in (pq.read_schema(shard0).metadata or {})


class _CountingTextTeacher:
    """A deterministic text 'teacher' that records every text it is asked to embed."""

    teacher_id, dim = "counting-text", 6

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        self.seen.extend(texts)
        return torch.stack([torch.arange(1.0, 7.0) * (1 + len(text)) + float(sum(map(ord, text))) for text in texts])


def test_repeated_texts_are_embedded_once_with_the_same_vectors(tmp_path: Path) -> None:
    for shard in range(2):
        write_shard(tmp_path / "data" / f"train-{shard}.parquet", shard)
    # Make texts repeat across photos and shards.
    for path in sorted((tmp_path / "data").glob("*.parquet")):
        table = pq.read_table(path).to_pylist()
        for row in table:
            for k, photo in enumerate(row["photos"]):
                photo["text"] = None if photo["text"] is None else f"repeated text {k % 2}"
        pq.write_table(pairs_table(table), path)
    teacher = _CountingTextTeacher()
    report = embed_pairs(EmbedConfig(pairs=str(tmp_path), teacher="counting", text=True, batch_size=1), teacher)
    assert sorted(teacher.seen) == ["repeated text 0"]  # the only text at an even index: embedded exactly once
    assert report.photos_embedded == 4
    expected = torch.nn.functional.normalize(teacher.embed_texts(["repeated text 0"]), dim=-1)[0].half()
    vectors = [p["text_embedding"] for path in (tmp_path / "data").glob("*.parquet") for p in shard_photos(path)]
    filled = [torch.tensor(v, dtype=torch.float16) for v in vectors if v is not None]
    assert len(filled) == 4 and all(torch.equal(v, expected) for v in filled)


def test_shards_with_untyped_photo_bytes_still_embed(tmp_path: Path, clip_dir: Path) -> None:
    """Shards written before photo images became an Image feature (plain binary) embed the same and keep their type."""
    typed, legacy = tmp_path / "typed" / "data" / "train-0.parquet", tmp_path / "legacy" / "data" / "train-0.parquet"
    write_shard(typed, 1)
    write_shard(legacy, 1, legacy=True)
    assert pq.read_schema(legacy).field("photos").type.value_type.field("image").type == pa.binary()
    teacher = load_teacher(str(clip_dir), device="cpu")
    for path in (typed, legacy):
        report = embed_pairs(EmbedConfig(pairs=str(path.parent.parent), teacher=str(clip_dir), device="cpu"), teacher)
        assert report.photos_embedded == 3 and report.photos_skipped == {}
    assert pq.read_schema(legacy).field("photos").type.value_type.field("image").type == pa.binary()
    embeddings = [[p["embedding"] for p in shard_photos(path)] for path in (typed, legacy)]
    assert embeddings[0] == embeddings[1]
