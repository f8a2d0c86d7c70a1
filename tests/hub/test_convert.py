"""`graft convert`: the authors' Lightning checkpoints -> GraftModel folders, checked against the authors' forward."""

from __future__ import annotations

import logging
import math
import os
import time

import pytest
import torch

from graft_hf.hub import check_model_card
from graft_hf.hub.convert import convert_authors_checkpoint, map_authors_state_dict
from graft_hf.modeling import GraftModel
from graft_hf_cli import main
from tests.helpers.authors_checkpoint import (
    TEMPERATURE,
    AuthorsGraft,
    authors_checkpoint,
    make_authors,
    tiny_clip,
    trained_authors,
)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip")
    tiny_clip().save_pretrained(path)
    return path


def _pixels(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("layout", "log_scale", "projector_names", "bias"),
    [("nested", False, ("0", "1"), False), ("flat", True, ("norm", "linear"), True)],
)
def test_convert_matches_authors_embeddings_exactly(clip_dir, tmp_path, layout, log_scale, projector_names, bias):
    authors = make_authors(bias_projector=bias)
    ckpt = tmp_path / "graft.ckpt"
    torch.save(authors_checkpoint(authors, layout, log_scale, projector_names), ckpt)
    out = tmp_path / "converted"
    argv = ["convert", str(ckpt), "--clip", str(clip_dir), "-o", str(out), "--repo-id", "me/graft-naip-x"]
    assert main(argv + ["--level", "pixel"]) == 0

    model = GraftModel.from_pretrained(out).eval()
    assert model.config.patch_head_bias is bias and (model.patch_head.proj.bias is not None) is bias
    pixel_values = _pixels()
    ref_image, ref_patch = authors.embeds(pixel_values)
    with torch.no_grad():
        image = model.get_image_features(pixel_values)
        patch = model.get_patch_features(pixel_values)  # (batch, grid_h, grid_w, dim)
    assert torch.equal(image, ref_image)
    assert torch.equal(patch.flatten(1, 2), ref_patch)

    # Text side and zero-shot logit scale are CLIP's, not the checkpoint's training temperature.
    clip = tiny_clip()
    ids = torch.tensor([[49406, 320, 49407]])
    with torch.no_grad():
        assert torch.equal(model.get_text_features(ids), clip.get_text_features(input_ids=ids).pooler_output)
    assert float(model.logit_scale.detach()) == pytest.approx(math.log(100.0))
    card = (out / "README.md").read_text()
    check_model_card(card)
    assert "| training temperature | 0.07 (logit scale 14.29) |" in card
    assert "pixel-level checkpoint `graft.ckpt`" in card and "epoch 3" in card
    assert (out / "processor_config.json").is_file() and (out / "model.safetensors").is_file()


@pytest.mark.parametrize("projector_init", ["default", "clip"])
def test_image_level_checkpoint_is_recognised_and_drops_the_projector(clip_dir, tmp_path, projector_init, caplog):
    authors = trained_authors("image", projector_init)
    ckpt = tmp_path / "image.ckpt"
    torch.save(authors_checkpoint(authors, "nested", log_scale=False), ckpt)
    with caplog.at_level(logging.INFO, logger="graft_hf.hub.convert"):
        model = convert_authors_checkpoint(ckpt, clip_dir, tmp_path / "out")
    assert "converting at image level" in caplog.text
    assert model.patch_head is None and not model.config.use_patch_head and model.config.image_embeds_trained
    pixel_values = _pixels(1)
    with torch.no_grad():
        assert torch.equal(model.get_image_features(pixel_values), authors.embeds(pixel_values)[0])
    card = (tmp_path / "out" / "README.md").read_text()
    assert "image-level checkpoint `image.ckpt`" in card and "**untrained**" not in card


@pytest.mark.parametrize("projector_init", ["default", "clip"])
def test_pixel_level_checkpoint_is_recognised_and_marks_image_embeddings_untrained(
    clip_dir, tmp_path, projector_init, caplog
):
    authors = trained_authors("pixel", projector_init)
    ckpt = tmp_path / "pixel.ckpt"
    torch.save(authors_checkpoint(authors, "flat", log_scale=True), ckpt)
    out = tmp_path / "out"
    convert_authors_checkpoint(ckpt, clip_dir, out)
    model = GraftModel.from_pretrained(out).eval()
    assert model.config.use_patch_head and model.config.patch_head_bias
    assert model.config.image_embeds_trained is False
    pixel_values = _pixels(2)
    with torch.no_grad():
        assert torch.equal(model.get_patch_features(pixel_values).flatten(1, 2), authors.embeds(pixel_values)[1])
        with caplog.at_level(logging.WARNING):
            model.get_image_features(pixel_values)
    assert "image embedding was never trained" in caplog.text
    card = (out / "README.md").read_text()
    check_model_card(card)
    assert "| image embedding | **untrained**" in card and "Zero-shot classification and" not in card


def test_checkpoint_that_does_not_tell_its_level_needs_level(clip_dir, tmp_path):
    ckpt = tmp_path / "both.ckpt"
    torch.save(authors_checkpoint(make_authors(), "nested", log_scale=False), ckpt)
    with pytest.raises(ValueError, match=r"level: the checkpoint does not tell .* pass level='image'"):
        convert_authors_checkpoint(ckpt, clip_dir)
    with pytest.raises(ValueError, match="level: must be 'image' or 'pixel'"):
        convert_authors_checkpoint(ckpt, clip_dir, level="patch")
    image = convert_authors_checkpoint(ckpt, clip_dir, level="image")
    assert image.patch_head is None and image.config.image_embeds_trained


def test_explicit_level_wins_over_the_weights_with_a_warning(clip_dir, tmp_path, caplog):
    ckpt = tmp_path / "image.ckpt"
    torch.save(authors_checkpoint(trained_authors("image"), "nested", log_scale=False), ckpt)
    with caplog.at_level(logging.WARNING, logger="graft_hf.hub.convert"):
        model = convert_authors_checkpoint(ckpt, clip_dir, level="pixel")
    assert model.patch_head is not None and "look image-level" in caplog.text


def test_mapping_reads_log_space_and_plain_logit_scale():
    authors = make_authors()
    plain = map_authors_state_dict(authors_checkpoint(authors, "nested", log_scale=False)["state_dict"])
    logged = map_authors_state_dict(authors_checkpoint(authors, "flat", log_scale=True)["state_dict"])
    assert plain.layout == "nested" and logged.layout == "flat"
    assert plain.training_logit_scale == pytest.approx(1 / TEMPERATURE)
    assert logged.training_logit_scale == pytest.approx(1 / TEMPERATURE, rel=1e-6)
    assert set(plain.state_dict) == set(logged.state_dict) and set(plain.projector) == set(logged.projector)
    assert plain.dropped_keys == ["satellite_image_backbone.vision_model.embeddings.position_ids"]
    no_temp = AuthorsGraft(tiny_clip(), temp=False).state_dict()  # built with temp=False: no logit_scale at all
    assert map_authors_state_dict(dict(no_temp)).training_logit_scale is None


def test_unknown_keys_fail_loudly_unless_ignored(clip_dir, tmp_path):
    checkpoint = authors_checkpoint(make_authors(), "nested", log_scale=False)
    checkpoint["state_dict"]["ground_encoder.proj.weight"] = torch.zeros(2, 2)
    ckpt = tmp_path / "extra.ckpt"
    torch.save(checkpoint, ckpt)
    with pytest.raises(ValueError, match=r"ignore_prefixes: .*ground_encoder\.proj\.weight"):
        convert_authors_checkpoint(ckpt, clip_dir, level="pixel")
    model = convert_authors_checkpoint(ckpt, clip_dir, level="pixel", ignore_prefixes=("ground_encoder.",))
    assert model.patch_head is not None


def test_missing_backbone_weights_fail_loudly(clip_dir, tmp_path):
    checkpoint = authors_checkpoint(make_authors(), "nested", log_scale=False)
    del checkpoint["state_dict"]["satellite_image_backbone.vision_model.encoder.layers.1.mlp.fc1.weight"]
    ckpt = tmp_path / "missing.ckpt"
    torch.save(checkpoint, ckpt)
    with pytest.raises(ValueError, match=r"missing \['vision_model\.encoder\.layers\.1\.mlp\.fc1\.weight'\]"):
        convert_authors_checkpoint(ckpt, clip_dir, level="image")


def test_projector_with_extra_layers_is_rejected(clip_dir, tmp_path):
    checkpoint = authors_checkpoint(make_authors(), "nested", log_scale=False)
    checkpoint["state_dict"]["projector.2.weight"] = torch.zeros(16, 16)
    ckpt = tmp_path / "mlp.ckpt"
    torch.save(checkpoint, ckpt)
    with pytest.raises(ValueError, match="projector does not look like LayerNorm \\+ Linear"):
        convert_authors_checkpoint(ckpt, clip_dir, level="pixel")


def test_checkpoint_without_projector_is_image_level(clip_dir, tmp_path):
    authors = make_authors()
    checkpoint = authors_checkpoint(authors, "nested", log_scale=False)
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("projector.")}
    ckpt = tmp_path / "image-level.ckpt"
    torch.save(checkpoint, ckpt)
    model = convert_authors_checkpoint(ckpt, clip_dir)
    assert model.patch_head is None and not model.config.use_patch_head
    pixel_values = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.get_image_features(pixel_values), authors.embeds(pixel_values)[0])
    with pytest.raises(ValueError, match="level: 'pixel' needs the projector"):
        convert_authors_checkpoint(ckpt, clip_dir, level="pixel")


def test_clip_of_another_shape_is_rejected(tmp_path):
    authors = make_authors()
    other = tmp_path / "clip-p16"
    tiny_clip(patch_size=16).save_pretrained(other)
    ckpt = tmp_path / "graft.ckpt"
    torch.save(authors_checkpoint(authors, "nested", log_scale=False), ckpt)
    with pytest.raises(ValueError, match="clip: checkpoint shapes do not match this CLIP"):
        convert_authors_checkpoint(ckpt, other, level="pixel")


def test_offline_hub_id_for_clip_fails_fast(tmp_path):
    authors = make_authors()
    ckpt = tmp_path / "graft.ckpt"
    torch.save(authors_checkpoint(authors, "nested", log_scale=False), ckpt)
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match=r"HF_HUB_OFFLINE.*hf download openai/clip-vit-base-patch16"):
        convert_authors_checkpoint(ckpt, "openai/clip-vit-base-patch16")
    assert time.monotonic() - start < 5


class AttributeDict(dict):
    """Like Lightning's hyper-parameter dict (a dict subclass pickled by reference)."""


class _Callback:
    def __setstate__(self, state):  # would run if the real class were used to unpickle
        raise AssertionError("checkpoint metadata code must not run")


def test_lightning_metadata_classes_are_read_as_inert_stand_ins(clip_dir, tmp_path):
    authors = make_authors()
    import argparse

    checkpoint = authors_checkpoint(authors, "nested", log_scale=False)
    callback = _Callback.__new__(_Callback)
    callback.__dict__["best"] = 0.5
    checkpoint.update(
        hyper_parameters=AttributeDict(lr=1e-5, args=argparse.Namespace(batch_size=256)),
        callbacks={"ModelCheckpoint": callback},
    )
    ckpt = tmp_path / "lightning.ckpt"
    torch.save(checkpoint, ckpt)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(ckpt, weights_only=True)
    model = convert_authors_checkpoint(ckpt, clip_dir, level="image")
    pixel_values = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.get_image_features(pixel_values), authors.embeds(pixel_values)[0])


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_never_run(clip_dir, tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "exploit.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": _Exploit(marker)}, ckpt)
    with pytest.raises(ValueError, match=r"(?s)weights_only=True.*never arbitrary pickled code"):
        convert_authors_checkpoint(ckpt, clip_dir)
    assert not marker.exists()
