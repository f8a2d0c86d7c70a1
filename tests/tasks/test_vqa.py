"""Question answering: the rule-based planner, and answers over tiny GRAFT."""

from __future__ import annotations

import numpy as np
import pytest

from graft_hf.tasks.detection import DetectionConfig, ObjectDetector
from graft_hf.tasks.vqa import (
    CannotAnswerError,
    RuleBasedPlanner,
    VisualQuestionAnswerer,
    normalize_object,
    singularize,
)
from graft_hf.tasks.vqa_program import parse_program

PLANNED = [
    ("Is there a road?", 'exists("road")'),
    ("Are there buildings in the image?", 'exists("building")'),
    ("Is there a residential area?", 'exists("residential area")'),
    ("Is a river present?", 'exists("river")'),
    ("Does the image contain any swimming pools?", 'exists("swimming pool")'),
    ("How many buildings are there?", 'count("building")'),
    ("How many houses are in the image?", 'count("house")'),
    ("What is the number of trees?", 'count("tree")'),
    ("What is the amount of medium residential buildings in the image?", 'count("medium residential building")'),
    ("Are there any roads visible?", 'exists("road")'),
    ("how many  churches can be seen", 'count("church")'),
    ("What is the area covered by water?", 'area("water")'),
    ("How much area is covered by forests?", 'area("forest")'),
    ("What is the total area occupied by parking lots?", 'area("parking lot")'),
    ("Are there more buildings than roads?", 'compare(count("building"), ">", count("road"))'),
    ("Are there fewer cars than trees in the image?", 'compare(count("car"), "<", count("tree"))'),
    ("Is the number of houses equal to the number of trees?", 'compare(count("house"), "==", count("tree"))'),
    ("Is the number of roads larger than the number of bridges?", 'compare(count("road"), ">", count("bridge"))'),
    ("Are there as many ships as harbors?", 'compare(count("ship"), "==", count("harbor"))'),
    ("Is there more water than forest?", 'compare(area("water"), ">", area("forest"))'),
    (
        "Is the area covered by grass smaller than the area covered by buildings?",
        'compare(area("grass"), "<", area("building"))',
    ),
]


@pytest.mark.parametrize(("question", "program"), PLANNED)
def test_rule_based_planner_each_question_kind(question, program):
    plan = RuleBasedPlanner().plan(question)
    assert str(plan) == program
    assert parse_program(str(plan)) == plan  # the printed program round-trips


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
    assert answer.answerable and answer.value == 1 and answer.text == "1" and answer.program == 'count("building")'
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
    bad_program = qa.answer(image, "anything", program='__import__("os")')
    assert not bad_program.answerable and "dunder" in bad_program.reason
