"""`train` (what `graft train` runs) on tiny pairs, on CPU: learning and export, pixel level with TensorBoard,
precomputed targets, LoRA, alt-text, a scratch student; a real 2-process (gloo) run with disjoint data, global
negatives and identical replicas; the LR schedule; errors before any compute.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graft_hf.config import ConfigError
from graft_hf.training.config import load_train_config
from graft_hf_cli import main
from tests.helpers.train_data import tiny_overrides


def _metrics(run: Path) -> dict[int, dict]:
    """Last logged record per step (a resumed run appends)."""
    records = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        records[record["step"]] = record
    return records


def _train(preset: str, data: Path, teacher: Path, run: Path, **extra: object) -> Path:
    args = ["train", preset]
    for item in tiny_overrides(data, teacher, run, **extra):
        args += ["--override", item]
    assert main(args) == 0
    return run / "model"


def _train_in_new_process(preset: str, data: Path, teacher: Path, run: Path, **extra: object) -> Path:
    """``graft train`` in a fresh process: Accelerate fixes the mixed precision once per process."""
    command = [sys.executable, "-m", "graft_hf_cli", "train", preset]
    for item in tiny_overrides(data, teacher, run, **extra):
        command += ["--override", item]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return run / "model"


def _train_split_loss(model, data: Path, task: str = "image") -> float:
    from graft_hf.pairs import build_pairs_dataloader
    from graft_hf.training.config import DataSection
    from graft_hf.training.loop import evaluate
    from graft_hf.training.task import GraftTrainingTask

    loader = build_pairs_dataloader(DataSection(path=str(data), num_workers=0, interleave_shards=1).loader_config(
        split="train", target="embedding", batch_size=8, train=False, seed=0, rank=0, world_size=1, view_size=224,
    ))  # fmt: skip
    return evaluate(GraftTrainingTask(model, task=task), loader, 100, torch.device("cpu"))["loss"]


def test_image_level_run_learns_and_exports(tmp_path: Path, train_pairs) -> None:
    from transformers import AutoModel, AutoProcessor

    import graft_hf  # noqa: F401  (registers the Auto classes)
    from graft_hf.modeling import GraftModel
    from graft_hf.training.task import load_teacher_clip

    data, teacher = train_pairs
    model_dir = _train(
        "naip-vitb16", data, teacher, tmp_path / "run", **{"train.max_steps": 16, "data.val_split": "validation",
        "train.eval_every": 8, "train.eval_batches": 2},
    )  # fmt: skip
    model = AutoModel.from_pretrained(model_dir)
    assert isinstance(model, GraftModel) and model.patch_head is None
    processor = AutoProcessor.from_pretrained(model_dir)
    assert processor.image_processor is not None and processor.tokenizer is not None
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "modeling_graft.py").is_file()

    initial = GraftModel.from_clip(load_teacher_clip(teacher), use_patch_head=False)
    before, after = _train_split_loss(initial, data), _train_split_loss(model, data)
    assert after < 0.9 * before, (before, after)
    # The text tower stays CLIP's: GRAFT trains the satellite side only.
    torch.testing.assert_close(model.text_projection.weight, initial.text_projection.weight)
    records = _metrics(tmp_path / "run")
    assert sorted(records) == list(range(1, 17))
    assert records[16]["lr"] < records[2]["lr"]  # cosine decay
    assert all(r["samples_per_s"] > 0 for r in records.values())


def test_pixel_level_run_with_tensorboard(tmp_path: Path, train_pairs) -> None:
    from transformers import AutoModel

    data, teacher = train_pairs
    model_dir = _train_in_new_process(
        "naip-vitb16-pixel", data, teacher, tmp_path / "run", **{"train.max_steps": 3, "train.tracker": "tensorboard",
        "student.gradient_checkpointing": True, "train.grad_accum": 2, "train.mixed_precision": "bf16",
        "data.val_split": "validation", "train.eval_every": 2},
    )  # fmt: skip
    model = AutoModel.from_pretrained(model_dir)
    assert model.patch_head is not None
    patches = model.get_patch_features(torch.zeros(1, 3, 224, 224))
    assert patches.shape == (1, 7, 7, 16)
    assert list((tmp_path / "run" / "logs").rglob("events.out.tfevents*")), "no TensorBoard event file"
    assert "pixel_loss" in _metrics(tmp_path / "run")[3]
    val = [json.loads(line) for line in (tmp_path / "run" / "val_metrics.jsonl").read_text().splitlines()]
    assert [v["step"] for v in val] == [2, 3]  # every 2 steps, and at the end
    assert 0 <= val[-1]["recall@1"] <= val[-1]["recall@5"] <= 1 and val[-1]["num_queries"] > 6


def test_precomputed_targets_equal_on_the_fly_teacher(tmp_path: Path, train_pairs) -> None:
    data, teacher = train_pairs
    runs = {}
    for mode in ("precomputed", "on_the_fly"):
        _train("naip-vitb16", data, teacher, tmp_path / mode, **{"train.max_steps": 3, "teacher.targets": mode})
        runs[mode] = _metrics(tmp_path / mode)
    for step in (1, 2, 3):
        assert runs["on_the_fly"][step]["loss"] == pytest.approx(runs["precomputed"][step]["loss"], rel=1e-5, abs=1e-6)


def test_lora_run_saves_merges_and_reloads_adapters(tmp_path: Path, train_pairs) -> None:
    from transformers import AutoModel

    from graft_hf.modeling import GraftModel
    from graft_hf.training.lora import load_lora_adapters
    from graft_hf.training.task import load_teacher_clip

    data, teacher = train_pairs
    model_dir = _train(
        "naip-vitb16", data, teacher, tmp_path / "run", **{"train.max_steps": 3, "student.lora.enabled": True,
        "student.lora.r": 4, "optim.lr": 1e-2},
    )  # fmt: skip
    adapter = model_dir / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    merged = AutoModel.from_pretrained(model_dir).eval()
    base = GraftModel.from_clip(load_teacher_clip(teacher), use_patch_head=False).eval()
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base_out = base.get_image_features(pixels)
        reloaded = load_lora_adapters(base, adapter, merge=True).eval()
        torch.testing.assert_close(reloaded.get_image_features(pixels), merged.get_image_features(pixels))
    assert not torch.allclose(base_out, merged.get_image_features(pixels)), "the adapters changed nothing"
    assert not any("lora" in key for key in merged.state_dict())


def test_alt_text_ablation_targets(tmp_path: Path, train_pairs) -> None:
    data, teacher = train_pairs
    _train("naip-vitb16", data, teacher, tmp_path / "text", **{"train.max_steps": 2, "loss.target": "text"})
    _train(
        "naip-vitb16", data, teacher, tmp_path / "both", **{"train.max_steps": 2, "loss.target": "image+text",
        "loss.text_weight": 0.5},
    )  # fmt: skip
    text, both = _metrics(tmp_path / "text")[1], _metrics(tmp_path / "both")[1]
    assert "text_loss" not in text and "text_loss" in both
    assert both["loss"] == pytest.approx(both["loss_contrastive"] + 0.5 * both["text_loss"], rel=1e-5)
    assert text["loss"] != pytest.approx(both["loss_contrastive"])  # text targets are not the image targets


def test_scratch_student_from_config(tmp_path: Path, train_pairs) -> None:
    from transformers import AutoModel

    data, teacher = train_pairs
    vision = (
        "{hidden_size: 32, intermediate_size: 37, num_hidden_layers: 1, num_attention_heads: 4, image_size: 224, "
        "patch_size: 32, projection_dim: 16}"
    )
    text = (
        "{hidden_size: 32, intermediate_size: 37, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 49408, "
        "projection_dim: 16}"
    )
    model_dir = _train(
        "naip-vitb16", data, "null", tmp_path / "run", **{"train.max_steps": 2, "student.init": "scratch",
        "teacher.targets": "precomputed", "student.config": f"{{projection_dim: 16, vision_config: {vision}, "
        f"text_config: {text}}}"},
    )  # fmt: skip
    model = AutoModel.from_pretrained(model_dir)
    assert model.config.vision_config.num_hidden_layers == 1 and model.config.projection_dim == 16


# ---------------------------------------------------------------------------------------- two processes (torchrun)
_WORKER = """
import sys

from graft_hf_cli import main

sys.exit(main(["train", "naip-vitb16"] + [a for o in {overrides!r} for a in ("-o", o)]))
"""


def test_two_process_run_keeps_replicas_equal(tmp_path: Path, train_pairs) -> None:
    # torchrun, not accelerate.debug_launcher: forking a pytest process that already runs torch/datasets threads
    # deadlocks here, and `accelerate launch --cpu --num_processes 2` silently runs one process.
    data, teacher = train_pairs
    run = tmp_path / "ddp"
    overrides = tiny_overrides(data, teacher, run, **{"train.max_steps": 4, "train.save_every": 2})
    script = tmp_path / "worker.py"
    script.write_text(_WORKER.format(overrides=overrides))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    replicas = json.loads((run / "replicas.json").read_text())
    assert replicas["num_processes"] == 2 and replicas["max_abs_diff"] == 0.0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    # Global negatives: 2 tiles per rank hold at most 6 photos, so a bank above 6 photos spans both ranks.
    assert max(r["image_num_ground"] for r in records) > 6
    assert all(r["image_num_anchors"] == 2 for r in records)  # per-rank anchors, averaged over ranks
    assert (run / "model" / "model.safetensors").is_file()
    assert (run / "checkpoints" / "step-00000004" / "rng_state_1.json").is_file()


# ---------------------------------------------------------------------------------------------------- LR schedule
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
