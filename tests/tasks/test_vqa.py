"""Question answering: the rule-based planner, and answers over tiny GRAFT."""

from __future__ import annotations

import numpy as np
import pytest

from graft_hf.tasks.detection import DetectionConfig, ObjectDetector
from graft_hf.tasks.vqa import (
    CannotAnswerError,
    RuleBasedPlanner,
    VisualQuestionAnswerer,
    VQAConfig,
    format_value,
    normalize_object,
    singularize,
)
from graft_hf.tasks.vqa_api import Area
from graft_hf.tasks.vqa_program import parse_program, viper_program
from tests.helpers.vqa import DrawnDetector, box_mask

PLANNED = [
    ("Is there a road?", 'return image_patch.exists("road")'),
    ("Are there buildings in the image?", 'return image_patch.exists("building")'),
    ("Is there a residential area?", 'return image_patch.exists("residential area")'),
    ("Is a river present?", 'return image_patch.exists("river")'),
    ("Does the image contain any swimming pools?", 'return image_patch.exists("swimming pool")'),
    ("How many buildings are there?", 'return image_patch.count("building")'),
    ("How many houses are in the image?", 'return image_patch.count("house")'),
    ("What is the number of trees?", 'return image_patch.count("tree")'),
    (
        "What is the amount of medium residential buildings in the image?",
        'return image_patch.count("medium residential building")',
    ),
    ("Are there any roads visible?", 'return image_patch.exists("road")'),
    ("how many  churches can be seen", 'return image_patch.count("church")'),
    ("What is the area covered by water?", 'return image_patch.area("water")'),
    ("How much area is covered by forests?", 'return image_patch.area("forest")'),
    ("What is the total area occupied by parking lots?", 'return image_patch.area("parking lot")'),
    ("Are there more buildings than roads?", 'return image_patch.count("building") > image_patch.count("road")'),
    ("Are there fewer cars than trees in the image?", 'return image_patch.count("car") < image_patch.count("tree")'),
    (
        "Is the number of houses equal to the number of trees?",
        'return image_patch.count("house") == image_patch.count("tree")',
    ),
    (
        "Is the number of roads larger than the number of bridges?",
        'return image_patch.count("road") > image_patch.count("bridge")',
    ),
    ("Are there as many ships as harbors?", 'return image_patch.count("ship") == image_patch.count("harbor")'),
    ("Is there more water than forest?", 'return image_patch.area("water") > image_patch.area("forest")'),
    (
        "Is the area covered by grass smaller than the area covered by buildings?",
        'return image_patch.area("grass") < image_patch.area("building")',
    ),
]


@pytest.mark.parametrize(("question", "statement"), PLANNED)
def test_rule_based_planner_each_question_kind(question, statement):
    plan = RuleBasedPlanner().plan(question)
    assert str(plan) == viper_program(statement)
    assert str(parse_program(str(plan))) == str(plan)  # the printed program round-trips


@pytest.mark.parametrize(
    "question",
    [
        "",
        "What color is the roof?",
        "Is there a road or a river?",
        "How many?",
        "Is there no road?",
        "Is it a rural or an urban area?",
        "Why are there so many buildings?",
        "Are there more buildings than roads and trees?",
        "Is there a road; import os?",
        "Are there at least three bridges?",
        "Are there more buildings than roads at the top of the image?",
        "What is the area covered by buildings next to a road?",
        'Is there a road")\n    import os\n    return ("x?',
        "Are there 12 houses?",
        "Is there exactly one pool?",
    ],
)
def test_rule_based_planner_refuses_rather_than_guesses(question):
    with pytest.raises(CannotAnswerError):
        RuleBasedPlanner().plan(question)


def test_singularize_and_normalize():
    assert [singularize(w) for w in ["buildings", "cities", "churches", "grass", "bus", "people", "houses"]] == [
        "building", "city", "church", "grass", "bus", "person", "house",
    ]  # fmt: skip
    assert normalize_object("the  Tennis Courts") == "tennis court"
    with pytest.raises(CannotAnswerError, match="one object"):
        normalize_object("roads and rivers")


def test_answerer_end_to_end_with_tiny_model(tiny_model, clip_tokenizer):
    image = np.random.default_rng(0).integers(0, 256, size=(32, 40, 3), dtype=np.uint8)
    detector = ObjectDetector(tiny_model, clip_tokenizer)
    qa = VisualQuestionAnswerer(detector, config=DetectionConfig(templates=None, threshold=-2.0))  # all foreground
    answer = qa.answer(image, "How many buildings are there?", gsd=0.5)
    assert (
        answer.answerable
        and answer.value == 1
        and answer.text == "1"
        and answer.program == viper_program('return image_patch.count("building")')
    )
    area = qa.answer(image, "What is the area covered by water?", gsd=0.5)
    assert area.value == pytest.approx(32 * 40 * 0.25) and area.text == "320 m2"
    assert "water" in area.detections
    picture = area.render()
    assert picture.width == 40 and picture.height > 32  # the image plus a caption with the question and answer
    same = qa.answer(image, "Is the number of houses equal to the number of trees?")
    assert same.value is True and same.text == "yes"
    refused = qa.answer(image, "What color is the roof?")
    assert not refused.answerable and refused.value is None and refused.text.startswith("cannot answer")
    no_gsd = VisualQuestionAnswerer(detector, config=DetectionConfig(templates=None, threshold=-2.0))
    detector.model.config.gsd = None
    answer = no_gsd.answer(image, "What is the area covered by water?")
    assert not answer.answerable and "gsd" in answer.reason
    bad_program = qa.answer(image, "anything", program=viper_program('return __import__("os")'))
    assert (
        not bad_program.answerable
        and "the program was refused: names starting with an underscore" in bad_program.reason
    )
    assert bad_program.program is None and bad_program.text.startswith("cannot answer")


RELATIONAL = [
    (
        "Is there a building at the top of the image?",
        [
            "part = image_patch.crop(image_patch.left, image_patch.vertical_center, image_patch.right, "
            "image_patch.upper)",
            'return part.exists("building")',
        ],
    ),
    (
        "How many parking lots are on the right half of the image?",
        [
            "part = image_patch.crop(image_patch.horizontal_center, image_patch.lower, image_patch.right, "
            "image_patch.upper)",
            'return part.count("parking lot")',
        ],
    ),
    (
        "Is there a house next to a river?",
        [
            'for region in image_patch.find("house"):',
            '    for other in image_patch.find("river"):',
            "        if region.near(other):",
            "            return True",
            "return False",
        ],
    ),
    (
        "How many residential buildings are on the left of a road?",
        [
            "count = 0",
            'for region in image_patch.find("residential building"):',
            '    for other in image_patch.find("road"):',
            "        if region.left_of(other):",
            "            count += 1",
            "            break",
            "return count",
        ],
    ),
]


@pytest.mark.parametrize(("question", "body"), RELATIONAL)
def test_rule_based_planner_writes_spatial_programs(question, body):
    assert str(RuleBasedPlanner().plan(question)) == viper_program(*body)


def test_spatial_programs_answer_on_drawn_masks():
    size = (40, 40)
    masks = {
        "house": box_mask(size, (2, 2, 6, 6), (30, 30, 34, 34)),
        "river": box_mask(size, (10, 0, 12, 40)),
    }
    qa = VisualQuestionAnswerer(DrawnDetector(masks, gsd=1.0), vqa_config=VQAConfig(near_distance_m=5.0))
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    assert qa.answer(image, "Is there a house next to a river?").value is True  # 4 m gap
    assert qa.answer(image, "How many houses are on the left of a river?").value == 1
    assert qa.answer(image, "How many houses are at the bottom of the image?").value == 1
    assert qa.answer(image, "Is there a river on the right of a house?").value is True
    assert qa.answer(image, "What is the area covered by rivers?").text == "80 m2"
    far = VisualQuestionAnswerer(DrawnDetector(masks, gsd=1.0), vqa_config=VQAConfig(near_distance_m=3.0))
    assert far.answer(image, "Is there a house next to a river?").value is False


def test_answers_are_formatted_as_rsvqa_writes_them():
    assert [format_value(v) for v in (True, False, 3, Area(1234.4), 0.25, "yes")] == [
        "yes", "no", "3", "1234 m2", "0.25", "yes",
    ]  # fmt: skip


def test_vqa_config_errors_name_the_field():
    with pytest.raises(ValueError, match="time_limit_s: must be positive"):
        VQAConfig(time_limit_s=0)
    with pytest.raises(ValueError, match="max_steps: must be at least 1"):
        VQAConfig(max_steps=0)
