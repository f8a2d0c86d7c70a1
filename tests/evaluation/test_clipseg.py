"""The CLIPSeg baseline: loading from disk, equality with transformers' own CLIPSeg usage, ensembling, evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from graft_hf.evaluation.clipseg import CLIPSegSegmenter, load_clipseg
from graft_hf.tasks.segmentation import SegmentationConfig, evaluate_segmentation
from tests.helpers.clipseg import save_tiny_clipseg
from tests.helpers.data import shared_data

NAMES = ["water", "road", "trees"]


@pytest.fixture(scope="module")
def clipseg_dir(tmp_path_factory):
    return save_tiny_clipseg(tmp_path_factory.mktemp("clipseg"))


@pytest.fixture(scope="module")
def segmenter(clipseg_dir):
    return load_clipseg(clipseg_dir)


def _image(seed: int = 0, shape=(40, 56, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_segment_equals_transformers_clipseg_usage(segmenter):
    """Without templates, the masks are transformers' documented CLIPSeg call: text + repeated image -> logits."""
    image = _image()
    result = segmenter.segment(image, NAMES, SegmentationConfig(templates=None))
    processor, model = segmenter.processor, segmenter.model
    inputs = processor(text=NAMES, images=[Image.fromarray(image)] * 3, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits  # (3, 64, 64)
    reference = F.interpolate(logits.sigmoid()[None], size=(40, 56), mode="bilinear", align_corners=False)[0]
    assert result.score_maps.shape == (3, 40, 56) and result.mask.shape == (40, 56)
    assert torch.allclose(result.score_maps, reference, atol=1e-5)
    assert torch.equal(result.mask, reference.argmax(0))
    assert torch.allclose(result.patch_scores, logits.sigmoid(), atol=1e-5)
    assert np.array_equal(result.image, image) and result.class_names == tuple(NAMES)


def test_template_ensemble_keeps_clip_direction_and_scale(segmenter):
    templates = ["a satellite photo of {}.", "an aerial view of {}."]
    conditional = segmenter.encode_queries(NAMES, templates).double()
    prompts = [t.format(n) for n in NAMES for t in templates]
    raw = segmenter._text_embeds(prompts).double().reshape(3, 2, -1)  # the slow way, float64
    direction = F.normalize(F.normalize(raw, dim=-1).mean(1), dim=-1)
    expected = direction * raw.norm(dim=-1).mean(1, keepdim=True)
    assert torch.allclose(conditional, expected, atol=1e-5)
    assert segmenter.encode_queries(NAMES, templates) is segmenter.encode_queries(NAMES, templates)  # cached


def test_background_threshold_is_a_probability(segmenter):
    config = SegmentationConfig(templates=None, score_threshold=0.999)
    result = segmenter.segment(_image(1), NAMES, config)
    assert result.class_names[-1] == "background" and result.background_index == 3
    assert torch.all(result.mask == 3)  # no class reaches 99.9% anywhere with random weights


def test_clipseg_scored_on_coarse_label_grid(segmenter):
    images = [_image(seed, (64, 64, 3)) for seed in range(2)]
    targets = [np.random.default_rng(seed).integers(0, 3, size=(4, 4)) for seed in range(2)]
    config = SegmentationConfig(templates="satellite")
    metrics = evaluate_segmentation(segmenter, zip(images, targets), NAMES, config)
    assert int(metrics.confusion.sum()) == 32 and metrics.classnames == tuple(NAMES)


def test_reads_naip_geotiff_bands_as_rgb(clipseg_dir):
    rasterio = pytest.importorskip("rasterio")
    path = shared_data("naip-nd", "m_4709963_se_14_1_20200831.tif")
    with rasterio.open(path) as src:
        window = src.read(window=((0, 64), (0, 96)))
    result = load_clipseg(clipseg_dir, sensor="naip").segment(window, NAMES)
    assert result.mask.shape == (64, 96) and np.array_equal(result.image, np.moveaxis(window[:3], 0, -1))


def test_incomplete_checkpoint_and_missing_model_are_refused(clipseg_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = save_tiny_clipseg(tmp_path / "broken")
    weights = load_file(broken / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("decoder.")}, broken / "model.safetensors")
    with pytest.raises(ValueError, match="lacks .* weights"):
        load_clipseg(broken)
    with pytest.raises(RuntimeError, match="could not load CLIPSeg"):
        load_clipseg(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="batch_size"):
        CLIPSegSegmenter(load_clipseg(clipseg_dir).model, load_clipseg(clipseg_dir).processor, batch_size=0)
