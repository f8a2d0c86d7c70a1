"""The image API of question-answering programs: regions, areas, crops and spatial relations checked against masks
drawn by hand (and the slow obvious distance), and SAM refinement through the real detector."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graft_hf.tasks.detection import DetectionConfig, ObjectDetector
from graft_hf.tasks.sam import tiny_sam
from graft_hf.tasks.vqa_api import Area, CannotAnswerError, ImagePatch, ImageScene, distance
from tests.helpers.vqa import box_mask, drawn_scene

SIZE = (40, 60)  # rows, columns
MASKS = {
    "house": box_mask(SIZE, (2, 2, 6, 6), (50, 30, 56, 36)),  # north-west 4x4 and south-east 6x6
    "river": box_mask(SIZE, (10, 0, 13, 40)),  # a 3 px wide river running north-south
    "field": box_mask(SIZE, (20, 20, 40, 40)),
}


@pytest.fixture
def image_patch():
    return ImagePatch(drawn_scene(MASKS, gsd=0.5))


def test_find_gives_regions_with_viper_coordinates(image_patch):
    assert (image_patch.left, image_patch.lower, image_patch.right, image_patch.upper) == (0, 0, 60, 40)
    houses = image_patch.find("house")
    assert len(houses) == 2 and image_patch.count("house") == 2 and image_patch.exists("house")
    north_west = next(h for h in houses if h.left == 2)
    # rows 2..5 of 40 counted from the bottom: lower = 40 - 6, upper = 40 - 2
    assert (north_west.left, north_west.lower, north_west.right, north_west.upper) == (2, 34, 6, 38)
    assert (north_west.width, north_west.height, north_west.horizontal_center, north_west.vertical_center) == (
        4, 4, 4.0, 36.0,
    )  # fmt: skip
    assert north_west.label == "house" and north_west.score == 1.0 and image_patch.label is None
    assert not image_patch.exists("castle") and image_patch.find("castle") == []


def test_areas_and_coverage_in_square_metres(image_patch):
    area = image_patch.area("house")
    assert isinstance(area, Area) and area == pytest.approx((16 + 36) * 0.25)
    assert image_patch.area() == pytest.approx(40 * 60 * 0.25)
    assert image_patch.find("field")[0].area() == pytest.approx(400 * 0.25)
    assert image_patch.coverage("river") == pytest.approx(3 * 40 / 2400)
    with pytest.raises(CannotAnswerError, match="area needs the image's ground sample distance"):
        ImagePatch(drawn_scene(MASKS, gsd=None)).area("house")


def test_crop_restricts_find_to_the_box(image_patch):
    north = image_patch.crop(image_patch.left, image_patch.vertical_center, image_patch.right, image_patch.upper)
    assert (north.lower, north.upper) == (20, 40) and north.count("house") == 1
    assert north.area("river") == pytest.approx(3 * 20 * 0.25)  # the river clipped to the north half
    clipped = north.find("river")[0]
    assert (clipped.lower, clipped.upper, clipped.height) == (20, 40, 20)
    inside_field = image_patch.find("field")[0].find("house")
    assert inside_field == []  # the south-east house lies outside the field


def test_spatial_relations(image_patch):
    north_west, south_east = sorted(image_patch.find("house"), key=lambda h: h.left)
    river = image_patch.find("river")[0]
    field = image_patch.find("field")[0]
    assert north_west.left_of(river) and south_east.right_of(river) and not north_west.right_of(river)
    assert north_west.above(south_east) and south_east.below(north_west)
    assert south_east.overlaps(image_patch) and not north_west.overlaps(river)
    # The gap between the north-west house (columns 2..5) and the river (columns 10..12): 4 empty columns = 2 m.
    assert distance(north_west, river) == pytest.approx(4 * 0.5) == north_west.distance(river)
    assert north_west.near(river) and north_west.near(river, max_distance_m=2.0)
    assert not north_west.near(river, max_distance_m=1.5)
    assert distance(field, river) == pytest.approx(7 * 0.5)
    assert distance(image_patch, river) == 0.0


def test_distance_matches_the_slow_obvious_minimum():
    rng = np.random.default_rng(0)
    a = np.zeros(SIZE, dtype=bool)
    b = np.zeros(SIZE, dtype=bool)
    a[rng.integers(0, 40, 5), rng.integers(0, 25, 5)] = True
    b[rng.integers(0, 40, 5), rng.integers(35, 60, 5)] = True
    scene = drawn_scene({"a": a, "b": b}, gsd=(2.0, 0.5))  # rows 2 m, columns 0.5 m apart
    patch = ImagePatch(scene)
    region_a = ImagePatch(scene, (0, 0, 60, 40), torch.from_numpy(a))
    region_b = ImagePatch(scene, (0, 0, 60, 40), torch.from_numpy(b))
    pa, pb = np.argwhere(a), np.argwhere(b)
    centres = min(math.hypot((r1 - r2) * 2.0, (c1 - c2) * 0.5) for r1, c1 in pa for r2, c2 in pb)
    assert distance(region_a, region_b) == pytest.approx(centres - 0.5)  # the gap: centre distance less one pixel
    assert patch.count("a") == len(pa)


def test_concept_names_are_checked():
    patch = ImagePatch(drawn_scene(MASKS))
    for bad in ("", "x" * 65, "rm -rf /; ls", 3):
        with pytest.raises(CannotAnswerError, match="concept name"):
            patch.find(bad)
    with pytest.raises(CannotAnswerError, match=r"ImagePatch\(image\)"):
        ImagePatch("not an image")


def test_sam_refines_every_found_region(tiny_model, clip_tokenizer):
    sam = tiny_sam(seed=0, image_size=64)
    detector = ObjectDetector(tiny_model, clip_tokenizer, sam=sam)
    rgb = np.random.default_rng(1).integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    prepared = detector.prepare(rgb)
    plain = DetectionConfig(templates=None, threshold=-1.0)
    refined = DetectionConfig(templates=None, threshold=-1.0, refine_with_sam=True)
    scene = ImageScene(detector, prepared, refined, gsd=1.0)
    regions = ImagePatch(scene).find("building")
    expected = detector.detect(prepared, "building", refined, gsd=1.0)
    unrefined = detector.detect(prepared, "building", plain, gsd=1.0)
    assert len(regions) == expected.count >= 1
    for region, instance in zip(regions, expected.instances):
        assert torch.equal(region.region(), instance.mask)
    assert not torch.equal(regions[0].region(), unrefined.instances[0].mask)  # SAM changed the mask
