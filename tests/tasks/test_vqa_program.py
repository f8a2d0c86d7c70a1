"""Question-answering programs: ViperGPT-form programs are accepted, anything outside the allowed subset is refused
with the construct and its line, and completions are cut to the program they hold."""

from __future__ import annotations

import pytest

from graft_hf.tasks.vqa_program import ProgramError, extract_program, parse_program, viper_program

EXISTS = 'def execute_command(image):\n    image_patch = ImagePatch(image)\n    return image_patch.exists("river")\n'


def test_viper_form_programs_are_accepted_and_keep_their_text():
    program = parse_program(EXISTS)
    assert str(program) == EXISTS and program.function.name == "execute_command"
    assert viper_program('return image_patch.exists("river")') == EXISTS
    fenced = parse_program(f"```python\n{EXISTS}```")
    assert str(fenced) == EXISTS
    loops = viper_program(
        "n = 0",
        'for building in image_patch.find("building"):',
        '    if building.area() > 100 and not building.near(image_patch.find("road")[0], max_distance_m=5):',
        "        n += 1",
        "    elif building.score is None:",
        "        continue",
        "    else:",
        "        break",
        "return bool_to_yesno(n >= 2) if n else round(n / 3, ndigits=2)",
    )
    parse_program(loops)
    annotated = EXISTS.replace("(image):", "(image) -> str:")
    assert str(parse_program(annotated)).startswith("def execute_command(image) -> str:")


MALICIOUS = [
    ("import os\n" + viper_program("return 1"), "imports are not allowed (line 1)"),
    (viper_program("import os", 'return os.system("ls")'), "imports are not allowed (line 3)"),
    (viper_program("from os import system", "return 1"), "imports are not allowed"),
    (viper_program("return image_patch.__class__"), "attribute '__class__' is not part of the ImagePatch API"),
    (
        viper_program("return ().__class__.__bases__[0].__subclasses__()"),
        "method '__subclasses__' is not part of the ImagePatch API",
    ),
    (viper_program("return __builtins__"), "names starting with an underscore are not allowed ('__builtins__')"),
    (viper_program('return __import__("os")'), "names starting with an underscore"),
    (viper_program('return getattr(image_patch, "_scene")'), "unknown function 'getattr'"),
    (viper_program('return eval("1 + 1")'), "unknown function 'eval'"),
    (viper_program('return exec("x = 1")'), "unknown function 'exec'"),
    (viper_program('return open("/etc/passwd").read()'), "method 'read' is not part of the ImagePatch API"),
    (viper_program("return globals()"), "unknown function 'globals'"),
    (viper_program("while True:", "    pass"), "while loops are not allowed (loop with for over API results) (line 3)"),
    (viper_program("def helper():", "    return 1", "return helper()"), "functions other than execute_command"),
    (viper_program("f = lambda: 1", "return 1"), "lambdas are not allowed"),
    (viper_program('return [p for p in image_patch.find("x")]'), "comprehensions are not allowed"),
    (viper_program("return {'a': 1}"), "dictionaries are not allowed"),
    (viper_program("x = f'{image_patch}'", "return 1"), "f-strings are not allowed"),
    (viper_program("try:", "    x = 1", "except Exception:", "    x = 2", "return x"), "try-blocks are not allowed"),
    (viper_program("with open('x') as f:", "    pass", "return 1"), "with-blocks are not allowed"),
    (viper_program("global x", "return 1"), "global is not allowed"),
    (viper_program("del image_patch", "return 1"), "del is not allowed"),
    (viper_program("raise SystemExit", "return 1"), "raise is not allowed"),
    (viper_program("len = 3", "return len"), "'len' names an API function"),
    (viper_program("image_patch.left = 3", "return 1"), "assign to one plain variable"),
    (viper_program("a, b = 1, 2", "return a"), "assign to one plain variable"),
    (viper_program("return image_patch.find(*['x'])"), "star arguments are not allowed"),
    (viper_program('return image_patch.find(object_name="x")'), "find() takes no keyword argument 'object_name'"),
    (viper_program("return 1 << 100"), "operator LShift is not allowed"),
    (viper_program("return ~1"), "the ~ operator is not allowed"),
    (viper_program("return b'bytes'"), "bytes literals are not allowed"),
    (viper_program("return 10 ** 10 ** 10 if False else 12345678901234567890"), "integer literals are at most"),
    (viper_program(f"return '{'x' * 300}'"), "string literals are at most 200 characters"),
    (viper_program("return image_patch.crop(1e999, 0, 1, 1)"), "number literals are finite"),
    (viper_program("return image_patch.find('x')[0].cropped_image"), "attribute 'cropped_image' is not part"),
    ("def main(image):\n    return 1\n", "functions other than execute_command are not allowed (line 1)"),
    ("def execute_command(image, extra=1):\n    return 1\n", "takes exactly one argument"),
    ("@decorator\ndef execute_command(image):\n    return 1\n", "takes exactly one argument"),
    (EXISTS + "\nexecute_command(None)\n", "only `def execute_command(image):` may appear at top level"),
    (EXISTS + EXISTS, "defines `def execute_command(image):` exactly once"),
    ("x = 1\n", "only `def execute_command(image):` may appear at top level"),
    ("return image_patch.exists(", "not valid Python syntax"),
    ("", "empty program"),
    ("def execute_command(image):\n" + "    x = 1\n" * 800, "program longer than 4000 characters"),
]


@pytest.mark.parametrize(("source", "reason"), MALICIOUS)
def test_anything_outside_the_subset_is_refused_with_the_reason(source, reason):
    with pytest.raises(ProgramError, match=reason.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        parse_program(source)


def test_deep_nesting_is_refused():
    nested = "x = " + "(" * 30 + "1" + ")" * 30  # parentheses add no nodes; nested calls do
    parse_program(viper_program(nested, "return x"))
    deep = "x = " + "abs(" * 40 + "1" + ")" * 40
    with pytest.raises(ProgramError, match="nested deeper than 24 levels"):
        parse_program(viper_program(deep, "return x"))


def test_extract_program_from_completions():
    assert str(extract_program(f"Here is the program:\n```python\n{EXISTS}```\nIt checks for rivers.")) == EXISTS
    assert str(extract_program(f"Sure.\n{EXISTS}")) == EXISTS
    body = 'image_patch = ImagePatch(image)\nreturn image_patch.count("car")'
    assert "return image_patch.count" in str(extract_program(body))
    with pytest.raises(ProgramError, match="holds no `def execute_command"):
        extract_program("I cannot see the image.")
    with pytest.raises(ProgramError, match="imports are not allowed"):
        extract_program(f"```python\nimport os\n{EXISTS}```")
    with pytest.raises(ProgramError, match="not text"):
        extract_program(None)
