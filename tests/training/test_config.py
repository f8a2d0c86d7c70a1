"""Run config: YAML + overrides, presets, type and consistency errors, LR schedule, errors before compute."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from graft_hf.config import ConfigError
from graft_hf.training.config import TrainConfig, apply_overrides, load_train_config, parse_overrides
from graft_hf.training.presets import PRESETS, get_preset
from tests.helpers.train_data import tiny_overrides


def test_presets_reproduce_the_paper_recipe() -> None:
    assert {"naip-vitb16", "naip-vitb16-pixel", "sentinel2-vitb16", "naip-vitb32", "sentinel2-vitb32-pixel"} <= set(
        PRESETS
    )
    for name, preset in PRESETS.items():
        assert preset.optim.weight_decay == pytest.approx(1e-2)
        assert preset.train.epochs == 10
        assert preset.optim.lr == pytest.approx(5e-5 if name.endswith("-pixel") else 1e-5)
        assert preset.task == ("pixel" if name.endswith("-pixel") else "image")
        assert preset.student.init == "from_clip"
    assert get_preset("sentinel2-vitb32").student.sensor == "sentinel2"
    assert get_preset("naip-vitb32").teacher.name_or_path.endswith("patch32")
    get_preset("naip-vitb16").optim.lr = 1.0  # a copy: the registry is not mutated
    assert PRESETS["naip-vitb16"].optim.lr == pytest.approx(1e-5)


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


def test_micro_batch() -> None:
    config = TrainConfig()
    config.train.batch_size, config.train.grad_accum = 256, 2
    assert config.micro_batch_size(4) == 32


def test_warmup_cosine_schedule() -> None:
    from graft_hf.training.loop import build_optimization

    config = load_train_config("naip-vitb16", ["optim.lr=2.0", "optim.warmup_steps=10", "optim.min_lr_ratio=0.1"])
    optimizer, scheduler = build_optimization(torch.nn.Linear(2, 2), config, total_steps=110)
    factors = []  # LR multiplier used by optimizer step s = 0, 1, ..., 110
    for _ in range(111):
        factors.append(scheduler.get_last_lr()[0] / 2.0)
        optimizer.step()
        scheduler.step()
    # transformers' linear warm-up: s / warmup_steps (the first step at LR 0), then the cosine down to the floor.
    assert factors[0] == 0.0 and factors[9] == pytest.approx(0.9)
    assert factors[10] == pytest.approx(1.0)
    assert factors[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factors[110] == pytest.approx(0.1)
    values = factors[10:]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_parse_overrides_nests() -> None:
    assert parse_overrides(["a.b=1", "a.c=x", "d=[1, 2]"]) == {"a": {"b": 1, "c": "x"}, "d": [1, 2]}


def test_cli_print_config(capsys: pytest.CaptureFixture[str]) -> None:
    from graft_hf_cli import main

    assert (
        main(["train", "naip-vitb16-pixel", "--override", "data.path=/p", "-o", "train.max_steps=5", "--print-config"])
        == 0
    )
    text = capsys.readouterr().out
    assert "task: pixel" in text and "max_steps: 5" in text and "lr: 5.0e-05" in text


def test_cli_unknown_key_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    from graft_hf_cli import main

    assert main(["train", "naip-vitb16", "-o", "train.nope=1"]) == 1
    assert "train.nope: unknown key" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- errors before compute
def _base(tmp_path: Path, data: Path, teacher: Path | str) -> list[str]:
    return tiny_overrides(data, Path(teacher), tmp_path / "run")


def test_missing_dataset_fails_before_compute(tmp_path: Path) -> None:
    from graft_hf.training.loop import train

    config = load_train_config("naip-vitb16", _base(tmp_path, tmp_path / "no-such-pairs", tmp_path / "t"))
    with pytest.raises(FileNotFoundError, match="no pair shards"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_empty_dataset_fails_before_compute(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from graft_hf.pairs.schema import pairs_arrow_schema
    from graft_hf.training.loop import train

    (tmp_path / "empty" / "data").mkdir(parents=True)
    pq.write_table(pairs_arrow_schema().empty_table(), tmp_path / "empty" / "data" / "train-00000-of-00001.parquet")
    config = load_train_config("naip-vitb16", _base(tmp_path, tmp_path / "empty", tmp_path / "t"))
    with pytest.raises(ValueError, match="is empty"):
        train(config)


def test_offline_teacher_names_the_override(tmp_path: Path, train_pairs, capsys: pytest.CaptureFixture[str]) -> None:
    from graft_hf.training.loop import train
    from graft_hf_cli import main

    data, _ = train_pairs
    overrides = _base(tmp_path, data, "openai/clip-vit-base-patch16")
    with pytest.raises(OSError, match="set teacher.name_or_path to the local DIR"):
        train(load_train_config("naip-vitb16", overrides))
    # The command line names the flag that sets it.
    assert main(["train", "naip-vitb16", *[a for o in overrides for a in ("-o", o)]]) == 1
    assert "-o teacher.name_or_path=DIR" in capsys.readouterr().err


def test_one_mixed_precision_per_process(tmp_path: Path, train_pairs) -> None:
    from accelerate import Accelerator

    from graft_hf.training.loop import train

    Accelerator(cpu=True)  # this process's Accelerate state, as after a first run: mixed precision "no"
    data, teacher = train_pairs
    config = load_train_config("naip-vitb16", [*_base(tmp_path, data, teacher), "train.mixed_precision=bf16"])
    with pytest.raises(ConfigError, match="run this training in a new process") as info:
        train(config)
    assert info.value.key == "train.mixed_precision"
    assert not (tmp_path / "run").exists()


def test_missing_val_split_and_wrong_target_dim(tmp_path: Path, train_pairs) -> None:
    from graft_hf.training.loop import train

    data, teacher = train_pairs
    config = load_train_config("naip-vitb16", [*_base(tmp_path, data, teacher), "data.val_split=test"])
    with pytest.raises(ValueError, match="no split 'test'"):
        train(config)
    scratch = [
        *_base(tmp_path, data, teacher),
        "student.init=scratch",
        "student.config={projection_dim: 8, vision_config: {hidden_size: 32, intermediate_size: 37, "
        "num_hidden_layers: 1, num_attention_heads: 4, image_size: 224, patch_size: 32, projection_dim: 8}}",
    ]
    with pytest.raises(ValueError, match="set student.config.projection_dim=16"):
        train(load_train_config("naip-vitb16", scratch))
