"""`graft ask` as a user runs it (a subprocess): the answer with its program, JSON counts with evidence, a refusal."""

from __future__ import annotations

import json

from tests.helpers.cli import graft


def test_ask_prints_answer_and_program(files, naip):
    done = graft("ask", "--model", files["model"], "--image", naip["tif"], "Is there a river in the image?")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] in ("answer: yes", "answer: no") and lines[1] == 'program: exists("river")'


def test_ask_json_counts_with_evidence(files):
    evidence = files["root"] / "evidence.png"
    done = graft("ask", "--model", files["model"], "--image", files["png"], "--threshold", "-1", "--json",
                 "--evidence", evidence, "How many roads are there?")  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["answerable"] and answer["value"] == 1 and answer["answer"] == "1"
    assert answer["program"] == 'count("road")' and answer["detections"] == {
        "road": {"count": 1, "total_area_m2": 40.0 * 56.0}
    }
    assert evidence.exists()


def test_ask_refuses_unanswerable_question_with_exit_2(files):
    done = graft("ask", "--model", files["model"], "--image", files["png"], "Why is the sky blue?")
    assert done.returncode == 2
    assert done.stdout.startswith("cannot answer") and "supported questions" in done.stdout
    assert "Traceback" not in done.stderr and "answer: " not in done.stdout
