"""`graft convert`: the authors' Lightning checkpoints -> GraftModel folders, checked against the authors' forward."""

from __future__ import annotations

import math
import os
import time

import pytest
import torch

from graft_hf.hub import check_model_card
from graft_hf.hub.convert import convert_authors_checkpoint, map_authors_state_dict
from graft_hf.modeling import GraftModel
from graft_hf_cli import main
from tests.helpers.authors_checkpoint import TEMPERATURE, authors_checkpoint, make_authors, tiny_clip


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip")
    tiny_clip().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def authors():
    return make_authors()


@pytest.mark.parametrize(
    ("layout", "log_scale", "projector_names"),
    [("nested", False, ("0", "1")), ("flat", True, ("norm", "linear"))],
)
def test_convert_matches_authors_embeddings_exactly(authors, clip_dir, tmp_path, layout, log_scale, projector_names):
    ckpt = tmp_path / "graft.ckpt"
    torch.save(authors_checkpoint(authors, layout, log_scale, projector_names), ckpt)
    out = tmp_path / "converted"
    assert main(["convert", str(ckpt), "--clip", str(clip_dir), "-o", str(out), "--repo-id", "me/graft-naip-x"]) == 0

    model = GraftModel.from_pretrained(out).eval()
    torch.manual_seed(0)
    pixel_values = torch.randn(2, 3, 32, 32)
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
    assert "graft.ckpt" in card and "epoch 3" in card
    assert (out / "processor_config.json").is_file() and (out / "model.safetensors").is_file()


def test_mapping_reads_log_space_and_plain_logit_scale(authors):
    plain = map_authors_state_dict(authors_checkpoint(authors, "nested", log_scale=False)["state_dict"])
    logged = map_authors_state_dict(authors_checkpoint(authors, "flat", log_scale=True)["state_dict"])
    assert plain.layout == "nested" and logged.layout == "flat"
    assert plain.training_logit_scale == pytest.approx(1 / TEMPERATURE)
    assert logged.training_logit_scale == pytest.approx(1 / TEMPERATURE, rel=1e-6)
    assert set(plain.state_dict) == set(logged.state_dict)
    assert plain.dropped_keys == ["satellite_image_backbone.vision_model.embeddings.position_ids"]


def test_unknown_keys_fail_loudly_unless_ignored(authors, clip_dir, tmp_path):
    checkpoint = authors_checkpoint(authors, "nested", log_scale=False)
    checkpoint["state_dict"]["ground_encoder.proj.weight"] = torch.zeros(2, 2)
    ckpt = tmp_path / "extra.ckpt"
    torch.save(checkpoint, ckpt)
    with pytest.raises(ValueError, match=r"ignore_prefixes: .*ground_encoder\.proj\.weight"):
        convert_authors_checkpoint(ckpt, clip_dir)
    model = convert_authors_checkpoint(ckpt, clip_dir, ignore_prefixes=("ground_encoder.",))
    assert model.patch_head is not None


def test_missing_backbone_weights_fail_loudly(authors, clip_dir, tmp_path):
    checkpoint = authors_checkpoint(authors, "nested", log_scale=False)
    del checkpoint["state_dict"]["satellite_image_backbone.vision_model.encoder.layers.1.mlp.fc1.weight"]
    ckpt = tmp_path / "missing.ckpt"
    torch.save(checkpoint, ckpt)
    with pytest.raises(ValueError, match=r"missing \['vision_model\.encoder\.layers\.1\.mlp\.fc1\.weight'\]"):
        convert_authors_checkpoint(ckpt, clip_dir)


def test_projector_with_bias_is_rejected(authors, clip_dir, tmp_path):
    checkpoint = authors_checkpoint(authors, "nested", log_scale=False)
    checkpoint["state_dict"]["projector.1.bias"] = torch.zeros(16)
    ckpt = tmp_path / "bias.ckpt"
    torch.save(checkpoint, ckpt)
    with pytest.raises(ValueError, match="LayerNorm \\+ bias-free Linear"):
        convert_authors_checkpoint(ckpt, clip_dir)


def test_image_level_checkpoint_has_no_patch_head(authors, clip_dir, tmp_path):
    checkpoint = authors_checkpoint(authors, "nested", log_scale=False)
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("projector.")}
    ckpt = tmp_path / "image-level.ckpt"
    torch.save(checkpoint, ckpt)
    model = convert_authors_checkpoint(ckpt, clip_dir)
    assert model.patch_head is None and not model.config.use_patch_head
    pixel_values = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.get_image_features(pixel_values), authors.embeds(pixel_values)[0])


def test_clip_of_another_shape_is_rejected(authors, tmp_path):
    other = tmp_path / "clip-p16"
    tiny_clip(patch_size=16).save_pretrained(other)
    ckpt = tmp_path / "graft.ckpt"
    torch.save(authors_checkpoint(authors, "nested", log_scale=False), ckpt)
    with pytest.raises(ValueError, match="clip: checkpoint shapes do not match this CLIP"):
        convert_authors_checkpoint(ckpt, other)


def test_offline_hub_id_for_clip_fails_fast(authors, tmp_path):
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


def test_lightning_metadata_classes_are_read_as_inert_stand_ins(authors, clip_dir, tmp_path):
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
    model = convert_authors_checkpoint(ckpt, clip_dir)
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
