"""Question-answering programs: the parser accepts the API's forms and nothing else, the interpreter runs them on a
scene.
"""

from __future__ import annotations

import pytest

from graft_hf.tasks.vqa_program import Compare, Number, ProgramError, Query, parse_program, run_program


def test_parse_program_accepts_api_forms():
    assert parse_program('count("building")') == Query("count", "building")
    assert parse_program('```python\nanswer = exists("road")\n```') == Query("exists", "road")
    assert parse_program('count("car") >= 3') == Compare(Query("count", "car"), ">=", Number(3.0))
    assert parse_program('compare(area("water"), "<", area("forest"))') == Compare(
        Query("area", "water"), "<", Query("area", "forest")
    )


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ('__import__("os").system("ls")', "attribute access"),
        ('__import__("os")', "dunder"),
        ("import os", "imports"),
        ("from os import system", "imports"),
        ('count("x").real', "attribute access"),
        ('open("/etc/passwd")', "unknown function"),
        ('eval("1")', "unknown function"),
        ('(lambda: count("x"))()', "only the API functions"),
        ('lambda: count("x")', "lambdas"),
        ('for x in range(3): count("x")', "loops"),
        ('while True: count("x")', "loops"),
        ('[count("x") for x in "ab"]', "comprehensions"),
        ("building", "variables"),
        ("__builtins__", "dunder"),
        ('count(name="x")', "keyword"),
        ('count("x", "y")', "exactly one"),
        ('count("x"); count("y")', "one expression"),
        ('count("__class__")', "invalid object name"),
        ('count("a.b")', "invalid object name"),
        ('compare(count("a"), "in", count("b"))', "operator"),
        ('compare(exists("a"), "==", 1)', "numbers on both sides"),
        ('count("a") > count("b") > 1', "comparisons take one"),
        ("3", "bare number"),
        ('"road"', "argument"),
        ('count("x") + 1', "BinOp"),
        ('count("x"', "syntax"),
        ("", "empty"),
        ('def f(): return count("x")', "function definitions"),
    ],
)
def test_parse_program_rejects_everything_outside_the_api(program, message):
    with pytest.raises(ProgramError, match=message):
        parse_program(program)


class _FakeScene:
    counts = {"building": 3, "road": 2, "tree": 3}
    areas = {"water": 120.5, "forest": 80.0}

    def exists(self, name):
        return self.counts.get(name, 0) > 0

    def count(self, name):
        return self.counts.get(name, 0)

    def area(self, name):
        return self.areas.get(name, 0.0)


@pytest.mark.parametrize(
    ("program", "value"),
    [
        ('exists("road")', True),
        ('exists("ship")', False),
        ('count("building")', 3),
        ('area("water")', 120.5),
        ('compare(count("building"), ">", count("road"))', True),
        ('compare(count("building"), "==", count("tree"))', True),
        ('compare(count("building"), "!=", count("tree"))', False),
        ('compare(area("water"), "<", area("forest"))', False),
        ('count("road") >= 2', True),
    ],
)
def test_run_program_interprets_against_the_scene(program, value):
    result = run_program(parse_program(program), _FakeScene())
    assert result == value and type(result) is type(value)
