"""GraftModel: shapes, save/load, CLIP interchange, gradients, checkpoint format, Auto classes, remote code;
`encode_text_queries` / `zero_shot_classify` against the slow obvious computation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoModel, AutoModelForZeroShotImageClassification, CLIPModel, pipeline

import graft_hf
from graft_hf import GraftConfig, GraftModel, build_processor
from graft_hf.testing import tiny_clip_model, tiny_graft_config, tiny_graft_model
from tests.helpers.data import REPO_ROOT

KEYS_FILE = REPO_ROOT / "tests" / "data" / "graft_vitb16_state_dict_keys.txt"


def _pixels(batch: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _ids(clip_tokenizer, texts=("farmland", "a solar farm", "a lake next to a road")) -> dict[str, torch.Tensor]:
    return dict(clip_tokenizer(list(texts), padding=True, return_tensors="pt"))


def test_forward_shapes_and_normalisation(tiny_model, clip_tokenizer):
    out = tiny_model(**_ids(clip_tokenizer), pixel_values=_pixels(), output_patch_embeds=True)
    assert out.logits_per_image.shape == (2, 3)
    assert out.logits_per_text.shape == (3, 2)
    torch.testing.assert_close(out.logits_per_text, out.logits_per_image.t())
    assert out.image_embeds.shape == (2, 16) and out.text_embeds.shape == (3, 16)
    assert out.patch_embeds.shape == (2, 4, 4, 16)
    for embeds in (out.image_embeds, out.text_embeds, out.patch_embeds):
        torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(embeds.shape[:-1]))
    expected = out.image_embeds @ out.text_embeds.t() * tiny_model.logit_scale.exp()
    torch.testing.assert_close(out.logits_per_image, expected)


def test_features_match_forward(tiny_model, clip_tokenizer):
    inputs = _ids(clip_tokenizer)
    pixels = _pixels()
    out = tiny_model(**inputs, pixel_values=pixels)
    image = tiny_model.get_image_features(pixels)
    text = tiny_model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
    torch.testing.assert_close(out.image_embeds, image / image.norm(dim=-1, keepdim=True))
    torch.testing.assert_close(out.text_embeds, text / text.norm(dim=-1, keepdim=True))


def test_patch_features_other_sizes_interpolate(tiny_model):
    grid = tiny_model.get_patch_features(torch.randn(1, 3, 48, 64))
    assert grid.shape == (1, 6, 8, 16)
    # At the training size interpolation is a no-op.
    pixels = _pixels(1)
    torch.testing.assert_close(
        tiny_model.get_patch_features(pixels), tiny_model.get_patch_features(pixels, interpolate_pos_encoding=False)
    )


def test_patch_features_are_the_patch_head_of_the_tokens(tiny_model):
    pixels = _pixels(1)
    hidden = tiny_model.vision_model(pixel_values=pixels).last_hidden_state  # (1, 1 + 16, 32)
    ref = tiny_model.patch_head.proj(tiny_model.patch_head.norm(hidden[:, 1:]))
    ref = (ref / ref.norm(dim=-1, keepdim=True)).reshape(1, 4, 4, 16)  # row-major patch order
    torch.testing.assert_close(tiny_model.get_patch_features(pixels), ref)


def test_image_level_model_has_no_patch_head():
    model = tiny_graft_model(use_patch_head=False)
    assert not any(k.startswith("patch_head") for k in model.state_dict())
    with pytest.raises(ValueError, match="no patch head"):
        model.get_patch_features(_pixels())


def test_save_load_identical_outputs(tmp_path, tiny_model, clip_tokenizer):
    tiny_model.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt")) for f in files)
    assert {"configuration_graft.py", "modeling_graft.py"} <= files
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is GraftModel
    frozen = [n for n, p in loaded.named_parameters() if not p.requires_grad]
    assert frozen == [n for n, p in tiny_model.named_parameters() if not p.requires_grad]
    assert "logit_scale" in frozen and "text_projection.weight" in frozen
    inputs = dict(**_ids(clip_tokenizer), pixel_values=_pixels(), output_patch_embeds=True)
    a, b = tiny_model(**inputs), loaded(**inputs)
    torch.testing.assert_close(a.logits_per_image, b.logits_per_image, rtol=0, atol=0)
    torch.testing.assert_close(a.patch_embeds, b.patch_embeds, rtol=0, atol=0)
    config = AutoConfig.from_pretrained(tmp_path)
    assert config.auto_map["AutoModel"] == "modeling_graft.GraftModel"
    assert type(AutoModelForZeroShotImageClassification.from_pretrained(tmp_path)) is GraftModel


def test_refuses_pickle_weights(tmp_path, tiny_model):
    with pytest.raises(ValueError, match="safetensors only"):
        tiny_model.save_pretrained(tmp_path, safe_serialization=False)


def test_checkpoint_format_is_pinned():
    """A transformers upgrade must not silently rename or reshape checkpoint keys."""
    expected = [line for line in KEYS_FILE.read_text().splitlines() if line and not line.startswith("#")]
    with torch.device("meta"):
        model = GraftModel(GraftConfig())
    actual = [f"{k} {tuple(v.shape)}" for k, v in model.state_dict().items()]
    assert actual == expected


def test_from_clip_copies_weights_exactly():
    clip = tiny_clip_model(seed=3)
    model = GraftModel.from_clip(clip, sensor="sentinel2")
    clip_state = clip.state_dict()
    for key, value in model.state_dict().items():
        if key.startswith("patch_head."):
            continue
        assert torch.equal(value, clip_state[key]), key
    assert torch.equal(model.patch_head.norm.weight, clip.vision_model.post_layernorm.weight)
    assert torch.equal(model.patch_head.norm.bias, clip.vision_model.post_layernorm.bias)
    assert torch.equal(model.patch_head.proj.weight, clip.visual_projection.weight)
    assert model.config.sensor == "sentinel2" and model.config.gsd == 10.0
    pixels = _pixels()
    torch.testing.assert_close(
        model.get_image_features(pixels), clip.get_image_features(pixels).pooler_output, rtol=0, atol=0
    )


def test_from_clip_directory_and_offline_hub_id(tmp_path):
    clip = tiny_clip_model(seed=4)
    clip.save_pretrained(tmp_path / "clip")
    model = GraftModel.from_clip(tmp_path / "clip")
    assert torch.equal(model.visual_projection.weight, clip.visual_projection.weight)
    with pytest.raises(OSError, match="pass the local DIR"):
        GraftModel.from_clip("openai/clip-vit-base-patch16")


def test_export_to_plain_clip_gives_identical_embeddings(tmp_path, clip_tokenizer):
    model = tiny_graft_model(seed=5, use_patch_head=False)
    model.save_clip_pretrained(tmp_path / "clip")
    assert not (tmp_path / "clip" / "modeling_graft.py").exists()
    clip = CLIPModel.from_pretrained(tmp_path / "clip").eval()
    pixels, inputs = _pixels(), _ids(clip_tokenizer)
    torch.testing.assert_close(
        clip.get_image_features(pixels).pooler_output, model.get_image_features(pixels), rtol=0, atol=0
    )
    torch.testing.assert_close(
        clip.get_text_features(**inputs).pooler_output, model.get_text_features(**inputs), rtol=0, atol=0
    )
    torch.testing.assert_close(
        clip(**inputs, pixel_values=pixels).logits_per_image,
        model(**inputs, pixel_values=pixels).logits_per_image,
        rtol=0,
        atol=0,
    )


def test_trainable_parameters_get_gradients_text_tower_none(clip_tokenizer):
    model = tiny_graft_model(seed=6).train()
    out = model(**_ids(clip_tokenizer), pixel_values=_pixels(), output_patch_embeds=True)
    (out.image_embeds.sum() + out.patch_embeds.square().mean() * 0 + out.patch_embeds.sum()).backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("vision_model.", "visual_projection.", "patch_head.")) for n in trainable)
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
            assert param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name
    assert not any(p.requires_grad for p in model.text_model.parameters())
    assert not model.text_projection.weight.requires_grad and not model.logit_scale.requires_grad


@pytest.mark.filterwarnings("ignore:.*gradient_checkpointing_enable.*:FutureWarning")
def test_gradient_checkpointing_leaves_outputs_and_grads_unchanged():
    pixels = _pixels()
    results = []
    for checkpointing in (False, True):
        model = tiny_graft_model(seed=7).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert all(layer.gradient_checkpointing for layer in model.vision_model.encoder.layers)
        embeds = model.get_patch_features(pixels)
        embeds.sum().backward()
        results.append((embeds.detach(), model.vision_model.embeddings.patch_embedding.weight.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


def test_sdpa_matches_eager():
    config = tiny_graft_config()
    torch.manual_seed(8)
    eager = GraftModel._from_config(config, attn_implementation="eager").eval()
    sdpa = GraftModel._from_config(config, attn_implementation="sdpa").eval()
    sdpa.load_state_dict(eager.state_dict())
    assert sdpa.vision_model.config._attn_implementation == "sdpa"
    pixels = _pixels()
    torch.testing.assert_close(eager.get_patch_features(pixels), sdpa.get_patch_features(pixels), atol=1e-5, rtol=1e-5)


def test_no_nan_for_extreme_inputs(tiny_model):
    pixels = torch.full((1, 3, 32, 32), 1e4)
    assert torch.isfinite(tiny_model.get_patch_features(pixels)).all()


def test_bad_inputs_raise_clear_errors(tiny_model):
    with pytest.raises(ValueError, match="pass pixel_values, input_ids or both"):
        tiny_model()
    with pytest.raises(ValueError, match=r"\(batch, 3, height, width\)"):
        tiny_model.get_image_features(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="empty batch"):
        tiny_model.get_image_features(torch.randn(0, 3, 32, 32))


def test_pipeline_zero_shot_image_classification(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    graft_hf.build_processor(tiny_model.config).save_pretrained(tmp_path)
    classifier = pipeline("zero-shot-image-classification", model=str(tmp_path))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    result = classifier(image, candidate_labels=["farmland", "a lake", "roads"])
    assert sorted(r["label"] for r in result) == ["a lake", "farmland", "roads"]
    assert abs(sum(r["score"] for r in result) - 1.0) < 1e-5


_REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys
    class BlockGraft(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("graft_hf", "graft_hf_cli"):
                raise ImportError(f"{name} is blocked: this process must not use graft_hf")
    sys.meta_path.insert(0, BlockGraft())
    import torch
    from transformers import AutoModel, AutoProcessor
    directory = sys.argv[1]
    model = AutoModel.from_pretrained(directory, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(directory, trust_remote_code=True)
    assert "transformers_modules" in type(model).__module__, type(model).__module__
    inputs = processor(text=["farmland", "a lake"], images=torch.load(directory + "/images.pt"), return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs, output_patch_embeds=True)
    torch.save({"logits": out.logits_per_image, "patches": out.patch_embeds}, directory + "/remote.pt")
    try:
        import graft_hf  # noqa: F401
    except ImportError:
        print("graft_hf not importable")
    """
)


def test_remote_code_load_without_graft_hf(tmp_path, tiny_model):
    processor = graft_hf.build_processor(tiny_model.config)
    tiny_model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    images = torch.randint(0, 255, (2, 40, 40, 4), dtype=torch.uint8).numpy()
    torch.save(torch.from_numpy(images), tmp_path / "images.pt")
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", _REMOTE_CODE_SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "graft_hf not importable" in result.stdout
    remote = torch.load(tmp_path / "remote.pt")
    with torch.no_grad():
        local = tiny_model(
            **processor(text=["farmland", "a lake"], images=torch.from_numpy(images), return_tensors="pt"),
            output_patch_embeds=True,
        )
    torch.testing.assert_close(remote["logits"], local.logits_per_image, rtol=0, atol=0)
    torch.testing.assert_close(remote["patches"], local.patch_embeds, rtol=0, atol=0)


def test_push_to_hub_goes_through_the_push_handler_graft_hf_sets(monkeypatch, tiny_model):
    from huggingface_hub.errors import OfflineModeIsEnabled

    from graft_hf.modeling import PUSH_HANDLER_KWARGS

    handler = GraftModel.push_handler
    assert handler.func is graft_hf.hub.push_model and handler.keywords == {"allow_any_name": True}
    calls = []
    monkeypatch.setattr(GraftModel, "push_handler", None)  # restored after the test
    GraftModel.set_push_handler(lambda model, repo_id, **kwargs: calls.append((model, repo_id, kwargs)) or "pushed")
    assert tiny_model.push_to_hub("me/x", private=True, commit_message="m") == "pushed"
    assert calls == [(tiny_model, "me/x", {"private": True, "commit_message": "m"})]
    assert {"private", "token", "revision", "create_pr", "commit_message"} == PUSH_HANDLER_KWARGS
    # Anything the handler does not take goes to transformers' push_to_hub (which fails here: no Hub, offline).
    with pytest.raises(OfflineModeIsEnabled):
        tiny_model.push_to_hub("me/x", max_shard_size="1GB")
    GraftModel.set_push_handler(None)
    with pytest.raises(OfflineModeIsEnabled):
        tiny_model.push_to_hub("me/x")
    assert len(calls) == 1


# ------------------------------------------------ encode_text_queries / zero_shot_classify against the slow obvious way
TEMPLATES = ["a satellite photo of {}.", "an aerial view of {}."]
CLASSES = ["forest", "river", "industrial buildings"]


@pytest.fixture(scope="module")
def model_and_processor():
    model = tiny_graft_model(seed=3)
    return model, build_processor(model.config)


def _images(n: int = 4) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)) for _ in range(n)]


def test_encode_text_queries_matches_per_prompt_average(model_and_processor):
    model, processor = model_and_processor
    embeds = model.encode_text_queries(CLASSES, processor, TEMPLATES, batch_size=3)
    assert embeds.shape == (3, model.config.projection_dim)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(3))
    for c, name in enumerate(CLASSES):
        rows = []
        for t in TEMPLATES:
            tokens = processor(text=[t.format(name)], return_tensors="pt")
            f = model.get_text_features(tokens["input_ids"], tokens["attention_mask"]).double()
            rows.append(f / f.norm())
        mean = torch.stack(rows).mean(0)[0]
        torch.testing.assert_close(embeds[c].double(), mean / mean.norm(), atol=1e-5, rtol=1e-5)


def test_encode_text_queries_without_templates_and_errors(model_and_processor):
    model, processor = model_and_processor
    plain = model.encode_text_queries("a solar farm", processor.tokenizer)
    same = model.encode_text_queries(["a solar farm"], processor, ["{}"])
    torch.testing.assert_close(plain, same)
    with pytest.raises(ValueError, match="placeholder"):
        model.encode_text_queries(["x"], processor, ["no placeholder"])
    with pytest.raises(ValueError, match="at least one"):
        model.encode_text_queries([], processor)


def test_zero_shot_classify_equals_clip_logits(model_and_processor):
    model, processor = model_and_processor
    images = _images()
    probs = model.zero_shot_classify(images, CLASSES, processor, TEMPLATES)
    assert probs.shape == (4, 3)
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))
    pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
    img = model.get_image_features(pixel_values).double()
    img = img / img.norm(dim=-1, keepdim=True)
    cls = model.encode_text_queries(CLASSES, processor, TEMPLATES).double()
    expected = (model.logit_scale.exp().double() * img @ cls.T).softmax(-1)
    torch.testing.assert_close(probs.double(), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="no tokenizer"):
        model.zero_shot_classify(images, CLASSES, processor.image_processor)
    with pytest.raises(ValueError, match="empty"):
        model.zero_shot_classify(images, [], processor)


def test_patch_head_bias_starts_at_zero_and_round_trips(tmp_path):
    clip = tiny_clip_model(seed=3)
    model = GraftModel.from_clip(clip, patch_head_bias=True)
    assert torch.equal(model.patch_head.proj.bias, torch.zeros(16))
    with torch.no_grad():
        model.patch_head.proj.bias.fill_(0.25)
    model.save_pretrained(tmp_path)
    loaded = GraftModel.from_pretrained(tmp_path).eval()
    assert torch.equal(loaded.patch_head.proj.bias, model.patch_head.proj.bias)
    pixels = _pixels()
    torch.testing.assert_close(loaded.get_patch_features(pixels), model.eval().get_patch_features(pixels))
    assert tiny_graft_model(patch_head_bias=True).patch_head.proj.bias.abs().sum() == 0  # fresh init: zero bias


def test_untrained_image_embeddings_warn_once(caplog):
    model = tiny_graft_model(image_embeds_trained=False)
    pixels = _pixels()
    with caplog.at_level("WARNING"):
        model.get_image_features(pixels)
        model(pixel_values=pixels)
        model(pixel_values=pixels, output_patch_embeds=True)
    assert caplog.text.count("image embedding was never trained") == 1
    caplog.clear()
    with caplog.at_level("WARNING"):
        tiny_graft_model(image_embeds_trained=False)(pixel_values=pixels, output_patch_embeds=True)
        tiny_graft_model().get_image_features(pixels)
    assert "never trained" not in caplog.text
