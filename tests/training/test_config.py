"""Run config: YAML + overrides, presets by name, type and consistency errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from graft_hf.config import ConfigError
from graft_hf.training.config import apply_overrides, load_train_config, parse_overrides


def test_yaml_with_preset_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "preset: naip-vitb16-pixel\n"
        "data: {path: /data/pairs, val_split: validation}\n"
        "train: {batch_size: 64, mixed_precision: no}\n"
        "student: {config: {gsd: 0.6}}\n"
    )
    config = load_train_config(path, ["train.max_steps=100", "optim.betas=[0.9, 0.98]", "student.lora.enabled=true"])
    assert config.task == "pixel" and config.optim.lr == pytest.approx(5e-5)
    assert config.data.path == "/data/pairs" and config.data.val_split == "validation"
    assert config.train.batch_size == 64 and config.train.max_steps == 100
    assert config.train.mixed_precision == "no"  # YAML reads a bare `no` as false
    assert config.optim.betas == [0.9, 0.98] and config.student.lora.enabled is True
    assert config.student.config == {"gsd": 0.6}
    assert isinstance(config.optim.lr, float)
    again = apply_overrides(config, ["loss.target=image+text", "loss.text_weight=0.25"])
    assert again.loss.target == "image+text" and again.loss.text_weight == 0.25 and config.loss.target == "image"


def test_preset_name_as_config() -> None:
    config = load_train_config("sentinel2-vitb16", ["data.path=x"])
    assert config.student.sensor == "sentinel2"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.batchsize=3"], "train.batchsize: unknown key; valid keys here: train.batch_size"),
        (["bogus.key=1"], "bogus: unknown key"),
        (["train.max_steps=ten"], "train.max_steps: with value 'ten'"),
        (["task=segment"], "task: expected one of ('image', 'pixel'), got segment"),
        (["train.epochs"], "must look like key=value"),
        (["optim.betas=0.9"], "optim.betas: expected a list"),
        (["data.max_photos=0"], "data.max_photos: must be >= 1, got 0"),
        (["optim.lr=-1e-5"], "optim.lr: must be > 0"),
    ],
)
def test_bad_keys_and_values_are_named(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError) as info:
        load_train_config("naip-vitb16", overrides)
    assert message in str(info.value)


def test_scientific_notation_override() -> None:
    # YAML 1.1 reads `1e-5` (no dot) as a string; the float field takes it as a number.
    config = load_train_config("naip-vitb16", ["optim.lr=1e-5", "optim.eps=1e-6", "loss.text_weight=2"])
    assert config.optim.lr == 1e-5 and config.optim.eps == 1e-6 and config.loss.text_weight == 2.0
    assert isinstance(config.optim.lr, float) and isinstance(config.loss.text_weight, float)


def test_missing_config_file_names_presets(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neither a YAML file nor a preset"):
        load_train_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("overrides", "processes", "message"),
    [
        (["train.batch_size=10", "train.grad_accum=4"], 1, "not divisible by num_processes x train.grad_accum"),
        (["train.batch_size=6"], 4, "not divisible"),
        (["data.path="], 1, "data.path: is empty"),
        (["loss.target=text", "teacher.targets=on_the_fly"], 1, "needs precomputed photo text embeddings"),
        (["student.config={projection_dim: 384}"], 1, "may not change the architecture"),
        (["teacher.name_or_path=null"], 1, "set teacher.name_or_path"),
        (["loss.target=image+text", "loss.text_weight=0"], 1, "text_weight > 0"),
    ],
)
def test_inconsistent_configs_fail_validation(overrides: list[str], processes: int, message: str) -> None:
    # Rules on values fail when the config is built; the launch rules (processes, data.path) in check_run.
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_train_config("naip-vitb16", ["data.path=/x", *overrides]).check_run(processes)


def test_check_run_sees_later_changes() -> None:
    config = load_train_config("naip-vitb16", ["data.path=/x"])
    config.train.batch_size = 0  # a valid int: strict lets it through, the rule catches it before the run
    with pytest.raises(ConfigError) as info:
        config.check_run(1)
    assert info.value.key == "train.batch_size" and "must be >= 1" in str(info.value)


def test_parse_overrides_nests() -> None:
    assert parse_overrides(["a.b=1", "a.c=x", "d=[1, 2]"]) == {"a": {"b": 1, "c": "x"}, "d": [1, 2]}


def test_a_file_that_is_not_yaml_is_named(tmp_path) -> None:
    for name, content in (("bad.yaml", b"train: [unclosed\n"), ("binary.yaml", b"\xff\xfe\x00bad")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ConfigError, match=f"cannot read {tmp_path / name} as YAML"):
            load_train_config(tmp_path / name)
