"""A small interpreter for checked question-answering programs (see :mod:`graft_hf.tasks.vqa_program`).

It walks the checked syntax tree itself, one node at a time, with its own variables: Python never executes the
program (no `exec`, `eval` or `compile`). Every statement and expression evaluated is one step; a program stops
with a :class:`~graft_hf.tasks.vqa_program.ProgramError` when it runs past `max_steps` steps or `time_limit_s`
seconds (API calls included; checked between steps), and values stay small: numbers beyond 1e15, strings beyond
1,000 characters and lists beyond 10,000 items are refused, and there is no repetition operator on sequences, so
a program cannot allocate much. Only values of the API's types exist at run time (numbers, strings, `True`,
`False`, `None`, lists, ranges, :class:`~graft_hf.tasks.vqa_api.ImagePatch` regions and the image it was given),
only `ImagePatch`'s listed methods and attributes are reachable, and the built-ins (`len`, `min`, `max`, `sum`,
`abs`, `round`, `int`, `float`, `bool`, `range`) are the interpreter's own functions over those types.
"""

from __future__ import annotations

import ast
import math
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graft_hf.tasks.vqa_api import API_FUNCTIONS, Area, CannotAnswerError, ImagePatch, ImageScene
from graft_hf.tasks.vqa_program import MAX_INT, Program, ProgramError

__all__ = ["Answer", "ProgramStats", "run_program"]

Answer = bool | int | float | str
MAX_STRING = 1000
MAX_LIST = 10_000
_VALUE_TYPES = (type(None), bool, int, float, str, list, range, ImagePatch, ImageScene)
_ARITHMETIC: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARISONS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: operator.contains(b, a),
    ast.NotIn: lambda a, b: not operator.contains(b, a),
}


@dataclass
class ProgramStats:
    """What one run cost.

    Attributes:
        steps: Statements and expressions evaluated.
        api_calls: Calls of the image API (`ImagePatch`, its methods, `distance`, `bool_to_yesno`).
        api_seconds: Wall time spent inside those calls (detections, masks, distances).
        seconds: Wall time of the whole run; `seconds - api_seconds` is the interpreter's own overhead.
    """

    steps: int = 0
    api_calls: int = 0
    api_seconds: float = 0.0
    seconds: float = 0.0


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))  # bool is an int


def _checked(value: Any, node: ast.AST) -> Any:
    """Refuses values that are too large, so no program can allocate much or compute huge numbers."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise _error(node, f"number {'larger' if value > 0 else 'smaller'} than +-{MAX_INT:.0e}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _error(node, "the result is not a finite number")
    if isinstance(value, str) and len(value) > MAX_STRING:
        raise _error(node, f"string longer than {MAX_STRING} characters")
    if isinstance(value, (list, range)) and len(value) > MAX_LIST:
        raise _error(node, f"sequence longer than {MAX_LIST} items")
    if not isinstance(value, _VALUE_TYPES):
        raise _error(node, f"values of type {type(value).__name__} are not allowed")
    return value


def _error(node: ast.AST, reason: str) -> ProgramError:
    line = getattr(node, "lineno", None)
    return ProgramError(f"{reason} (line {line})" if line else reason)


def _arithmetic(op: ast.operator, left: Any, right: Any, node: ast.AST) -> Any:
    if isinstance(op, ast.Add) and isinstance(left, str) and isinstance(right, str):
        return _checked(left + right, node)
    if isinstance(op, ast.Add) and isinstance(left, list) and isinstance(right, list):
        return _checked(left + right, node)
    if not (_is_number(left) and _is_number(right)):
        raise _error(node, f"{type(op).__name__} needs numbers, got {type(left).__name__} and {type(right).__name__}")
    if isinstance(op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
        raise _error(node, "powers are limited to |base| <= 1e6 and |exponent| <= 64")
    try:
        result = _ARITHMETIC[type(op)](left, right)
    except ZeroDivisionError as err:
        raise _error(node, "division by zero") from err
    except OverflowError as err:
        raise _error(node, "the result is too large") from err
    if isinstance(result, complex):
        raise _error(node, "the result is not a real number")
    return _checked(_keep_area(op, left, right, result), node)


def _keep_area(op: ast.operator, left: Any, right: Any, result: Any) -> Any:
    """Areas stay areas under + and - of two areas, and under scaling by a plain number."""
    left_area, right_area = isinstance(left, Area), isinstance(right, Area)
    if isinstance(op, (ast.Add, ast.Sub)) and left_area and right_area:
        return Area(result)
    if isinstance(op, ast.Mult) and left_area != right_area:
        return Area(result)
    if isinstance(op, ast.Div) and left_area and not right_area:
        return Area(result)
    return result


# ------------------------------------------------------------------------------------------------ built-ins
def _numbers(values: Any, name: str) -> list[Any]:
    items = list(values[0]) if len(values) == 1 and isinstance(values[0], (list, range)) else list(values)
    if not items:
        raise ProgramError(f"{name}() of an empty sequence")
    if not (all(_is_number(v) for v in items) or all(isinstance(v, str) for v in items)):
        raise ProgramError(f"{name}() compares numbers (or strings), got {[type(v).__name__ for v in items][:5]}")
    return items


def _sum(values: Any, start: Any = 0) -> Any:
    if not isinstance(values, (list, range)) or not all(_is_number(v) for v in values) or not _is_number(start):
        raise ProgramError("sum() adds a list of numbers")
    total = sum(values, start)
    return Area(total) if values and all(isinstance(v, Area) for v in values) and start == 0 else total


def _len(value: Any) -> int:
    if not isinstance(value, (list, range, str)):
        raise ProgramError(f"len() takes a list or a string, got {type(value).__name__}")
    return len(value)


def _number(kind: type) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if not _is_number(value):
            raise ProgramError(f"{kind.__name__}() converts numbers only, got {type(value).__name__}")
        return kind(value)

    return convert


def _round(value: Any, ndigits: Any = None) -> Any:
    if not _is_number(value) or not (ndigits is None or isinstance(ndigits, int)):
        raise ProgramError("round() takes a number and optionally a whole number of digits")
    return round(value, ndigits)


def _range(*args: Any) -> range:
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        raise ProgramError("range() takes one to three whole numbers")
    return range(*args)


def _abs(value: Any) -> Any:
    if not _is_number(value):
        raise ProgramError(f"abs() takes a number, got {type(value).__name__}")
    return abs(value)


_BUILTINS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "min": lambda *values: min(_numbers(values, "min")),
    "max": lambda *values: max(_numbers(values, "max")),
    "sum": _sum,
    "abs": _abs,
    "round": _round,
    "int": _number(int),
    "float": _number(float),
    "bool": bool,
    "range": _range,
}


class _Interpreter:
    def __init__(self, max_steps: int, time_limit_s: float, stats: ProgramStats) -> None:
        self.max_steps = max_steps
        self.time_limit_s = time_limit_s
        self.deadline = time.monotonic() + time_limit_s
        self.stats = stats
        self.variables: dict[str, Any] = {}

    def tick(self, node: ast.AST) -> None:
        self.stats.steps += 1
        if self.stats.steps > self.max_steps:
            raise _error(node, f"the program ran past {self.max_steps} steps (an endless or too long loop)")
        if time.monotonic() > self.deadline:
            raise _error(node, f"the program ran past its time limit of {self.time_limit_s:g} s")

    # ------------------------------------------------------------------------------------------- statements
    def block(self, statements: list[ast.stmt]) -> None:
        for statement in statements:
            self.statement(statement)

    def statement(self, node: ast.stmt) -> None:
        self.tick(node)
        if isinstance(node, ast.Assign):
            self.variables[node.targets[0].id] = self.eval(node.value)  # type: ignore[attr-defined]
        elif isinstance(node, ast.AugAssign):
            name = node.target.id  # type: ignore[attr-defined]
            current = self.lookup(name, node)
            self.variables[name] = _arithmetic(node.op, current, self.eval(node.value), node)
        elif isinstance(node, ast.Return):
            raise _Return(None if node.value is None else self.eval(node.value))
        elif isinstance(node, ast.If):
            self.block(node.body if self.eval(node.test) else node.orelse)
        elif isinstance(node, ast.For):
            self.loop(node)
        elif isinstance(node, ast.Expr):
            self.eval(node.value)
        elif isinstance(node, ast.Break):
            raise _Break
        elif isinstance(node, ast.Continue):
            raise _Continue
        elif not isinstance(node, ast.Pass):  # parse_program admits nothing else
            raise _error(node, f"{type(node).__name__} statements are not allowed")

    def loop(self, node: ast.For) -> None:
        items = self.eval(node.iter)
        if not isinstance(items, (list, range)):
            raise _error(node, f"for loops run over lists and ranges, got {type(items).__name__}")
        for item in items:
            self.tick(node)
            self.variables[node.target.id] = item  # type: ignore[attr-defined]
            try:
                self.block(node.body)
            except _Break:
                return
            except _Continue:
                continue
        self.block(node.orelse)

    def lookup(self, name: str, node: ast.AST) -> Any:
        if name not in self.variables:
            kind = "a function: call it" if name in API_FUNCTIONS or name in _BUILTINS else "not defined"
            raise _error(node, f"name {name!r} is {kind}")
        return self.variables[name]

    # ------------------------------------------------------------------------------------------ expressions
    def eval(self, node: ast.expr) -> Any:
        self.tick(node)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self.lookup(node.id, node)
        if isinstance(node, ast.Attribute):
            target = self.eval(node.value)
            if not isinstance(target, ImagePatch) or node.attr not in ImagePatch.ATTRIBUTES:
                raise _error(node, f"{type(target).__name__} has no readable attribute {node.attr!r}")
            return getattr(target, node.attr)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.BinOp):
            return _arithmetic(node.op, self.eval(node.left), self.eval(node.right), node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.BoolOp):
            value = None
            for part in node.values:
                value = self.eval(part)
                if bool(value) == isinstance(node.op, ast.Or):
                    return value
            return value
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.IfExp):
            return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.eval(item) for item in node.elts]
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        raise _error(node, f"{type(node).__name__} expressions are not allowed")

    def unary(self, node: ast.UnaryOp) -> Any:
        value = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if not _is_number(value):
            raise _error(node, f"unary minus and plus need a number, got {type(value).__name__}")
        return -value if isinstance(node.op, ast.USub) else +value

    def compare(self, node: ast.Compare) -> bool:
        left = self.eval(node.left)
        for op, comparator in zip(node.ops, node.comparators):
            right = self.eval(comparator)
            if isinstance(op, (ast.In, ast.NotIn)) and not isinstance(right, (list, range, str)):
                raise _error(node, f"`in` looks inside lists and strings, got {type(right).__name__}")
            if isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)) and not (
                (_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str))
            ):
                raise _error(node, f"cannot order {type(left).__name__} and {type(right).__name__}")
            if not _COMPARISONS[type(op)](left, right):
                return False
            left = right
        return True

    def subscript(self, node: ast.Subscript) -> Any:
        sequence = self.eval(node.value)
        if not isinstance(sequence, (list, range, str)):
            raise _error(node, f"only lists and strings can be indexed, got {type(sequence).__name__}")
        if isinstance(node.slice, ast.Slice):
            parts = [None if p is None else self.eval(p) for p in (node.slice.lower, node.slice.upper, node.slice.step)]
            if not all(p is None or (isinstance(p, int) and not isinstance(p, bool)) for p in parts):
                raise _error(node, "slice bounds must be whole numbers")
            if parts[2] == 0:
                raise _error(node, "slice step cannot be zero")
            return _checked(sequence[slice(*parts)], node)
        index = self.eval(node.slice)
        if not isinstance(index, int) or isinstance(index, bool):
            raise _error(node, f"indexes must be whole numbers, got {type(index).__name__}")
        if not -len(sequence) <= index < len(sequence):
            raise _error(node, f"index {index} is out of range for a sequence of {len(sequence)} items")
        return sequence[index]

    def call(self, node: ast.Call) -> Any:
        if isinstance(node.func, ast.Attribute):
            target = self.eval(node.func.value)
            name = node.func.attr
            if not isinstance(target, ImagePatch) or name not in ImagePatch.METHODS:
                raise _error(node, f"{type(target).__name__} has no method {name!r}")
            function = getattr(target, name)
        else:
            name = node.func.id  # type: ignore[attr-defined]
            function = API_FUNCTIONS.get(name) or _BUILTINS.get(name)
            if function is None:
                raise _error(node, f"unknown function {name!r}")
        args = [self.eval(argument) for argument in node.args]
        kwargs = {keyword.arg: self.eval(keyword.value) for keyword in node.keywords}
        is_api = name not in _BUILTINS or isinstance(node.func, ast.Attribute)
        start = time.perf_counter()
        try:
            result = function(*args, **kwargs)
        except CannotAnswerError:
            raise
        except ProgramError as err:
            raise _error(node, str(err)) from err
        except (TypeError, ValueError, IndexError, ArithmeticError) as err:
            raise _error(node, f"{name}() failed: {err}") from err
        finally:
            if is_api:
                self.stats.api_calls += 1
                self.stats.api_seconds += time.perf_counter() - start
        return _checked(list(result) if isinstance(result, tuple) else result, node)


def run_program(
    program: Program,
    image: ImageScene,
    max_steps: int = 10_000,
    time_limit_s: float = 5.0,
    stats: ProgramStats | None = None,
) -> Answer:
    """Runs a checked program on one image.

    Args:
        program: From :func:`~graft_hf.tasks.vqa_program.parse_program`.
        image: The image the program receives as its argument (its detections are shared between programs).
        max_steps: Statements and expressions the program may evaluate.
        time_limit_s: Wall-clock seconds the program may run (API calls included, checked between steps).
        stats: Filled with the run's steps, API calls and timings when given (also when the program fails).

    Returns:
        The program's answer: `bool`, `int`, `float` (an :class:`~graft_hf.tasks.vqa_api.Area` for areas) or `str`.

    Raises:
        ProgramError: The program failed, ran past a limit, or returned no answer (a region, a list, `None`).
        CannotAnswerError: The API could not answer (e.g. an area without a ground sample distance).
    """
    stats = stats if stats is not None else ProgramStats()
    interpreter = _Interpreter(max_steps, time_limit_s, stats)
    image.requested.clear()  # the concept budget is per program; detections stay cached on the scene
    function = program.function
    interpreter.variables[function.args.args[0].arg] = image
    start = time.perf_counter()
    try:
        interpreter.block(function.body)
    except _Return as returned:
        value = returned.value
    except (_Break, _Continue) as err:
        raise ProgramError("break and continue belong inside a for loop") from err
    except RecursionError as err:
        raise ProgramError("the program is nested too deeply to run") from err
    else:
        value = None
    finally:
        stats.seconds = time.perf_counter() - start
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        raise ProgramError("the program returned no answer (a return statement with a value is needed)")
    what = "a region" if isinstance(value, ImagePatch) else f"a {type(value).__name__}"
    raise ProgramError(f"the program returned {what}, not an answer (a yes/no, a number or a text)")
