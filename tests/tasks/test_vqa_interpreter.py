"""The program interpreter: Python's semantics on the allowed subset, and the limits that stop hostile programs."""

from __future__ import annotations

import time

import pytest

from graft_hf.tasks.vqa_api import Area, CannotAnswerError
from graft_hf.tasks.vqa_interpreter import ProgramStats, run_program
from graft_hf.tasks.vqa_program import ProgramError, parse_program, viper_program
from tests.helpers.vqa import box_mask, drawn_scene

SIZE = (40, 60)
MASKS = {
    "building": box_mask(SIZE, (2, 2, 6, 6), (20, 2, 24, 6), (40, 30, 44, 34)),  # three 4x4 buildings
    "road": box_mask(SIZE, (0, 20, 60, 22)),  # a 60x2 road across the image
}


def run(*body: str, scene=None, **limits):
    return run_program(parse_program(viper_program(*body)), scene or drawn_scene(MASKS), **limits)


def test_statements_and_expressions_follow_python():
    assert run('return image_patch.count("building")') == 3
    assert run('return image_patch.exists("building") and not image_patch.exists("lake")') is True
    body = [
        "total = 0",
        "big = []",
        'for building in image_patch.find("building"):',
        "    if building.vertical_center < 20:",
        "        continue",
        "    total += 1",
        "    big = big + [building]",
        "else:",
        "    total = total * 10",
        "return total + len(big)",
    ]
    assert run(*body) == 22  # two buildings in the north half; the for loop's else runs when no break happened
    assert run("for i in range(10):", "    if i == 3:", "        break", "return i") == 3
    assert run("x = 7", "x //= 2", "x **= 3", "x %= 5", "return -x if x > 1 else +x") == -2
    assert run("return [1, 2, 3][-1] + [4, 5, 6][0:2][1] + len('abc')") == 11
    assert run("return max(3, 9, 4) - min([5, 2]) + abs(-1) + sum([1, 2]) + int(2.7) + round(2.5)") == 15
    assert run("return 1 < 2 <= 2 < 3 != 4") is True and run("return 2 in [1, 2] and 3 not in range(3)") is True
    assert run("return 'yes' if 0 else 'no'") == "no" and run("return None or 0 or 'x'") == "x"
    assert run("return float(1) / 4") == 0.25 and run("return bool([])") is False


def test_areas_keep_their_unit_through_sums_and_scaling():
    area = run('return image_patch.area("building")')
    assert isinstance(area, Area) and area == 48.0
    assert isinstance(run('return image_patch.area("building") + image_patch.area("road")'), Area)
    assert isinstance(run('return image_patch.area("building") / 2'), Area)
    share = run('return image_patch.area("building") / image_patch.area()')
    assert not isinstance(share, Area) and share == pytest.approx(48 / 2400)
    summed = run("a = []", 'for b in image_patch.find("building"):', "    a = a + [b.area()]", "return sum(a)")
    assert isinstance(summed, Area) and summed == 48.0


HOSTILE = [
    (("x = [0] * 10**9", "return 1"), "Mult needs numbers, got list and int"),
    (("s = 'x' * 10**9", "return s"), "Mult needs numbers, got str and int"),
    (("return 10 ** 100000",), "powers are limited"),
    (("return 999999 ** 64",), "number larger than"),
    (("s = 'abcdefghij'", "for i in range(20):", "    s = s + s", "return s"), "string longer than 1000 characters"),
    (("x = []", "for i in range(20):", "    x = x + x + [i]", "return len(x)"), "sequence longer than 10000 items"),
    (("return range(10 ** 12)",), "sequence longer than 10000 items"),
    (
        ("x = 0", "for i in range(10000):", "    for j in range(10000):", "        x += 1", "return x"),
        "ran past 10000 steps",
    ),
    (("return 1 / 0",), "division by zero"),
    (("return undefined_name",), "name 'undefined_name' is not defined"),
    (("return len",), "name 'len' is a function: call it"),
    (("return image_patch.find",), "has no readable attribute 'find'"),
    (("return image_patch.find('road')[5]",), "index 5 is out of range for a sequence of 1 items"),
    (("return image_patch.left_of(3)",), "left_of() relates two regions"),
    (("return len(3)",), "len() takes a list or a string"),
    (("return image_patch.find('road')[0]",), "returned a region, not an answer"),
    (("return image_patch.find('road')",), "returned a list, not an answer"),
    (("x = 1",), "returned no answer"),
    (("return image_patch.count()",), "count() failed"),
    (("return image_patch.find('road') < 3",), "cannot order list and int"),
    (("return image_patch.crop(100, 100, 200, 200)",), "crop(100, 100, 200, 200) holds none of"),
    (
        ("x = 1e15", "for i in range(30):", "    x = x * 1e15", "return image_patch.crop(x, 0, 1, 1)"),
        "the result is not a finite number",
    ),
    (("return image_patch.near(image_patch, max_distance_m='far')",), "near() failed"),
]


@pytest.mark.parametrize(("body", "reason"), HOSTILE)
def test_hostile_and_broken_programs_stop_with_the_reason(body, reason):
    start = time.monotonic()
    with pytest.raises((ProgramError, CannotAnswerError), match=reason.replace("(", r"\(").replace(")", r"\)")):
        run(*body)
    assert time.monotonic() - start < 5


def test_time_limit_counts_api_calls():
    scene = drawn_scene(MASKS, delay_s=0.2)
    body = ["n = 0", "for name in ['a', 'b', 'c', 'd', 'e', 'f']:", "    n += image_patch.count(name)", "return n"]
    start = time.monotonic()
    with pytest.raises(ProgramError, match=r"ran past its time limit of 0.5 s \(line"):
        run(*body, scene=scene, time_limit_s=0.5)
    assert time.monotonic() - start < 1.5
    assert run(*body, scene=drawn_scene(MASKS), time_limit_s=0.5) == 0


def test_step_limit_is_configurable():
    assert run("x = 0", "for i in range(100):", "    x += i", "return x") == 4950
    with pytest.raises(ProgramError, match="ran past 50 steps"):
        run("x = 0", "for i in range(100):", "    x += i", "return x", max_steps=50)


def test_concept_budget_and_caching():
    scene = drawn_scene(MASKS, max_concepts=2)
    body = ['n = image_patch.count("building") + image_patch.count("building")', 'return n + image_patch.count("road")']
    assert run(*body, scene=scene) == 7
    assert scene.detector.calls == ["building", "road"]  # each concept detected once
    with pytest.raises(CannotAnswerError, match="more than 2 different concepts"):
        run('return image_patch.count("a") + image_patch.count("b") + image_patch.count("c")', scene=scene)


def test_stats_split_the_time_between_the_api_and_the_interpreter():
    stats = ProgramStats()
    scene = drawn_scene(MASKS, delay_s=0.05)
    body = ["n = 0", 'for b in image_patch.find("building"):', "    n += 1", 'return n + len(image_patch.find("road"))']
    assert run(*body, scene=scene, stats=stats) == 4
    # ImagePatch(image), find("building"), find("road") are API calls; len is the interpreter's own built-in.
    assert stats.api_calls == 3 and stats.steps > 10
    assert 0.1 <= stats.api_seconds <= stats.seconds < 0.1 + 0.5
    failed = ProgramStats()
    with pytest.raises(ProgramError):
        run("x = 0", "for i in range(100):", "    x += i", "return x", max_steps=20, stats=failed)
    assert failed.steps == 21 and failed.api_calls == 1
