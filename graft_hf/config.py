"""One configuration style for every graft-hf job: typed dataclasses checked by huggingface_hub's strict dataclasses.

Every job (pair build, embedding, training, evaluation, region map, the benchmarks) is described by one dataclass
that is its own single source of truth: field names are the Python parameters and the YAML keys, the field types
are checked on assignment by :func:`huggingface_hub.dataclasses.strict` (the mechanism transformers' own configs
use), cross-field rules live in ``validate_*`` methods that strict runs after ``__init__``, the defaults are the
field defaults, and the help text of each field is its entry in the class docstring's ``Attributes:`` section. The
``graft`` command line reads its flags, defaults and help from these classes' source (``graft_hf_cli/_fields.py``),
so no default or help text is written twice.

Errors are :class:`ConfigError` (a ``ValueError``) naming the field, e.g. ``epochs: must be >= 1, got 0``, so a
Python caller is told about the parameter it passed; the command line translates the field into its flag.

Modules that declare config dataclasses must not use ``from __future__ import annotations``: strict checks the
runtime annotations, and string annotations would silently disable the type checks.
"""

import dataclasses
import functools
import re
import types
import typing
from typing import Any, Literal, TypeVar, dataclass_transform

from huggingface_hub.dataclasses import strict
from huggingface_hub.errors import (
    StrictDataclassError,
    StrictDataclassFieldValidationError,
)

__all__ = [
    "ConfigError",
    "config_dataclass",
    "config_from_dict",
    "config_to_dict",
    "merge_dicts",
    "parse_overrides",
    "require",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is invalid.

    Attributes:
        key: Dotted name of the offending field (``"epochs"``, ``"train.max_steps"``), or ``None`` when the rule
            spans several fields.
        reason: What is wrong and how to fix it, without the key.
    """

    def __init__(self, key: str | None, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}" if key else reason)

    def with_prefix(self, prefix: str) -> "ConfigError":
        """The same error for a config nested under ``prefix`` (e.g. ``"train."``)."""
        if not prefix:
            return self
        return ConfigError(prefix + self.key if self.key else prefix.rstrip("."), self.reason)


def _as_config_error(error: StrictDataclassError) -> ConfigError:
    cause = error.__cause__
    if isinstance(cause, ConfigError):
        return cause
    if isinstance(error, StrictDataclassFieldValidationError):
        match = re.search(r"field '([^']+)'", str(error))
        reason = re.sub(r"^Field '[^']+' ", "", str(cause)) if cause else str(error)
        return ConfigError(match[1] if match else None, reason)
    return ConfigError(None, str(cause) if cause else str(error))


@dataclass_transform()
def config_dataclass(cls: type[T] | None = None, *, frozen: bool = False) -> Any:
    """``@dataclass`` + huggingface_hub's ``@strict``, with every validation failure raised as :class:`ConfigError`.

    Field types are checked when a value is assigned; methods named ``validate_<rule>(self)`` run after
    ``__init__`` (and from ``config.validate()``) and should raise :class:`ConfigError` naming the field.

    Args:
        cls: The class to decorate.
        frozen: Make instances immutable (types are then checked by the class validators only, so frozen configs
            are for values built by the library itself).
    """

    def wrap(klass: type[T]) -> type[T]:
        klass = strict(dataclasses.dataclass(klass, frozen=frozen))  # type: ignore[assignment]
        strict_init = klass.__init__
        strict_setattr = klass.__setattr__
        hints = typing.get_type_hints(klass)

        @functools.wraps(strict_init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                strict_init(self, *args, **kwargs)
            except StrictDataclassError as error:
                raise _as_config_error(error) from None

        def __setattr__(self: Any, name: str, value: Any) -> None:
            if name in hints:
                value = _widen(value, hints[name])
            try:
                strict_setattr(self, name, value)
            except StrictDataclassError as error:
                raise _as_config_error(error) from None

        strict_validate = klass.validate  # type: ignore[attr-defined]

        def validate(self: Any) -> None:
            """Run the class's ``validate_*`` rules (raises :class:`ConfigError`)."""
            try:
                strict_validate(self)
            except StrictDataclassError as error:
                raise _as_config_error(error) from None

        validate.__is_defined_by_strict_decorator__ = True  # type: ignore[attr-defined]
        klass.__init__ = __init__  # type: ignore[method-assign]
        klass.__setattr__ = __setattr__  # type: ignore[method-assign,assignment]
        klass.validate = validate  # type: ignore[attr-defined]
        return klass

    return wrap(cls) if cls is not None else wrap


# ------------------------------------------------------------------------------------------------ dict -> config
def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], optional
    return annotation, False


def _coerce(value: Any, annotation: Any) -> Any:
    """Loosen values read from YAML or the command line into the field's type; strict checks the result.

    Integers are accepted for floats, and numbers written as strings (``1e-5``, which YAML 1.1 reads as a string)
    are converted; a YAML ``no``/``yes`` read as a boolean goes back to the string a ``Literal`` expects; lists and
    tuples are interchangeable.
    """
    annotation, optional = _unwrap_optional(annotation)
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    if annotation is float and not isinstance(value, bool):
        if isinstance(value, int):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
    if annotation is int and isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    if origin is Literal and isinstance(value, bool):
        word = {False: "no", True: "yes"}[value]
        if word in typing.get_args(annotation):
            return word
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        args = typing.get_args(annotation)
        item = args[0] if args else Any
        items = [_coerce(v, item) for v in value]
        return items if origin is list else tuple(items)
    return value


def _widen(value: Any, annotation: Any) -> Any:
    """The Python-side loosening strict does not do: an int where a float is expected, a list for a tuple field
    and a tuple for a list field (``threshold=0`` and ``rasters=["a.tif"]`` are what people write)."""
    annotation, _ = _unwrap_optional(annotation)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    origin = typing.get_origin(annotation)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if origin is list and isinstance(value, tuple):
        return list(value)
    return value


def config_from_dict(cls: type[T], values: dict[str, Any], prefix: str = "") -> T:
    """Build a config dataclass from a nested mapping (YAML, JSON, ``key=value`` overrides).

    Nested dataclass fields take nested mappings; values are loosened into the field types (see :func:`_coerce`)
    and then checked by strict; unknown keys are refused with the list of valid ones.

    Args:
        cls: The config class.
        values: ``{field: value}``; nested configs as nested mappings.
        prefix: Dotted path of ``cls`` inside an outer config, for error messages.

    Raises:
        ConfigError: An unknown key, a value of the wrong type or a broken rule, naming the dotted key.
    """
    if not isinstance(values, dict):
        raise ConfigError(prefix.rstrip(".") or None, f"must be a mapping of keys to values, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(
            prefix + unknown[0],
            f"unknown key; valid keys here: {', '.join(prefix + n for n in names)}",
        )
    kwargs = {}
    for name, value in values.items():
        annotation, _ = _unwrap_optional(hints[name])
        if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
            kwargs[name] = config_from_dict(annotation, value, f"{prefix}{name}.")  # type: ignore[arg-type]
        else:
            kwargs[name] = _coerce(value, hints[name])
    try:
        return cls(**kwargs)
    except ConfigError as error:
        raise error.with_prefix(prefix) from None
    except StrictDataclassError as error:
        raise _as_config_error(error).with_prefix(prefix) from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a config (YAML/JSON serialisable: tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def merge_dicts(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive merge: mappings merge key by key, anything else in ``update`` replaces the value in ``base``."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["train.max_steps=100", "optim.betas=[0.9,0.98]"]`` -> a nested dict; values are read as YAML.

    Raises:
        ConfigError: An item is not ``key=value`` or its value is not valid YAML.
    """
    import yaml

    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(None, f"override {item!r} must look like key=value (e.g. train.max_steps=100)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(key, f"value {raw!r} is not valid YAML ({err})") from err
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(key, f"conflicts with another override of {part!r}")
        node[parts[-1]] = value
    return nested


def require(condition: bool, key: str | None, reason: str) -> None:
    """Raise :class:`ConfigError` ``(key, reason)`` unless ``condition`` holds (for ``validate_*`` rules)."""
    if not condition:
        raise ConfigError(key, reason)
