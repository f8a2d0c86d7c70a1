"""Load the configuration of one GRAFT training run from a preset, a YAML file and ``key=value`` overrides.

A run is described by one :class:`TrainConfig` (see :mod:`graft_hf.training.sections`), made of sections
(``data``, ``teacher``, ``student``, ``loss``, ``optim``, ``train``). YAML files mirror that nesting::

    preset: naip-vitb16          # optional: start from a preset (see graft_hf.training.presets)
    task: pixel                  # image (paper eq. 2) | pixel (eq. 3)
    output_dir: runs/naip-pixel
    data: {path: ./pairs-naip, val_split: validation}
    teacher: {name_or_path: /models/clip-vit-base-patch16}
    train: {batch_size: 256, epochs: 10, mixed_precision: bf16}

Overrides use dotted keys and YAML values: ``train.max_steps=100``, ``student.lora.enabled=true``,
``optim.betas=[0.9,0.98]``, ``optim.lr=1e-5``. Loading goes through :func:`graft_hf.config.config_from_dict`:
unknown keys fail with the list of valid ones, values are type-checked by the strict dataclasses, and every
error is a :class:`graft_hf.config.ConfigError` naming the dotted key. The launch-dependent checks run in
:meth:`TrainConfig.check_run` before any compute.
"""

import os
from pathlib import Path
from typing import Any

import yaml

from graft_hf.config import ConfigError, merge_dicts, parse_overrides
from graft_hf.config import config_from_dict as dataclass_from_dict
from graft_hf.training.presets import PRESETS, get_preset
from graft_hf.training.sections import (
    DataSection,
    LoraSection,
    LossSection,
    OptimSection,
    StudentSection,
    TeacherSection,
    TrainConfig,
    TrainSection,
)

__all__ = [
    "DataSection",
    "LoraSection",
    "LossSection",
    "OptimSection",
    "StudentSection",
    "TeacherSection",
    "TrainConfig",
    "TrainSection",
    "apply_overrides",
    "config_from_dict",
    "load_train_config",
    "parse_overrides",
]


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from a nested dict; an optional ``preset`` key starts from that preset.

    Raises:
        ConfigError: An unknown key or preset, a value of the wrong type or a broken rule, naming the dotted key.
    """
    values = dict(values)
    preset = values.pop("preset", None)
    if preset is not None:
        values = merge_dicts(get_preset(preset).to_dict(), values)
    return dataclass_from_dict(TrainConfig, values)


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """A new config with dotted ``key=value`` overrides applied (checked like the YAML keys)."""
    return config_from_dict(merge_dicts(config.to_dict(), parse_overrides(overrides)))


def load_train_config(source: str | os.PathLike, overrides: list[str] | None = None) -> TrainConfig:
    """Load a run config from a YAML file or a preset name, then apply overrides.

    Args:
        source: Path to a YAML file, or the name of a preset (``naip-vitb16``, ...).
        overrides: Dotted ``key=value`` strings.

    Returns:
        The config, checked key by key; the launch checks (:meth:`TrainConfig.check_run`) run in ``train``.

    Raises:
        FileNotFoundError: ``source`` is neither a file nor a preset.
        ConfigError: A bad key or value, naming the dotted key; a file that is not YAML, naming it.
    """
    path = Path(source)
    if path.is_file():
        try:
            with path.open(encoding="utf-8") as handle:
                values = yaml.safe_load(handle) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise ConfigError(None, f"cannot read {path} as YAML: {error}") from error
        if not isinstance(values, dict):
            raise ConfigError(None, f"{path} must hold a YAML mapping of config sections, got {type(values).__name__}")
    elif str(source) in PRESETS:
        values = {"preset": str(source)}
    else:
        raise FileNotFoundError(
            f"config {str(source)!r} is neither a YAML file nor a preset; presets: {sorted(PRESETS)}"
        )
    return config_from_dict(merge_dicts(values, parse_overrides(list(overrides or []))))
