"""Zero-shot segmentation: hand-made score maps, background options, overlay, end to end with a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graft_hf.evaluation.segmentation_metrics import segmentation_metrics
from graft_hf.tasks.segmentation import (
    SegmentationConfig,
    ZeroShotSegmenter,
    evaluate_segmentation,
    patch_similarity,
    pool_to_grid,
    render_overlay,
    render_score_map,
    segment_from_patch_scores,
)
from graft_hf.tasks.text import encode_queries
from tests.helpers.data import shared_data


def _left_right_scores() -> torch.Tensor:
    """Class 0 wins the left patch column, class 1 the right one (2 x 2 grid)."""
    return torch.tensor([[[0.9, 0.1], [0.9, 0.1]], [[0.1, 0.9], [0.1, 0.9]]])


def test_mask_from_hand_made_scores():
    result = segment_from_patch_scores(_left_right_scores(), (6, 8), ["water", "road"], SegmentationConfig())
    assert result.score_maps.shape == (2, 6, 8) and result.mask.shape == (6, 8)
    assert result.class_names == ("water", "road") and result.background_index is None
    expected = torch.zeros(6, 8, dtype=torch.long)
    expected[:, 4:] = 1
    assert torch.equal(result.mask, expected)
    assert torch.allclose(result.score_maps.sum(0), torch.ones(6, 8))  # softmax by default
    assert result.label_fractions() == pytest.approx({"water": 0.5, "road": 0.5})


def test_logits_are_upsampled_bilinearly_before_argmax():
    torch.manual_seed(0)
    scores = torch.rand(3, 4, 5) * 2 - 1
    config = SegmentationConfig(score="cosine")
    result = segment_from_patch_scores(scores, (23, 31), ["a", "b", "c"], config)
    reference = F.interpolate(scores[None], size=(23, 31), mode="bilinear", align_corners=False)[0]
    assert torch.allclose(result.score_maps, reference)
    assert torch.equal(result.mask, reference.argmax(0))
    nearest = segment_from_patch_scores(scores, (23, 31), ["a", "b", "c"], SegmentationConfig(upsample_mode="nearest"))
    assert not torch.equal(nearest.mask, result.mask)  # smooth borders differ from patch-shaped ones


def test_score_threshold_assigns_background():
    scores = torch.tensor([[[0.30, 0.05]], [[0.10, 0.08]]])  # 1 x 2 grid; the right patch fits nothing well
    config = SegmentationConfig(score="cosine", score_threshold=0.2, upsample_mode="nearest")
    result = segment_from_patch_scores(scores, (2, 4), ["field", "forest"], config)
    assert result.class_names == ("field", "forest", "background") and result.background_index == 2
    assert result.mask.tolist() == [[0, 0, 2, 2], [0, 0, 2, 2]]
    assert torch.all(result.score_maps[2] == 0.2)
    assert result.binary_mask("background").sum() == 4


def test_background_prompt_competes_and_combines_with_threshold():
    scores = torch.tensor([[[0.30, 0.05, 0.12]], [[0.10, 0.08, 0.11]]])
    background = torch.tensor([[0.20, 0.25, 0.10]])
    config = SegmentationConfig(score="cosine", background_prompt="other", upsample_mode="nearest")
    result = segment_from_patch_scores(scores, (1, 3), ["a", "b"], config, background_scores=background)
    assert result.mask.tolist() == [[0, 2, 0]]
    config = SegmentationConfig(
        score="cosine", background_prompt="other", score_threshold=0.15, upsample_mode="nearest"
    )
    result = segment_from_patch_scores(scores, (1, 3), ["a", "b"], config, background_scores=background)
    assert result.mask.tolist() == [[0, 2, 2]]  # third patch: best class 0.12 < threshold 0.15
    with pytest.raises(ValueError, match="background_scores"):
        segment_from_patch_scores(scores, (1, 3), ["a", "b"], config)


def test_softmax_threshold_in_probability_units():
    scores = torch.tensor([[[0.30, 0.10]], [[0.10, 0.101]]])  # right patch: two classes nearly tied
    config = SegmentationConfig(score="softmax", logit_scale=100.0, score_threshold=0.9, upsample_mode="nearest")
    result = segment_from_patch_scores(scores, (1, 2), ["a", "b"], config)
    assert result.mask.tolist() == [[0, 2]]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="num_classes=3"):
        segment_from_patch_scores(torch.zeros(2, 2, 2), (4, 4), ["a", "b", "c"])
    with pytest.raises(ValueError, match="rename"):
        segment_from_patch_scores(
            torch.zeros(2, 2, 2), (4, 4), ["a", "background"], SegmentationConfig(score_threshold=0.0)
        )
    with pytest.raises(ValueError, match="score"):
        SegmentationConfig(score="sigmoid")


def test_overlay_blends_colours_and_adds_legend():
    rgb = np.full((6, 8, 3), 100, dtype=np.uint8)
    mask = torch.zeros(6, 8, dtype=torch.long)
    mask[:, 4:] = 2
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    image = render_overlay(rgb, mask, ["a", "b", "background"], 0.5, background_index=2, palette=palette)
    assert image.mode == "RGB" and image.width > 8 and image.height >= 6
    pixels = np.asarray(image)
    assert pixels[0, 0].tolist() == [178, 50, 50]  # 0.5 * 100 + 0.5 * red
    assert pixels[0, 7].tolist() == [100, 100, 100]  # background left unpainted
    bare = render_overlay(rgb, mask, ["a", "b", "background"], legend=False)
    assert bare.size == (8, 6)
    with pytest.raises(ValueError, match="differ in size"):
        render_overlay(rgb, mask[:3], ["a", "b", "background"])


def test_segmentation_end_to_end_with_tiny_model(tiny_model, clip_tokenizer, tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    segmenter = ZeroShotSegmenter(tiny_model, clip_tokenizer)
    names = ["water", "road", "trees"]
    config = SegmentationConfig(templates=["a satellite photo of {}."], background_prompt="background")
    result = segmenter.segment(image, names, config)
    assert result.score_maps.shape == (4, 40, 56) and result.mask.shape == (40, 56)
    assert result.class_names == ("water", "road", "trees", "background")
    assert torch.equal(result.mask, result.score_maps.argmax(0))
    # patch scores equal the slow way: processor -> patch features -> cosine with each prompt embedding
    pixel_values = segmenter.image_processor(image)["pixel_values"]
    with torch.no_grad():
        patches = tiny_model.get_patch_features(pixel_values)[0].double()
    texts = encode_queries(tiny_model, clip_tokenizer, names, ["a satellite photo of {}."]).double()
    reference = torch.stack([(patches * t).sum(-1) for t in texts])
    assert result.patch_scores.shape == (3, 4, 4)
    assert torch.allclose(result.patch_scores.double(), reference, atol=1e-5)
    assert torch.allclose(patch_similarity(patches, texts), reference.float(), atol=1e-5)
    assert np.array_equal(result.image, image)
    path = tmp_path / "overlay.png"
    result.overlay().save(path)
    assert path.stat().st_size > 0


def test_evaluate_segmentation_matches_per_image_metrics(tiny_model, clip_tokenizer):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8) for _ in range(2)]
    targets = [rng.integers(0, 2, size=(24, 32)) for _ in range(2)]
    segmenter = ZeroShotSegmenter(tiny_model, clip_tokenizer)
    config = SegmentationConfig(templates=None)
    metrics = evaluate_segmentation(segmenter, zip(images, targets), ["water", "road"], config)
    preds = [segmenter.segment(image, ["water", "road"], config).mask for image in images]
    reference = segmentation_metrics(torch.stack(preds), np.stack(targets), 2)
    assert torch.equal(metrics.confusion, reference.confusion) and metrics.classnames == ("water", "road")


def test_segment_real_naip_geotiff(tiny_model, clip_tokenizer):
    rasterio = pytest.importorskip("rasterio")
    path = shared_data("naip-nd", "m_4709963_se_14_1_20200831.tif")
    with rasterio.open(path) as src:
        bands = src.read()
    result = ZeroShotSegmenter(tiny_model, clip_tokenizer).segment(path, ["water", "crop field"])
    assert result.mask.shape == bands.shape[1:] and result.score_maps.shape == (2, *bands.shape[1:])
    assert np.array_equal(result.image, np.moveaxis(bands[:3], 0, -1))  # NAIP RGBN: the overlay shows R, G, B


def test_render_score_map_colours_low_and_high_scores():
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    scores = torch.zeros(4, 6)
    scores[:, 3:] = 1.0
    picture = np.asarray(render_score_map(rgb, scores, alpha=1.0))
    assert picture[0, 0].tolist() == [68, 1, 84] and picture[0, 5].tolist() == [253, 231, 37]  # viridis ends
    coarse = render_score_map(rgb, torch.tensor([[0.0, 1.0]]), alpha=0.5)  # upsampled to the image
    assert coarse.size == (6, 4)


def test_pool_to_grid_averages_each_label_cell():
    torch.manual_seed(1)
    scores = torch.rand(3, 64, 48)
    pooled = pool_to_grid(scores, (4, 3))  # 16 x 16 pixel cells
    reference = scores.double().reshape(3, 4, 16, 3, 16).mean(dim=(2, 4))
    assert pooled.shape == (3, 4, 3) and torch.allclose(pooled.double(), reference, atol=1e-6)
    assert torch.equal(pool_to_grid(scores, (64, 48)), scores)
    with pytest.raises(ValueError, match="finer than"):
        pool_to_grid(scores, (128, 96))
    with pytest.raises(ValueError, match="aspect ratios"):
        pool_to_grid(scores, (4, 4))


def test_evaluate_segmentation_scores_coarse_masks_on_their_own_grid(tiny_model, clip_tokenizer):
    """NAIP land-cover labels at 1/16 of the image are scored by pooling, not rejected."""
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8) for _ in range(3)]
    targets = [rng.integers(0, 3, size=(4, 4)) for _ in range(3)]
    targets[0][0, 0] = 255  # an invalid cell is skipped
    segmenter = ZeroShotSegmenter(tiny_model, clip_tokenizer)
    names, config = ["water", "road", "trees"], SegmentationConfig(templates=None)
    metrics = evaluate_segmentation(segmenter, zip(images, targets), names, config, ignore_index=255)
    preds = []
    for image in images:
        maps = segmenter.segment(image, names, config).score_maps.double()  # (3, 64, 64)
        preds.append(maps.reshape(3, 4, 16, 4, 16).mean(dim=(2, 4)).argmax(0))  # block means, the slow way
    reference = segmentation_metrics(torch.stack(preds), np.stack(targets), 3, ignore_index=255)
    assert torch.equal(metrics.confusion, reference.confusion) and int(metrics.confusion.sum()) == 47
    with pytest.raises(ValueError, match="sample 1: .*different aspect ratios"):
        evaluate_segmentation(segmenter, [(images[0], np.zeros((4, 8), dtype=np.int64))], names, config)
