"""Zero-shot detection: components, boxes and areas on hand-made score maps; end to end with tiny GRAFT and SAM."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from graft_hf.tasks.detection import (
    DetectionConfig,
    ObjectDetector,
    instances_from_score_map,
    pixel_area_m2,
    render_detections,
)
from graft_hf.tasks.sam import SamMasks, tiny_sam, top_patch_points
from graft_hf.tasks.segmentation import patch_similarity
from tests.helpers.data import shared_data


def _hand_made_map() -> torch.Tensor:
    scores = torch.zeros(6, 8)
    scores[0:2, 0:3] = 0.8  # 6-pixel blob, box (0, 0, 3, 2)
    scores[1, 1] = 0.95
    scores[2, 3] = 0.5  # touches the first blob only diagonally
    scores[4:6, 6:8] = 0.6  # 4-pixel blob
    return scores


def test_components_boxes_scores_and_areas():
    instances = instances_from_score_map(_hand_made_map(), 0.4, "house", pixel_area=0.36, connectivity=4)
    assert [i.num_pixels for i in instances] == [6, 4, 1]
    first = instances[0]
    assert first.label == "house" and first.box == (0, 0, 3, 2)
    assert first.score == pytest.approx(0.95) and first.mean_score == pytest.approx((5 * 0.8 + 0.95) / 6)
    assert first.area_m2 == pytest.approx(6 * 0.36)
    assert instances[1].box == (6, 4, 8, 6) and instances[2].box == (3, 2, 4, 3)
    assert int(sum(i.mask.sum() for i in instances)) == 11
    eight = instances_from_score_map(_hand_made_map(), 0.4, "house", connectivity=8)
    assert [i.num_pixels for i in eight] == [7, 4] and eight[0].area_m2 is None
    filtered = instances_from_score_map(_hand_made_map(), 0.4, "house", 0.36, 4, min_pixels=2, min_area_m2=2.0)
    assert [i.num_pixels for i in filtered] == [6]
    with pytest.raises(ValueError, match="gsd"):
        instances_from_score_map(_hand_made_map(), 0.4, "house", min_area_m2=2.0)


def _slow_components(binary: np.ndarray, connectivity: int) -> list[set[tuple[int, int]]]:
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    seen, components = set(), []
    for start in zip(*np.nonzero(binary)):
        if start in seen:
            continue
        queue, component = deque([start]), {start}
        seen.add(start)
        while queue:
            r, c = queue.popleft()
            for dr, dc in steps:
                n = (r + dr, c + dc)
                if 0 <= n[0] < binary.shape[0] and 0 <= n[1] < binary.shape[1] and binary[n] and n not in seen:
                    seen.add(n)
                    component.add(n)
                    queue.append(n)
        components.append(component)
    return components


@pytest.mark.parametrize("connectivity", [4, 8])
def test_components_equal_flood_fill_reference(connectivity):
    scores = torch.rand(19, 23, generator=torch.Generator().manual_seed(connectivity))
    instances = instances_from_score_map(scores, 0.6, "x", connectivity=connectivity)
    got = sorted(sorted(map(tuple, torch.nonzero(i.mask).tolist())) for i in instances)
    expected = sorted(
        sorted((int(r), int(c)) for r, c in comp) for comp in _slow_components(scores.numpy() >= 0.6, connectivity)
    )
    assert got == expected


def test_pixel_area_accounts_for_resizing():
    assert pixel_area_m2(0.6, (100, 100)) == pytest.approx(0.36)
    # a 1000 x 1000 raster at 0.6 m shown as a 250 x 500 image: pixels are 2.4 m tall and 1.2 m wide
    assert pixel_area_m2(0.6, (250, 500), original_size=(1000, 1000)) == pytest.approx(2.4 * 1.2)
    assert pixel_area_m2((10.0, 20.0), (5, 5)) == pytest.approx(200.0)
    with pytest.raises(ValueError, match="positive"):
        pixel_area_m2(0.0, (5, 5))


@pytest.fixture(scope="module")
def detector():
    from graft_hf.testing import tiny_graft_model
    from graft_hf.tokenizer import load_clip_tokenizer

    return ObjectDetector(tiny_graft_model(seed=0), load_clip_tokenizer(), sam=tiny_sam(seed=0, image_size=64))


def test_detect_end_to_end_with_tiny_model(detector):
    image = np.random.default_rng(0).integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    prepared = detector.prepare(image)
    probe = detector.detect(prepared, "building", DetectionConfig(templates=None, threshold=-2.0), gsd=0.5)
    assert probe.count == 1 and probe.instances[0].num_pixels == 40 * 48  # everything passes a threshold of -2
    threshold = float(probe.score_map.quantile(0.7))
    result = detector.detect(prepared, "building", DetectionConfig(templates=None, threshold=threshold), gsd=0.5)
    assert result.score_map.shape == (40, 48)
    assert torch.equal(result.union_mask(), result.score_map >= threshold)
    assert result.total_area_m2 == pytest.approx(float((result.score_map >= threshold).sum()) * 0.25)
    resized = detector.detect(
        prepared, "building", DetectionConfig(templates=None, threshold=threshold), gsd=0.5, original_size=(80, 96)
    )
    assert resized.total_area_m2 == pytest.approx(4 * result.total_area_m2)
    with_negatives = detector.detect(
        prepared, "building", DetectionConfig(templates=None, negatives=("road",), threshold=0.5)
    )
    assert with_negatives.score_map.min() >= 0 and with_negatives.score_map.max() <= 1
    picture = result.render()
    assert picture.size == (48, 40)


class _FakeSam:
    """Returns fixed masks and records the prompts it was given."""

    def __init__(self, masks: torch.Tensor) -> None:
        self.masks, self.points = masks, None

    def segment_points(self, image, points):
        self.points = points
        return SamMasks(self.masks[: len(points)], torch.ones(len(points)))


def test_sam_refinement_replaces_masks_and_keeps_thresholded_mask_when_sam_is_empty(detector):
    image = np.random.default_rng(1).integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    prepared = detector.prepare(image)
    config = DetectionConfig(templates=None, threshold=-2.0, refine_with_sam=True, sam_points=2)
    sam_mask = torch.zeros(40, 48, dtype=torch.bool)
    sam_mask[10:20, 5:9] = True
    fake = _FakeSam(sam_mask[None])
    refined = ObjectDetector(detector.model, detector.segmenter.tokenizer, sam=fake).detect(
        prepared, "tree", config, gsd=2.0
    )
    inst = refined.instances[0]
    assert torch.equal(inst.mask, sam_mask) and inst.box == (5, 10, 9, 20)
    assert inst.num_pixels == 40 and inst.area_m2 == pytest.approx(160.0)
    patch_scores = patch_similarity(prepared.patch_embeds, detector.segmenter.encode_queries(["tree"], None))[0]
    assert fake.points == [top_patch_points(patch_scores, (40, 48), k=2)]  # one instance covering every patch
    empty = _FakeSam(torch.zeros(1, 40, 48, dtype=torch.bool))
    kept = ObjectDetector(detector.model, detector.segmenter.tokenizer, sam=empty).detect(prepared, "tree", config)
    assert kept.instances[0].num_pixels == 40 * 48
    with pytest.raises(ValueError, match="SAM"):
        ObjectDetector(detector.model, detector.segmenter.tokenizer).detect(prepared, "tree", config)


def test_detect_with_tiny_sam(detector):
    image = np.random.default_rng(2).integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    config = DetectionConfig(templates=None, threshold=-2.0, refine_with_sam=True)
    result = detector.detect(image, "tree", config, gsd=1.0)
    assert result.count == 1 and result.instances[0].mask.shape == (40, 48)
    assert result.instances[0].area_m2 == pytest.approx(result.instances[0].num_pixels)


def test_render_detections_checks_sizes():
    instances = instances_from_score_map(_hand_made_map(), 0.4, "house", pixel_area=1.0)
    picture = render_detections(np.zeros((6, 8, 3), dtype=np.uint8), instances)
    assert picture.size == (8, 6)
    with pytest.raises(ValueError, match="does not match"):
        render_detections(np.zeros((5, 8, 3), dtype=np.uint8), instances)


def test_detect_on_real_naip_geotiff_uses_raster_gsd(detector):
    rasterio = pytest.importorskip("rasterio")
    path = shared_data("naip-nd", "m_4709963_se_14_1_20140720.tif")
    with rasterio.open(path) as src:
        gsd, size = src.res, (src.height, src.width)  # (5.0, 5.0) m: these NAIP files are resampled to 5 m
    prepared = detector.prepare(path)
    assert prepared.size == size
    probe = detector.detect(prepared, "field", DetectionConfig(templates=None, threshold=-2.0))
    threshold = float(probe.score_map.quantile(0.9))
    result = detector.detect(prepared, "field", DetectionConfig(templates=None, threshold=threshold), gsd=gsd)
    pixels = int((result.score_map >= threshold).sum())
    assert result.total_area_m2 == pytest.approx(pixels * gsd[0] * gsd[1])
    assert sum(i.area_m2 for i in result.instances) == pytest.approx(result.total_area_m2)


def test_sam_points_for_instances_smaller_than_a_patch():
    from graft_hf.tasks.detection import _sam_points

    scores = torch.zeros(10, 10)
    scores[0, 0:3] = 0.9  # a 1 x 3 sliver along the top edge: no patch centre (at rows 2.5, 7.5) lies inside
    instance = instances_from_score_map(scores, 0.5, "wall")[0]
    assert _sam_points(instance, torch.rand(2, 2), (10, 10), k=3) == [(1.5, 0.5)]
    scores[2:5, 2:5] = 0.9  # a second component holding one patch centre, of patch (0, 0) at (x, y) = (2.5, 2.5)
    instance = max(instances_from_score_map(scores, 0.5, "wall"), key=lambda i: i.num_pixels)
    assert _sam_points(instance, torch.rand(2, 2), (10, 10), k=3) == [(2.5, 2.5)]
