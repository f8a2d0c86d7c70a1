"""The tiny program language of GRAFT's question answering (GRAFT Sec. 3.3, after ViperGPT).

A question is answered by a program over a four-function API, written in a strict subset of Python expression
syntax::

    exists("road")                                   # -> bool
    count("building")                                # -> int
    area("water")                                    # -> float, square metres
    compare(count("building"), ">", count("road"))   # -> bool; also written count("building") > count("road")

Programs are *parsed*, never executed: the text goes through `ast.parse`, every node is checked against a
whitelist and turned into the typed nodes below, which :func:`run_program` interprets against a :class:`SceneAPI`.
Anything else (imports, attribute access, names, dunders, lambdas, loops, comprehensions, unknown functions,
keyword arguments) is rejected with a :class:`ProgramError` that says what is allowed. This is what makes
programs written by a language model safe to run.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "ALLOWED_FUNCTIONS",
    "COMPARISON_OPERATORS",
    "Compare",
    "Number",
    "Program",
    "ProgramError",
    "Query",
    "SceneAPI",
    "parse_program",
    "run_program",
]

QueryFunction = Literal["exists", "count", "area"]
ALLOWED_FUNCTIONS: tuple[str, ...] = ("exists", "count", "area", "compare")
COMPARISON_OPERATORS: tuple[str, ...] = (">", "<", ">=", "<=", "==", "!=")
_AST_OPERATORS = {ast.Gt: ">", ast.Lt: "<", ast.GtE: ">=", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}
_OBJECT_NAME = re.compile(r"^[a-z][a-z0-9 '\-]{0,63}$", re.IGNORECASE)
MAX_PROGRAM_CHARS = 1000
MAX_DEPTH = 4
_API_HELP = (
    'allowed: exists("x"), count("x"), area("x"), compare(a, op, b) with op one of '
    f"{', '.join(COMPARISON_OPERATORS)}, string and number literals"
)


class ProgramError(ValueError):
    """A program that is not valid in the question-answering language."""


@dataclass(frozen=True)
class Query:
    """`exists(name)`, `count(name)` or `area(name)`."""

    function: QueryFunction
    name: str

    def __str__(self) -> str:
        return f'{self.function}("{self.name}")'


@dataclass(frozen=True)
class Number:
    """A number literal (only inside a comparison)."""

    value: float

    def __str__(self) -> str:
        return repr(int(self.value)) if float(self.value).is_integer() else repr(self.value)


@dataclass(frozen=True)
class Compare:
    """`compare(left, op, right)` of two numeric expressions."""

    left: Query | Number
    op: str
    right: Query | Number

    def __str__(self) -> str:
        return f'compare({self.left}, "{self.op}", {self.right})'


Program = Query | Compare


class SceneAPI(Protocol):
    """What a program may ask about an image."""

    def exists(self, name: str) -> bool: ...

    def count(self, name: str) -> int: ...

    def area(self, name: str) -> float: ...


def _strip_code(text: str) -> str:
    """The code inside a Markdown fence if there is one, else the text."""
    fence = re.search(r"```[a-zA-Z]*\n?(.*?)```", text, re.DOTALL)
    return (fence.group(1) if fence else text).strip()


_STATEMENT_ERRORS: dict[type, str] = {
    ast.Import: "imports are not allowed",
    ast.ImportFrom: "imports are not allowed",
    ast.For: "loops are not allowed",
    ast.AsyncFor: "loops are not allowed",
    ast.While: "loops are not allowed",
    ast.FunctionDef: "function definitions are not allowed",
    ast.AsyncFunctionDef: "function definitions are not allowed",
    ast.ClassDef: "class definitions are not allowed",
    ast.With: "with-blocks are not allowed",
    ast.Try: "try-blocks are not allowed",
    ast.Delete: "del is not allowed",
    ast.Global: "global is not allowed",
    ast.Nonlocal: "nonlocal is not allowed",
}

_EXPRESSION_ERRORS: dict[type, str] = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "subscripts are not allowed",
    ast.Lambda: "lambdas are not allowed",
    ast.ListComp: "comprehensions (loops) are not allowed",
    ast.SetComp: "comprehensions (loops) are not allowed",
    ast.DictComp: "comprehensions (loops) are not allowed",
    ast.GeneratorExp: "comprehensions (loops) are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.NamedExpr: "assignment expressions are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.Starred: "star arguments are not allowed",
}


def parse_program(text: str) -> Program:
    """Parses and validates a program (optionally inside a Markdown code fence).

    The program is one expression; `answer = <expression>` is accepted as the same expression.

    Args:
        text: Program source, e.g. `'compare(count("building"), ">", count("road"))'`.

    Returns:
        The program as a :class:`Query` or :class:`Compare`.

    Raises:
        ProgramError: The text is not a valid program; the message says why and what is allowed.
    """
    if not isinstance(text, str):
        raise ProgramError(f"a program must be a string, got {type(text).__name__}")
    source = _strip_code(text)
    if not source:
        raise ProgramError(f"empty program; {_API_HELP}")
    if len(source) > MAX_PROGRAM_CHARS:
        raise ProgramError(f"program longer than {MAX_PROGRAM_CHARS} characters")
    try:
        module = ast.parse(source, mode="exec")
    except SyntaxError as err:
        raise ProgramError(f"not valid syntax ({err.msg}): {source!r}; {_API_HELP}") from err
    if len(module.body) != 1:
        raise ProgramError(f"a program is exactly one expression, got {len(module.body)} statements: {source!r}")
    statement = module.body[0]
    if type(statement) in _STATEMENT_ERRORS:
        raise ProgramError(f"{_STATEMENT_ERRORS[type(statement)]}; {_API_HELP}")
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
        _check_name(statement.targets[0].id)
        expression = statement.value
    elif isinstance(statement, ast.Expr):
        expression = statement.value
    else:
        raise ProgramError(f"{type(statement).__name__} statements are not allowed; {_API_HELP}")
    program = _convert(expression, 0)
    if isinstance(program, Number):
        raise ProgramError(f"a program must ask about the image, not be a bare number; {_API_HELP}")
    return program


def _check_name(name: str) -> None:
    if name.startswith("__") or name.endswith("__"):
        raise ProgramError(f"dunder names are not allowed ({name!r})")


def _object_name(node: ast.expr, function: str) -> str:
    if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
        raise ProgramError(f'{function}() takes one object name as a string literal, e.g. {function}("building")')
    name = " ".join(node.value.split())
    if not _OBJECT_NAME.match(name):
        raise ProgramError(
            f"invalid object name {node.value!r}: use 1-64 letters, digits, spaces, hyphens or apostrophes"
        )
    return name


def _convert(node: ast.expr, depth: int) -> Query | Compare | Number:
    if depth > MAX_DEPTH:
        raise ProgramError(f"program nested deeper than {MAX_DEPTH} calls")
    if type(node) in _EXPRESSION_ERRORS:
        raise ProgramError(f"{_EXPRESSION_ERRORS[type(node)]}; {_API_HELP}")
    if isinstance(node, ast.Name):
        _check_name(node.id)
        raise ProgramError(f"variables are not allowed (name {node.id!r}); {_API_HELP}")
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ProgramError(f"literal {node.value!r} can only appear as an argument; {_API_HELP}")
        if not math.isfinite(node.value):
            raise ProgramError("numbers must be finite")
        return Number(float(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        inner = _convert(node.operand, depth + 1)
        if isinstance(inner, Number):
            return Number(-inner.value)
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1 or type(node.ops[0]) not in _AST_OPERATORS:
            raise ProgramError(f"comparisons take one of {', '.join(COMPARISON_OPERATORS)} between two values")
        return _comparison(
            _convert(node.left, depth + 1), _AST_OPERATORS[type(node.ops[0])], _convert(node.comparators[0], depth + 1)
        )
    if isinstance(node, ast.Call):
        return _call(node, depth)
    raise ProgramError(f"{type(node).__name__} expressions are not allowed; {_API_HELP}")


def _call(node: ast.Call, depth: int) -> Query | Compare:
    if isinstance(node.func, ast.Attribute):
        raise ProgramError(f"attribute access is not allowed; {_API_HELP}")
    if not isinstance(node.func, ast.Name):
        raise ProgramError(f"only the API functions can be called; {_API_HELP}")
    function = node.func.id
    _check_name(function)
    if function not in ALLOWED_FUNCTIONS:
        raise ProgramError(f"unknown function {function!r}; {_API_HELP}")
    if node.keywords:
        raise ProgramError(f"keyword arguments are not allowed in {function}(); pass arguments by position")
    if any(isinstance(a, ast.Starred) for a in node.args):
        raise ProgramError("star arguments are not allowed")
    if function == "compare":
        if len(node.args) != 3:
            raise ProgramError('compare() takes 3 arguments (left, op, right), e.g. compare(count("a"), ">", 2)')
        op_node = node.args[1]
        if not isinstance(op_node, ast.Constant) or op_node.value not in COMPARISON_OPERATORS:
            raise ProgramError(f"compare()'s operator must be one of the strings {', '.join(COMPARISON_OPERATORS)}")
        return _comparison(_convert(node.args[0], depth + 1), op_node.value, _convert(node.args[2], depth + 1))
    if len(node.args) != 1:
        raise ProgramError(f'{function}() takes exactly one object name, e.g. {function}("building")')
    return Query(function, _object_name(node.args[0], function))  # type: ignore[arg-type]


def _comparison(left: Query | Compare | Number, op: str, right: Query | Compare | Number) -> Compare:
    for side in (left, right):
        if isinstance(side, Compare) or (isinstance(side, Query) and side.function == "exists"):
            raise ProgramError(f"compare() needs numbers on both sides (count, area or a number), got {side}")
    if isinstance(left, Number) and isinstance(right, Number):
        raise ProgramError("compare() of two literal numbers does not ask about the image")
    return Compare(left, op, right)  # type: ignore[arg-type]


def _evaluate(node: Query | Number, api: SceneAPI) -> bool | int | float:
    if isinstance(node, Number):
        return node.value
    if node.function == "exists":
        return bool(api.exists(node.name))
    if node.function == "count":
        return int(api.count(node.name))
    return float(api.area(node.name))


def run_program(program: Program, api: SceneAPI) -> bool | int | float:
    """Interprets a parsed program.

    Args:
        program: From :func:`parse_program` (or built directly from the node classes).
        api: The scene to ask, e.g. `graft_hf.tasks.vqa.DetectionScene`.

    Returns:
        `bool` for `exists` and comparisons, `int` for `count`, `float` (square metres) for `area`.
    """
    if isinstance(program, Query):
        return _evaluate(program, api)
    if isinstance(program, Compare):
        left, right = _evaluate(program.left, api), _evaluate(program.right, api)
        if program.op in ("==", "!="):
            equal = left == right if isinstance(left, int) and isinstance(right, int) else math.isclose(left, right)
            return equal if program.op == "==" else not equal
        return {">": left > right, "<": left < right, ">=": left >= right, "<=": left <= right}[program.op]
    raise TypeError(f"not a program: {program!r}")
