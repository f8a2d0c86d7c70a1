"""`graft ask`: as a user runs it (a subprocess) the answer with its program, JSON counts with evidence and a refusal
(exit 2); in-process, programs given with --program (SAM-refined), an OpenAI-compatible endpoint on 127.0.0.1
writing the program (hostile ones refused with exit 2) and flag errors."""

from __future__ import annotations

import json

from graft_hf.tasks.vqa_program import viper_program
from graft_hf_cli import main
from tests.helpers.chat_server import chat_server
from tests.helpers.cli import graft

RIVER = viper_program('return image_patch.exists("river")')


def test_ask_prints_answer_and_program(files, naip):
    done = graft("ask", "--model", files["model"], "--image", naip["tif"], "Is there a river in the image?")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] in ("answer: yes", "answer: no") and lines[1] == "program:"
    assert "\n".join(lines[2:]) + "\n" == RIVER


def test_ask_json_counts_with_evidence(files):
    evidence = files["root"] / "evidence.png"
    done = graft("ask", "--model", files["model"], "--image", files["png"], "--threshold", "-1", "--json",
                 "--evidence", evidence, "How many roads are there?")  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["answerable"] and answer["value"] == 1 and answer["answer"] == "1"
    assert answer["program"] == viper_program('return image_patch.count("road")')
    assert answer["detections"] == {"road": {"count": 1, "total_area_m2": 40.0 * 56.0}}
    assert evidence.exists()


def ask(capsys, *args) -> tuple[int, str, str]:
    """`graft ask ...` in this process: (exit code, stdout, stderr)."""
    code = main(["ask", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ask_runs_a_given_program_with_sam(files, capsys):
    program = (
        'def execute_command(image):\\n    image_patch = ImagePatch(image)\\n    return image_patch.exists("river")'
    )
    base = ["--model", files["model"], "--image", files["png"], "--threshold", "-1"]
    code, out, _ = ask(capsys, *base, "--sam", files["sam"], "--program", program, "--json", "Is there a river?")
    answer = json.loads(out)
    assert code == 0 and answer["answer"] == "yes" and answer["value"] is True and answer["program"] == RIVER
    share = viper_program('rivers = image_patch.find("river")', "return rivers[0].area() / image_patch.area()")
    code, out, _ = ask(capsys, *base, "--program", share, "--gsd", "1", "What share of the image is river?")
    assert code == 0 and out.startswith("answer: 1\n")


def test_ask_refuses_unanswerable_question_with_exit_2(files):
    done = graft("ask", "--model", files["model"], "--image", files["png"], "Why is the sky blue?")
    assert done.returncode == 2
    assert done.stdout.startswith("cannot answer") and "supported questions" in done.stdout
    assert "Traceback" not in done.stderr and "answer: " not in done.stdout


def test_ask_refuses_programs_outside_the_subset_with_exit_2(files, tmp_path, capsys):
    marker = tmp_path / "pwned"
    base = ["--model", files["model"], "--image", files["png"]]
    hostile = viper_program("import os", f'os.system("touch {marker}")', "return 1")
    code, out, _ = ask(capsys, *base, "--program", hostile, "Anything?")
    assert code == 2 and out.startswith("cannot answer: the program was refused: imports are not allowed (line 3)")
    endless = viper_program("n = 0", "for i in range(9000):", "    for j in range(9000):", "        n += 1", "return n")
    code, out, _ = ask(capsys, *base, "--program", endless, "--json", "?")
    assert code == 2 and "ran past 10000 steps" in json.loads(out)["reason"]
    assert not marker.exists()


def test_ask_with_an_openai_compatible_endpoint(files, tmp_path, capsys):
    marker = tmp_path / "pwned"
    roads = viper_program('return image_patch.count("road") >= 1')
    replies = iter([
        f"```python\n{roads}```",
        viper_program(f'return __import__("os").system("touch {marker}")'),
        viper_program("x = 'a' * 10**10", "return x"),
    ])  # fmt: skip
    with chat_server(lambda body: next(replies)) as server:
        base = ["--model", files["model"], "--image", files["png"], "--threshold", "-1", "--planner", "llm",
                "--llm-url", server.url, "--llm-model", "coder"]  # fmt: skip
        code, out, _ = ask(capsys, *base, "Could a car drive through here?")
        assert code == 0 and out == f"answer: yes\nprogram:\n{roads}"
        dunder = ask(capsys, *base, "--json", "Could a car drive through here?")
        huge = ask(capsys, *base, "--json", "Could a car drive through here?")
    assert dunder[0] == 2 and "program was refused: method 'system'" in json.loads(dunder[1])["reason"]
    assert huge[0] == 2 and "Mult needs numbers" in json.loads(huge[1])["reason"]
    assert not marker.exists() and len(server.requests) == 3
    assert server.requests[0]["messages"][-1]["content"] == "Could a car drive through here?"


def test_ask_flag_errors(files, capsys):
    base = ["--model", files["model"], "--image", files["png"]]
    code, _, err = ask(capsys, *base, "--llm-url", "http://x", "Is there a road?")
    assert code == 1 and "--llm and --llm-url are used only with --planner llm" in err
    code, _, err = ask(capsys, *base, "--planner", "llm", "--llm-url", "http://127.0.0.1:9", "Is there a road?")
    assert code == 1 and "--llm-url and --llm-model go together" in err
    code, _, err = ask(capsys, *base, "--time-limit", "0", "Is there a road?")
    assert code == 1 and "--time-limit: must be positive" in err
    code, _, err = ask(capsys, *base, "--planner", "llm", "--llm-url", "http://127.0.0.1:9", "--llm-model", "m", "?")
    assert code == 1 and "could not reach the language model at http://127.0.0.1:9/chat/completions" in err
