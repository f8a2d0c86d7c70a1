"""Command-line flags read from graft-hf's config dataclasses, without importing graft_hf.

Each job's config dataclass (``QuickstartConfig``, ``PairsBuildConfig``, ...) is the single source of truth for
its parameters: names, types, defaults and help (the class docstring's ``Attributes:`` entries). The CLI must stay
instant (``graft CMD --help``, argument errors), while importing any ``graft_hf`` module costs seconds (torch and
transformers), so this module reads the dataclass *source* with :mod:`ast` instead of importing it:

* ``name: int = 8`` becomes ``--name`` (underscores to dashes) with ``type=int`` and default 8;
* ``X | None`` fields default to ``None``; ``Literal[...]`` fields get ``choices``;
* ``bool`` fields become ``--name`` (default false) or ``--no-name`` (default true) switches;
* ``list``/``tuple`` fields of scalars become repeatable flags (``action="append"``);
* the help text is the field's docstring entry, followed by its default.

The test suite imports every config the CLI reads and checks that these defaults equal the real ones.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FieldSpec", "add_fields", "fields_from_args", "flag_for", "read_fields", "registered_configs"]

MISSING = object()
_REGISTERED: set[tuple[str, str]] = set()
_SCALARS = {"int": int, "float": float, "str": str}


@dataclass(frozen=True)
class FieldSpec:
    """A config field as the CLI sees it.

    Attributes:
        name: Field name (the Python parameter and YAML key).
        kind: ``int``, ``float``, ``str``, ``bool``, ``list``, ``tuple`` or ``other`` (not settable from the CLI).
        item: Scalar type name of the items of a ``list``/``tuple`` field.
        optional: The annotation admits ``None``.
        choices: Allowed values of a ``Literal`` field.
        default: The default value, or :data:`MISSING` (required, or built by a factory).
        help: The docstring entry.
    """

    name: str
    kind: str
    item: str | None
    optional: bool
    choices: tuple[Any, ...] | None
    default: Any
    help: str


def _module_path(module: str) -> Path:
    top, _, rest = module.partition(".")
    spec = importlib.util.find_spec(top)  # a top-level find_spec does not import the package
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"cannot locate the {top!r} package")
    base = Path(next(iter(spec.submodule_search_locations)))
    path = base.joinpath(*rest.split(".")) if rest else base
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


@functools.cache
def _parse_module(module: str) -> ast.Module:
    return ast.parse(_module_path(module).read_text(encoding="utf-8"))


def _docstring_entries(docstring: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    in_section, current, indent = False, None, None
    for line in docstring.splitlines():
        stripped = line.strip()
        if stripped in ("Attributes:", "Args:"):
            in_section, current, indent = True, None, None
            continue
        if not in_section or not stripped:
            current = None if not stripped else current
            continue
        leading = len(line) - len(line.lstrip())
        indent = leading if indent is None else indent
        if leading < indent:
            in_section, current = False, None
            continue
        match = re.match(r"(\w+)(?:\s*\([^)]*\))?:\s*(.*)", stripped) if leading == indent else None
        if match:
            current = match[1]
            entries[current] = match[2]
        elif current is not None:
            entries[current] = f"{entries[current]} {stripped}".strip()
    return entries


@functools.cache
def _type_aliases(module: str) -> dict[str, ast.expr]:
    """Module-level aliases such as ``Sensor = Literal["naip", "sentinel2"]``."""
    aliases: dict[str, ast.expr] = {}
    for node in _parse_module(module).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if isinstance(node.value, (ast.Subscript, ast.BinOp)):
                aliases[node.targets[0].id] = node.value
    return aliases


def _annotation(node: ast.expr, module: str) -> tuple[str, str | None, bool, tuple[Any, ...] | None]:
    """``(kind, item, optional, choices)`` of an annotation node."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        parts = [node.left, node.right]
        non_none = [p for p in parts if not (isinstance(p, ast.Constant) and p.value is None)]
        if len(non_none) == 1:
            kind, item, _, choices = _annotation(non_none[0], module)
            return kind, item, True, choices
        return "other", None, False, None
    if isinstance(node, ast.Name):
        if node.id in _SCALARS or node.id == "bool":
            return node.id, None, False, None
        alias = _type_aliases(module).get(node.id)
        return _annotation(alias, module) if alias is not None else ("other", None, False, None)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        if node.value.id == "Literal":
            elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            choices = tuple(ast.literal_eval(e) for e in elements)
            kinds = {type(c).__name__ for c in choices}
            return (kinds.pop() if len(kinds) == 1 else "str"), None, False, choices
        if node.value.id in ("list", "tuple"):
            elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            item = elements[0]
            if isinstance(item, ast.Name) and item.id in _SCALARS:
                return node.value.id, item.id, False, None
    return "other", None, False, None


def _default(node: ast.expr | None) -> Any:
    if node is None:
        return MISSING
    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
        "field",
        "validated_field",
    ):
        for keyword in node.keywords:
            if keyword.arg == "default":
                return _default(keyword.value)
        return MISSING  # default_factory: built at run time
    try:
        return ast.literal_eval(node)
    except ValueError:
        return MISSING


def _class_node(module: str, name: str) -> tuple[ast.ClassDef, str]:
    tree = _parse_module(module)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node, module
    for node in tree.body:  # imported from another graft_hf module
        if isinstance(node, ast.ImportFrom) and node.module and any(a.name == name for a in node.names):
            return _class_node(node.module, name)
    raise LookupError(f"class {name} not found in {module}")


@functools.cache
def read_fields(module: str, cls: str) -> dict[str, FieldSpec]:
    """The fields of dataclass ``cls`` defined in ``module`` (base classes first), read from source.

    Args:
        module: Dotted module name, e.g. ``"graft_hf.quickstart.config"``.
        cls: Class name.

    Returns:
        ``{field name: FieldSpec}`` in definition order.
    """
    node, where = _class_node(module, cls)
    fields: dict[str, FieldSpec] = {}
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id not in ("object", "Generic"):
            fields.update(read_fields(where, base.id))
    helps = _docstring_entries(ast.get_docstring(node) or "")
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            name = statement.target.id
            if "ClassVar" in ast.unparse(statement.annotation):
                continue
            kind, item, optional, choices = _annotation(statement.annotation, where)
            help_text = helps.get(name) or (fields[name].help if name in fields else "")
            fields[name] = FieldSpec(name, kind, item, optional, choices, _default(statement.value), help_text)
    return fields


def registered_configs() -> set[tuple[str, str]]:
    """``(module, class)`` of every config the command line has read flags from (for the consistency test)."""
    return set(_REGISTERED)


def _help(spec: FieldSpec, text: str | None) -> str:
    if text is None and spec.kind == "bool" and spec.default is True:
        text = f"turn off: {spec.help[:1].lower()}{spec.help[1:]}"  # the flag is --no-NAME
    text = (text if text is not None else spec.help).replace("%", "%%")
    if spec.kind != "bool" and spec.default is not MISSING and spec.default not in (None, (), []):
        text = f"{text} (default: {spec.default})"
    return text


def add_fields(
    parser: argparse.ArgumentParser,
    module: str,
    cls: str,
    *,
    only: list[str] | tuple[str, ...] | None = None,
    exclude: tuple[str, ...] = (),
    flags: dict[str, str | tuple[str, ...]] | None = None,
    helps: dict[str, str] | None = None,
    required: tuple[str, ...] = (),
    metavars: dict[str, str] | None = None,
    group: Any = None,
) -> None:
    """Add one flag per field of a config dataclass to ``parser`` (or to ``group``, an argument group of it).

    Args:
        parser: The subcommand's parser; it remembers which flag sets which field (to name flags in errors).
        module: Module defining the config class.
        cls: Config class name.
        only: Fields to add, in this order (default: every field the CLI can set, minus ``exclude``).
        exclude: Fields not to add.
        flags: Option strings per field where they differ from ``--field-name`` (public spellings such as
            ``("-o", "--output")``; for a switch that defaults to true, the flag that turns it off).
        helps: Help text per field where the command line needs other words than the docstring.
        required: Fields that must be given on the command line.
        metavars: Metavariables per field.
        group: Argument group to add the flags to.
    """
    specs = read_fields(module, cls)
    _REGISTERED.add((module, cls))
    flags, helps, metavars = flags or {}, helps or {}, metavars or {}
    names = list(only) if only is not None else [n for n, s in specs.items() if s.kind != "other"]
    target = group if group is not None else parser
    field_flags: dict[str, str] = dict(parser.get_default("_field_flags") or {})
    for name in names:
        if name in exclude:
            continue
        spec = specs[name]
        if spec.kind == "other":
            raise TypeError(f"{cls}.{name} has a type the command line cannot set; exclude it or flatten it")
        given = flags.get(name)
        options = (given,) if isinstance(given, str) else tuple(given or ())
        kwargs: dict[str, Any] = {"dest": name, "help": _help(spec, helps.get(name))}
        if spec.kind == "bool":
            on = spec.default is not True
            options = options or ((f"--{name.replace('_', '-')}",) if on else (f"--no-{name.replace('_', '-')}",))
            kwargs.update(action="store_true" if on else "store_false", default=bool(spec.default))
        else:
            options = options or (f"--{name.replace('_', '-')}",)
            sequence = spec.kind in ("list", "tuple")
            kwargs["type"] = _SCALARS[(spec.item if sequence else spec.kind) or "str"]
            if sequence:
                kwargs.update(action="append", default=None)
            else:
                kwargs["default"] = None if spec.default is MISSING else spec.default
            if spec.choices:
                kwargs["choices"] = spec.choices
            if name in metavars:
                kwargs["metavar"] = metavars[name]
            if name in required:
                kwargs["required"] = True
        if not options[0].startswith("-"):
            kwargs.pop("dest")  # positional: argparse takes the name from the option string
            kwargs.pop("required", None)
            if options[0] != name:
                kwargs["metavar"] = kwargs.get("metavar", options[0])
                options = (name,)
        target.add_argument(*options, **kwargs)
        field_flags[name] = options[-1] if options[-1].startswith("--") else options[0]
    parser.set_defaults(_field_flags=field_flags)


def fields_from_args(args: argparse.Namespace, module: str, cls: str) -> dict[str, Any]:
    """``{field: value}`` for every field of ``cls`` set by flags of this parser (lists as the field's type).

    Repeatable flags that were not given are left out, so the dataclass default applies.
    """
    specs = read_fields(module, cls)
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if name not in vars(args) or name not in (getattr(args, "_field_flags", None) or {}):
            continue
        value = getattr(args, name)
        if spec.kind in ("list", "tuple"):
            if value is None:
                continue
            value = list(value) if spec.kind == "list" else tuple(value)
        values[name] = value
    return values


def flag_for(args: argparse.Namespace, key: str | None) -> str | None:
    """The flag that sets config field ``key`` on this command line, if any (for error messages)."""
    if key is None:
        return None
    return (getattr(args, "_field_flags", None) or {}).get(key)
