"""RSVQA-HR evaluation: the split files in the dataset's layout, sampling, RSVQA's answer bins, and scores per
question type computed on a run whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graft_hf.evaluation.vqa import (
    FolderImageSource,
    RSVQAQuestion,
    VQAEvalConfig,
    area_bucket,
    count_bucket,
    evaluate_vqa,
    load_rsvqa,
    predicted_answer,
    reference_answer,
    sample_questions,
)
from graft_hf.tasks.vqa import VisualQuestionAnswerer
from graft_hf.tasks.vqa_api import Area
from tests.helpers.data import shared_data
from tests.helpers.rsvqa import ROWS, write_naip_images, write_rsvqa
from tests.helpers.vqa import DrawnDetector, box_mask

NAIP = ("naip-nd", "m_4709963_se_14_1_20200831.tif")


def test_load_reads_active_questions_of_the_split_only(tmp_path):
    write_rsvqa(tmp_path)
    questions, skipped = load_rsvqa(tmp_path, "test")
    assert [q.id for q in questions] == [row[0] for row in ROWS if row[5] == "test"] and skipped == {}
    assert questions[0] == RSVQAQuestion(1, 1, "presence", "Is there a building?", "no")
    val, _ = load_rsvqa(tmp_path, "val")
    assert [q.id for q in val] == [0]


def test_load_skips_and_counts_inconsistent_entries(tmp_path):
    write_rsvqa(tmp_path)
    path = tmp_path / "USGS_split_test_answers.json"
    answers = json.loads(path.read_text())
    answers["answers"][4]["active"] = False  # question 4 keeps no active answer
    path.write_text(json.dumps(answers))
    path = tmp_path / "USGS_split_test_images.json"
    images = json.loads(path.read_text())
    images["images"][3]["questions_ids"] = []  # image 3 no longer lists question 10
    path.write_text(json.dumps(images))
    questions, skipped = load_rsvqa(tmp_path, "test")
    assert 4 not in [q.id for q in questions] and 10 not in [q.id for q in questions]
    assert skipped == {"no active answer for the question": 1, "its image does not list it": 1}


def test_missing_and_malformed_files_say_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="USGS_split_test_questions.json not found"):
        load_rsvqa(tmp_path, "test")
    write_rsvqa(tmp_path)
    (tmp_path / "USGS_split_test_images.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="not an RSVQA images file"):
        load_rsvqa(tmp_path, "test")


def test_sampling_is_seeded_and_filtered_by_type(tmp_path):
    questions, _ = load_rsvqa(write_rsvqa(tmp_path), "test")
    first = sample_questions(questions, 4, seed=3)
    assert first == sample_questions(questions, 4, seed=3) and len(first) == 4
    assert first != sample_questions(questions, 4, seed=4) or first != sample_questions(questions, 4, seed=5)
    assert {q.type for q in sample_questions(questions, None, types=("count",))} == {"count"}
    assert len(sample_questions(questions, 500)) == len(questions)


def test_rsvqa_answer_bins():
    assert [area_bucket(a) for a in (0, 0.4, 10, 10.5, 100, 999, 1000, 1000.5, 1e6)] == [
        "0m2", "between 0m2 and 10m2", "between 0m2 and 10m2", "between 10m2 and 100m2", "between 10m2 and 100m2",
        "between 100m2 and 1000m2", "between 100m2 and 1000m2", "more than 1000m2", "more than 1000m2",
    ]  # fmt: skip
    assert [count_bucket(n) for n in (0, 1, 10, 11, 100, 101, 1000, 1001)] == [
        "0", "between 1 and 10", "between 1 and 10", "between 11 and 100", "between 11 and 100",
        "between 101 and 1000", "between 101 and 1000", "more than 1000",
    ]  # fmt: skip
    area = RSVQAQuestion(1, 1, "area", "?", "1530m2")
    assert reference_answer(area) == "more than 1000m2" and predicted_answer("area", Area(1001.0)) == reference_answer(
        area
    )
    count = RSVQAQuestion(2, 1, "count", "?", "12")
    assert reference_answer(count) == "12" and reference_answer(count, count_buckets=True) == "between 11 and 100"
    assert (
        predicted_answer("count", 12) == "12"
        and predicted_answer("count", 12, count_buckets=True) == "between 11 and 100"
    )
    assert predicted_answer("count", True) is None and predicted_answer("count", 2.5) is None
    assert predicted_answer("presence", True) == "yes" and predicted_answer("comp", "No") == "no"
    assert (
        predicted_answer("presence", 3) is None and reference_answer(RSVQAQuestion(3, 1, "comp", "?", "Yes")) == "yes"
    )
    with pytest.raises(ValueError, match="neither 'Nm2' nor a bin"):
        reference_answer(RSVQAQuestion(4, 1, "area", "?", "large"))


def test_scores_per_type_on_real_naip_crops_with_known_answers(tmp_path):
    """Answers come from drawn masks (the same for every image), so every score is known in advance."""
    questions, _ = load_rsvqa(write_rsvqa(tmp_path), "test")
    images = write_naip_images(tmp_path / "naip", shared_data(*NAIP), [1, 2])  # image 3 has no file
    source = FolderImageSource(images)
    _, gsd = source.load(1)
    assert gsd == pytest.approx(5.0, rel=0.1)  # read from the GeoTIFF
    size = (48, 48)
    masks = {
        "road": box_mask(size, (0, 20, 48, 22)),
        "residential building": box_mask(size, (2, 2, 6, 6), (10, 2, 14, 6), (30, 30, 34, 34)),
    }
    qa = VisualQuestionAnswerer(DrawnDetector(masks, gsd=gsd))
    report = evaluate_vqa(qa, questions, source, progress=False)
    by_id = {r["id"]: r for r in report.records}
    assert report.skipped == {"image missing": 1} and 10 not in by_id
    assert [by_id[i]["correct"] for i in (1, 2, 3, 4, 5, 6, 7, 8, 9)] == [
        True, True, True, False, True, True, 48 * gsd * gsd > 1000, False, False,
    ]  # fmt: skip
    assert by_id[4]["prediction"] == "yes" and by_id[4]["reference"] == "no"
    assert by_id[9]["answerable"] is False and by_id[9]["prediction"] is None and "cannot answer" in by_id[9]["text"]
    per_type = report.per_type()
    assert list(per_type) == ["presence", "comp", "count", "area"]
    assert per_type["presence"]["accuracy"] == pytest.approx(2 / 3) and per_type["presence"]["unanswerable"] == 1
    assert per_type["comp"]["accuracy"] == 0.0 and per_type["count"]["accuracy"] == 1.0
    expected = [2 / 3, 0.0, 1.0, per_type["area"]["accuracy"]]
    assert report.average_accuracy == pytest.approx(np.mean(expected))
    assert report.overall_accuracy == pytest.approx(sum(r["correct"] for r in report.records) / 9)
    table = report.markdown()
    assert "| presence | 66.67% | 2 / 3 | 1 |" in table and "| comparison | 0.00% | 0 / 2 | 0 |" in table
    assert "Skipped: 1 (image missing)." in table


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="image_pattern: must contain"):
        VQAEvalConfig(model="m", data="d", output_dir="o", image_pattern="x.tif")
    with pytest.raises(ValueError, match="num_questions: must be at least 1"):
        VQAEvalConfig(model="m", data="d", output_dir="o", num_questions=0)
