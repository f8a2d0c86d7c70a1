"""Question-answering programs in ViperGPT's form, parsed and checked, never executed by Python.

A program is one function::

    def execute_command(image):
        image_patch = ImagePatch(image)
        return image_patch.exists("river")

written in a small subset of Python over the image API of :mod:`graft_hf.tasks.vqa_api`: assignments to plain
variables, `if`/`elif`/`else`, `for` loops, `break`/`continue`/`pass`, `return`; literals (numbers, strings, `True`,
`False`, `None`, short lists), arithmetic, comparisons, `and`/`or`/`not`, conditional expressions, indexing; calls of
the API (`ImagePatch`, its methods, `distance`, `bool_to_yesno`) and of a few number built-ins (`len`, `min`, `max`,
`sum`, `abs`, `round`, `int`, `float`, `bool`, `range`). :func:`parse_program` reads the text with `ast.parse` and
walks every node against that allow-list; anything else (imports, `while`, nested functions, lambdas,
comprehensions, attribute access outside the API, names with underscores around them, f-strings, star arguments,
`global`, `with`, `try`, ...) is refused with a :class:`ProgramError` that names the construct and its line. The
checked tree is then run by :mod:`graft_hf.tasks.vqa_interpreter`, which walks it itself: the text is never given
to `exec`, `eval` or `compile`.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass

from graft_hf.tasks.vqa_api import API_FUNCTIONS, ImagePatch

__all__ = [
    "BUILTIN_FUNCTIONS",
    "ENTRY_POINT",
    "MAX_PROGRAM_CHARS",
    "Program",
    "ProgramError",
    "extract_program",
    "parse_program",
    "viper_program",
]

ENTRY_POINT = "execute_command"
#: Number built-ins programs may call (implemented by the interpreter, never Python's own objects).
BUILTIN_FUNCTIONS: frozenset[str] = frozenset(
    {"len", "min", "max", "sum", "abs", "round", "int", "float", "bool", "range"}
)
#: Keyword arguments each callable accepts (all others take positional arguments only).
KEYWORDS: dict[str, frozenset[str]] = {"near": frozenset({"max_distance_m"}), "round": frozenset({"ndigits"})}
MAX_PROGRAM_CHARS = 4000
MAX_NODES = 2000
MAX_DEPTH = 24
MAX_STRING = 200
MAX_INT = 10**15
MAX_LIST_LITERAL = 100
_FUNCTIONS = frozenset(API_FUNCTIONS) | BUILTIN_FUNCTIONS
_RESERVED = _FUNCTIONS | {"True", "False", "None"}
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_HELP = (
    "a program is `def execute_command(image):` whose body uses image_patch = ImagePatch(image) and its methods "
    f"({', '.join(sorted(ImagePatch.METHODS))}), its attributes ({', '.join(sorted(ImagePatch.ATTRIBUTES))}), "
    "distance(a, b), bool_to_yesno(x), the number built-ins "
    f"({', '.join(sorted(BUILTIN_FUNCTIONS))}), variables, if/for, arithmetic and comparisons"
)
_REFUSED: dict[type, str] = {
    ast.Import: "imports are not allowed",
    ast.ImportFrom: "imports are not allowed",
    ast.While: "while loops are not allowed (loop with for over API results)",
    ast.FunctionDef: "functions other than execute_command are not allowed",
    ast.AsyncFunctionDef: "async functions are not allowed",
    ast.ClassDef: "class definitions are not allowed",
    ast.With: "with-blocks are not allowed",
    ast.AsyncWith: "with-blocks are not allowed",
    ast.AsyncFor: "async loops are not allowed",
    ast.Try: "try-blocks are not allowed",
    ast.Raise: "raise is not allowed",
    ast.Delete: "del is not allowed",
    ast.Global: "global is not allowed",
    ast.Nonlocal: "nonlocal is not allowed",
    ast.Assert: "assert is not allowed",
    ast.Lambda: "lambdas are not allowed",
    ast.ListComp: "comprehensions are not allowed (use a for loop)",
    ast.SetComp: "comprehensions are not allowed (use a for loop)",
    ast.DictComp: "comprehensions are not allowed (use a for loop)",
    ast.GeneratorExp: "comprehensions are not allowed (use a for loop)",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.Starred: "star arguments are not allowed",
    ast.Dict: "dictionaries are not allowed",
    ast.Set: "sets are not allowed",
}
if hasattr(ast, "TryStar"):
    _REFUSED[ast.TryStar] = "try-blocks are not allowed"
if hasattr(ast, "Match"):
    _REFUSED[ast.Match] = "match statements are not allowed"


class ProgramError(ValueError):
    """A program outside the allowed subset, or one that failed or ran past its limits; the message says why."""


@dataclass(frozen=True)
class Program:
    """A checked program.

    Attributes:
        source: The program as canonical source text (`ast.unparse` of the checked function).
        function: The checked `execute_command` definition the interpreter walks.
    """

    source: str
    function: ast.FunctionDef

    def __str__(self) -> str:
        return self.source


def viper_program(*body: str) -> str:
    """The source of `def execute_command(image):` with `image_patch = ImagePatch(image)` and then `body`'s lines."""
    lines = ["def execute_command(image):", "    image_patch = ImagePatch(image)"]
    return "\n".join(lines + [f"    {line}" for line in body]) + "\n"


def _refuse(node: ast.AST, reason: str) -> ProgramError:
    line = getattr(node, "lineno", None)
    return ProgramError(f"{reason} (line {line})" if line else reason)


def parse_program(text: str) -> Program:
    """Parses and checks a program in ViperGPT's form (optionally inside a Markdown code fence).

    Args:
        text: Program source, e.g. `viper_program('return image_patch.count("building")')`.

    Returns:
        The checked :class:`Program`.

    Raises:
        ProgramError: The text is not an allowed program; the message names the construct and its line.
    """
    if not isinstance(text, str):
        raise ProgramError(f"a program must be text, got {type(text).__name__}")
    source = _strip_fence(text)
    if not source.strip():
        raise ProgramError(f"empty program; {_HELP}")
    if len(source) > MAX_PROGRAM_CHARS:
        raise ProgramError(f"program longer than {MAX_PROGRAM_CHARS} characters")
    try:
        module = ast.parse(source, mode="exec")
    except SyntaxError as err:
        raise ProgramError(f"not valid Python syntax ({err.msg}, line {err.lineno}); {_HELP}") from err
    functions = [node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == ENTRY_POINT]
    others = [node for node in module.body if node not in functions]
    if others:
        node = others[0]
        raise _refuse(node, _REFUSED.get(type(node), f"only `def {ENTRY_POINT}(image):` may appear at top level"))
    if len(functions) != 1:
        raise ProgramError(f"a program defines `def {ENTRY_POINT}(image):` exactly once; {_HELP}")
    function = functions[0]
    _check_signature(function)
    if sum(1 for _ in ast.walk(function)) > MAX_NODES:
        raise ProgramError(f"program has more than {MAX_NODES} syntax nodes")
    _Checker().block(function.body, depth=1)
    return Program(ast.get_source_segment(source, function) + "\n", function)


def _strip_fence(text: str) -> str:
    fence = re.search(r"```[a-zA-Z0-9_-]*\n(.*?)```", text, re.DOTALL)
    return fence.group(1) if fence else text


def _check_signature(function: ast.FunctionDef) -> None:
    args = function.args
    if (
        function.decorator_list
        or len(args.args) != 1
        or args.posonlyargs
        or args.kwonlyargs
        or args.vararg
        or args.kwarg
        or args.defaults
        or args.kw_defaults
    ):
        raise _refuse(function, f"`{ENTRY_POINT}` takes exactly one argument (the image), without defaults")
    _check_name(args.args[0].arg, function, assigned=True)
    for annotation in [args.args[0].annotation, function.returns]:
        if annotation is not None and not isinstance(annotation, ast.Name):
            raise _refuse(function, "type annotations may only be plain names such as `str`")


def _check_name(name: str, node: ast.AST, assigned: bool = False) -> None:
    if name.startswith("_"):
        raise _refuse(node, f"names starting with an underscore are not allowed ({name!r})")
    if assigned and name in _RESERVED:
        raise _refuse(node, f"{name!r} names an API function; use another variable name")


class _Checker:
    """Walks a program's tree and refuses any node outside the allowed subset."""

    def block(self, statements: list[ast.stmt], depth: int) -> None:
        if depth > MAX_DEPTH:
            raise _refuse(statements[0], f"program nested deeper than {MAX_DEPTH} levels")
        for statement in statements:
            self.statement(statement, depth)

    def statement(self, node: ast.stmt, depth: int) -> None:
        if type(node) in _REFUSED:
            raise _refuse(node, _REFUSED[type(node)])
        if isinstance(node, ast.Assign):
            if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
                raise _refuse(node, "assign to one plain variable at a time (no unpacking, indexing or attributes)")
            _check_name(node.targets[0].id, node, assigned=True)
            self.expression(node.value, depth)
        elif isinstance(node, ast.AugAssign):
            if not isinstance(node.target, ast.Name) or not isinstance(node.op, _OPERATORS):
                raise _refuse(node, "augmented assignment works on a plain variable with + - * / // % **")
            _check_name(node.target.id, node, assigned=True)
            self.expression(node.value, depth)
        elif isinstance(node, ast.AnnAssign):
            raise _refuse(node, "annotated assignments are not allowed; write name = value")
        elif isinstance(node, ast.Return):
            if node.value is not None:
                self.expression(node.value, depth)
        elif isinstance(node, ast.If):
            self.expression(node.test, depth)
            self.block(node.body, depth + 1)
            if node.orelse:
                self.block(node.orelse, depth + 1)
        elif isinstance(node, ast.For):
            if not isinstance(node.target, ast.Name):
                raise _refuse(node, "a for loop binds one plain variable")
            _check_name(node.target.id, node, assigned=True)
            self.expression(node.iter, depth)
            self.block(node.body, depth + 1)
            if node.orelse:
                self.block(node.orelse, depth + 1)
        elif isinstance(node, ast.Expr):
            self.expression(node.value, depth)
        elif not isinstance(node, (ast.Pass, ast.Break, ast.Continue)):
            raise _refuse(node, f"{type(node).__name__} statements are not allowed; {_HELP}")

    def expression(self, node: ast.expr, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise _refuse(node, f"program nested deeper than {MAX_DEPTH} levels")
        if type(node) in _REFUSED:
            raise _refuse(node, _REFUSED[type(node)])
        deeper = depth + 1
        if isinstance(node, ast.Constant):
            self.constant(node)
        elif isinstance(node, ast.Name):
            _check_name(node.id, node)
        elif isinstance(node, ast.Attribute):
            if node.attr not in ImagePatch.METHODS | ImagePatch.ATTRIBUTES:
                raise _refuse(node, f"attribute {node.attr!r} is not part of the ImagePatch API; {_HELP}")
            self.expression(node.value, deeper)
        elif isinstance(node, ast.Call):
            self.call(node, deeper)
        elif isinstance(node, ast.BinOp):
            if not isinstance(node.op, _OPERATORS):
                raise _refuse(node, f"operator {type(node.op).__name__} is not allowed (use + - * / // % **)")
            self.expression(node.left, deeper)
            self.expression(node.right, deeper)
        elif isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Invert):
                raise _refuse(node, "the ~ operator is not allowed")
            self.expression(node.operand, deeper)
        elif isinstance(node, (ast.BoolOp, ast.Compare)):
            values = node.values if isinstance(node, ast.BoolOp) else [node.left, *node.comparators]
            for value in values:
                self.expression(value, deeper)
        elif isinstance(node, ast.IfExp):
            for value in (node.test, node.body, node.orelse):
                self.expression(value, deeper)
        elif isinstance(node, (ast.List, ast.Tuple)):
            if len(node.elts) > MAX_LIST_LITERAL:
                raise _refuse(node, f"list literals hold at most {MAX_LIST_LITERAL} items")
            for value in node.elts:
                self.expression(value, deeper)
        elif isinstance(node, ast.Subscript):
            self.expression(node.value, deeper)
            if isinstance(node.slice, ast.Slice):
                for part in (node.slice.lower, node.slice.upper, node.slice.step):
                    if part is not None:
                        self.expression(part, deeper)
            else:
                self.expression(node.slice, deeper)
        else:
            raise _refuse(node, f"{type(node).__name__} expressions are not allowed; {_HELP}")

    def constant(self, node: ast.Constant) -> None:
        value = node.value
        if value is None or isinstance(value, bool):
            return
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                raise _refuse(node, f"string literals are at most {MAX_STRING} characters")
        elif isinstance(value, int):
            if abs(value) > MAX_INT:
                raise _refuse(node, f"integer literals are at most {MAX_INT:.0e} in size")
        elif not isinstance(value, float):
            raise _refuse(node, f"{type(value).__name__} literals are not allowed")
        elif not math.isfinite(value) or abs(value) > MAX_INT:
            raise _refuse(node, f"number literals are finite and at most {MAX_INT:.0e} in size")

    def call(self, node: ast.Call, depth: int) -> None:
        if isinstance(node.func, ast.Name):
            name = node.func.id
            _check_name(name, node)
            if name not in _FUNCTIONS:
                raise _refuse(node, f"unknown function {name!r}; {_HELP}")
        elif isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name not in ImagePatch.METHODS:
                raise _refuse(node, f"method {name!r} is not part of the ImagePatch API; {_HELP}")
            self.expression(node.func.value, depth)
        else:
            raise _refuse(node, f"only API functions and ImagePatch methods can be called; {_HELP}")
        for keyword in node.keywords:
            if keyword.arg is None or keyword.arg not in KEYWORDS.get(name, frozenset()):
                raise _refuse(node, f"{name}() takes no keyword argument {keyword.arg!r}")
            self.expression(keyword.value, depth)
        for argument in node.args:
            self.expression(argument, depth)


_FENCED = re.compile(r"```[a-zA-Z0-9_-]*\n(.*?)(?:```|$)", re.DOTALL)


def extract_program(completion: str) -> Program:
    """The program in a language model's completion: its first fenced block whole, else the text from
    `def execute_command` on (prose before it is dropped).

    A completion holding only the body (starting with `image_patch = ImagePatch(image)`) is wrapped in the
    function. Nothing else is repaired: anything :func:`parse_program` refuses is refused.

    Raises:
        ProgramError: No program in the completion, or one outside the allowed subset.
    """
    if not isinstance(completion, str):
        raise ProgramError(f"the language model returned {type(completion).__name__}, not text")
    fenced = _FENCED.search(completion)
    text = fenced.group(1) if fenced else completion
    start = text.find(f"def {ENTRY_POINT}")
    if start >= 0:
        return parse_program(text if fenced else text[start:])  # a fenced block is taken whole, never cut
    body = [line for line in text.strip("\n").splitlines()]
    if body and body[0].strip().startswith("image_patch = ImagePatch("):
        indent = min(len(line) - len(line.lstrip()) for line in body if line.strip())
        return parse_program(f"def {ENTRY_POINT}(image):\n" + "\n".join("    " + line[indent:] for line in body) + "\n")
    raise ProgramError(f"the completion holds no `def {ENTRY_POINT}(image):` program: {completion[:200]!r}")
