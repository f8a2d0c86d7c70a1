"""graft_hf_cli._fields: flags read from config dataclass source agree with the real dataclasses."""

import argparse
import dataclasses
import importlib
import typing

import pytest

from graft_hf_cli import build_parser
from graft_hf_cli._fields import MISSING, add_fields, fields_from_args, read_fields, registered_configs


def _real_default(f: dataclasses.Field) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    return MISSING


def _check_against_source(module: str, cls: str) -> None:
    klass = getattr(importlib.import_module(module), cls)
    specs = read_fields(module, cls)
    real = {f.name: f for f in dataclasses.fields(klass) if f.init}
    assert list(specs) == list(real), f"{cls}: field names or order differ"
    hints = typing.get_type_hints(klass)
    for name, spec in specs.items():
        assert spec.default == _real_default(real[name]) or (
            spec.default is MISSING and real[name].default is dataclasses.MISSING
        ), f"{cls}.{name}: source default {spec.default!r} != {real[name].default!r}"
        if spec.kind in ("int", "float", "str", "bool"):
            hint = hints[name]
            optional = typing.get_origin(hint) is not typing.Literal  # a Literal's args are its values
            base = [a for a in typing.get_args(hint) if a is not type(None)] if optional else [hint]
            base = base or [hint]
            assert any(
                getattr(b, "__name__", None) == spec.kind or typing.get_origin(b) is typing.Literal for b in base
            )
        assert spec.help, f"{cls}.{name} has no docstring entry (its --help text)"


def test_every_config_the_cli_reads_matches_its_dataclass() -> None:
    build_parser()
    for module, cls in sorted(registered_configs()):
        _check_against_source(module, cls)


def test_flags_defaults_and_errors_from_a_config() -> None:
    parser = argparse.ArgumentParser()
    add_fields(
        parser,
        "graft_hf.pairs.config",
        "PairsBuildConfig",
        only=("photos", "output_dir", "rasters", "seed", "sensor", "include_bands"),
        flags={"output_dir": ("-o", "--output"), "rasters": "--raster"},
        required=("photos",),
    )
    args = parser.parse_args(["--photos", "p.csv", "-o", "out", "--raster", "a.tif", "--raster", "b.tif"])
    values = fields_from_args(args, "graft_hf.pairs.config", "PairsBuildConfig")
    assert values == {
        "photos": "p.csv",
        "output_dir": "out",
        "rasters": ("a.tif", "b.tif"),
        "seed": 0,
        "sensor": "naip",
        "include_bands": False,
    }
    assert args._field_flags["output_dir"] == "--output"
    with pytest.raises(SystemExit):
        parser.parse_args(["--photos", "p.csv", "-o", "o", "--sensor", "landsat"])
    assert "(default: 0)" in parser.format_help()
