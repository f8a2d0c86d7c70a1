"""SAM refinement with a tiny random SAM: point prompts, masks at image size, loading errors."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from graft_hf.tasks.sam import load_sam, patch_centres, refine_segmentation, tiny_sam, top_patch_points
from graft_hf.tasks.segmentation import SegmentationConfig, segment_from_patch_scores


@pytest.fixture(scope="module")
def sam():
    return tiny_sam(seed=0, image_size=64)


def test_patch_centres_and_top_points():
    centres = patch_centres((2, 4), (20, 40))
    assert centres.shape == (2, 4, 2)
    assert centres[0, 0].tolist() == [5.0, 5.0] and centres[1, 3].tolist() == [35.0, 15.0]
    scores = torch.tensor([[0.1, 0.9, 0.2, 0.3], [0.8, 0.0, 0.7, 0.95]])
    assert top_patch_points(scores, (20, 40), k=2) == [(35.0, 15.0), (15.0, 5.0)]
    region = torch.tensor([[True, False, False, False], [True, False, True, False]])
    assert top_patch_points(scores, (20, 40), k=5, region=region) == [(5.0, 15.0), (25.0, 15.0), (5.0, 5.0)]


def test_segment_points_returns_full_resolution_masks(sam):
    image = np.random.default_rng(0).integers(0, 256, size=(48, 72, 3), dtype=np.uint8)
    out = sam.segment_points(image, [[(10.0, 20.0), (12.0, 22.0)], [(60.0, 5.0)]])
    assert out.masks.shape == (2, 48, 72) and out.masks.dtype == torch.bool
    assert out.iou_scores.shape == (2,)
    with pytest.raises(ValueError, match="at least one"):
        sam.segment_points(image, [[]])


def test_refine_segmentation_paints_sam_masks(sam):
    scores = torch.tensor([[[0.9, 0.1], [0.9, 0.1]], [[0.1, 0.9], [0.1, 0.9]]])
    config = SegmentationConfig(score="cosine", score_threshold=0.5)
    result = segment_from_patch_scores(scores, (32, 48), ["water", "road"], config)
    image = np.random.default_rng(1).integers(0, 256, size=(32, 48, 3), dtype=np.uint8)
    refined = refine_segmentation(result, sam, points_per_class=2, image=image)
    assert refined.mask.shape == (32, 48) and refined.class_names == result.class_names
    assert torch.equal(refined.score_maps, result.score_maps)
    # the mask is exactly what SAM returns for the top patch centres of each class, best class painted last
    sam_masks = sam.segment_points(image, [[(12.0, 8.0), (12.0, 24.0)], [(36.0, 8.0), (36.0, 24.0)]]).masks
    expected = torch.full((32, 48), 2)
    expected[sam_masks[0]] = 0
    expected[sam_masks[1]] = 1  # equal best scores: stable order keeps class 0 first, so class 1 is painted over
    assert torch.equal(refined.mask, expected)


def test_load_sam_round_trip_and_offline_hub_id_fails_fast(sam, tmp_path):
    sam.model.save_pretrained(tmp_path / "sam")
    sam.processor.save_pretrained(tmp_path / "sam")
    loaded = load_sam(tmp_path / "sam")
    for (name, a), b in zip(sam.model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), name
    start = time.monotonic()
    with pytest.raises(OSError, match="local SAM directory"):
        load_sam("facebook/sam-vit-base")
    assert time.monotonic() - start < 10
    with pytest.raises(FileNotFoundError, match="not found"):
        load_sam(tmp_path / "missing")
