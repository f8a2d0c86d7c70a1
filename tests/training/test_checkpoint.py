"""Checkpoints: atomic writes; a run killed by a real signal resumes onto the uninterrupted loss curve; nothing in a
checkpoint folder can run code (every file kind poisoned); a resume with changed run-defining settings is refused.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from graft_hf.resume import ResumeRefusedError
from graft_hf.training.checkpoint import (
    CheckpointError,
    TrainingState,
    TrainProgress,
    find_latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from graft_hf.training.config import load_train_config
from tests.helpers.train_data import tiny_overrides

TOTAL_STEPS = 10  # 8 batches per epoch: the resumed part crosses an epoch boundary


def _losses(run: Path) -> dict[int, float]:
    records = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        records[record["step"]] = record["loss"]
    return records


def test_latest_ignores_half_written_checkpoints(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    (root / "step-00000002").mkdir(parents=True)
    (root / "step-00000002" / "progress.json").write_text("{}")
    (root / ".tmp-step-00000004").mkdir()  # a kill during save_state
    (root / "step-00000003").mkdir()  # renamed but incomplete (never happens with os.replace; still ignored)
    (root / "latest").write_text("step-00000003\n")
    assert find_latest_checkpoint(root) == root / "step-00000002"
    (root / "latest").write_text("step-00000002\n")
    assert find_latest_checkpoint(root) == root / "step-00000002"
    assert find_latest_checkpoint(tmp_path / "none") is None


def test_killed_run_resumes_exactly(tmp_path: Path, train_pairs) -> None:
    from graft_hf.training.loop import train

    data, teacher = train_pairs
    common = {"train.max_steps": TOTAL_STEPS, "optim.warmup_steps": 2}
    reference = tmp_path / "reference"
    train(load_train_config("naip-vitb16", tiny_overrides(data, teacher, reference, **common)))

    run = tmp_path / "killed"
    overrides = tiny_overrides(data, teacher, run, **common, **{"train.save_every": 1, "train.keep_checkpoints": 2})
    code = (
        "import sys; from graft_hf_cli import main; "
        f"sys.exit(main(['train', 'naip-vitb16'] + {[a for o in overrides for a in ('-o', o)]!r}))"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest = run / "checkpoints" / "latest"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if latest.is_file() and latest.read_text().strip() >= "step-00000003":
                os.kill(child.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL, f"child was not killed mid-run: {child.stderr.read().decode()[-2000:]}"
    checkpoint = find_latest_checkpoint(run / "checkpoints")
    assert checkpoint is not None
    resumed_from = json.loads((checkpoint / "progress.json").read_text())["step"]
    if resumed_from >= TOTAL_STEPS:
        pytest.fail("the child finished before it could be killed; nothing was resumed")

    train(load_train_config("naip-vitb16", overrides), resume=True)
    expected, got = _losses(reference), _losses(run)
    assert sorted(got) == list(range(1, TOTAL_STEPS + 1))
    for step in range(resumed_from + 1, TOTAL_STEPS + 1):
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), (step, resumed_from)
    assert len(list((run / "checkpoints").glob("step-*"))) <= 2
    assert (run / "model" / "model.safetensors").is_file()


def test_resume_without_checkpoint_is_an_error(tmp_path: Path, train_pairs, capsys: pytest.CaptureFixture[str]) -> None:
    from graft_hf.training.loop import train
    from graft_hf_cli import main

    data, teacher = train_pairs
    overrides = tiny_overrides(data, teacher, tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="pass resume=False to start fresh"):
        train(load_train_config("naip-vitb16", overrides), resume=True)
    # The command line names its flag.
    assert main(["train", "naip-vitb16", *[a for o in overrides for a in ("-o", o)], "--resume"]) == 1
    assert "drop --resume" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ no code from checkpoints
class _Payload:
    """Unpickling this creates ``marker``: the proof that a checkpoint file ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _tiny_state(seed: int = 0) -> TrainingState:
    from accelerate import Accelerator
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(optimizer, 2, 10, min_lr_rate=0.1)
    accelerator = Accelerator(cpu=True)
    model, optimizer = accelerator.prepare(model, optimizer)
    return TrainingState(accelerator, model, optimizer, scheduler)


def _steps(state: TrainingState, count: int) -> list[float]:
    losses = []
    for _ in range(count):
        loss = state.model(torch.randn(16, 4)).square().mean()  # dropout and the batch draw from torch's RNG
        state.accelerator.backward(loss)
        state.optimizer.step()
        state.scheduler.step()
        state.optimizer.zero_grad()
        losses.append(float(loss.detach()) + random.random() + float(np.random.rand()))  # Python's and numpy's RNG too
    return losses


@pytest.fixture
def saved_checkpoint(tmp_path: Path) -> tuple[Path, list[float]]:
    """A checkpoint after 3 steps of a tiny model, and the losses of the 3 steps that follow it."""
    state = _tiny_state()
    _steps(state, 3)
    path = save_checkpoint(state, tmp_path / "checkpoints", TrainProgress(step=3, samples_seen=48), {"seed": 0})
    return path, _steps(state, 3)


def test_checkpoint_restores_every_state_exactly(saved_checkpoint) -> None:
    path, expected = saved_checkpoint
    assert sorted(p.name for p in path.iterdir()) == [
        "model.safetensors", "optimizer.json", "optimizer.safetensors", "progress.json", "rng_state_0.json",
        "run_settings.json", "scheduler.json",
    ]  # fmt: skip
    state = _tiny_state(seed=1)  # other weights and RNG: everything must come from the checkpoint
    progress = load_checkpoint(state, path)
    assert progress == TrainProgress(step=3, samples_seen=48)
    assert _steps(state, 3) == expected
    assert state.scheduler.last_epoch == 6


def test_old_checkpoints_go_whole_and_leftovers_are_cleaned(tmp_path: Path) -> None:
    state, root = _tiny_state(), tmp_path / "checkpoints"
    (root / ".trash-step-00000000").mkdir(parents=True)  # a deletion cut by a kill
    (root / ".trash-step-00000000" / "model.safetensors").write_bytes(b"half")
    for step in (1, 2, 3):
        _steps(state, 1)
        save_checkpoint(state, root, TrainProgress(step=step), {"seed": 0}, keep=2)
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-00000002", "step-00000003"]


def _poisoned_copy(path: Path, name: str, content: bytes) -> Path:
    copy = path.parent / f"poisoned-{name}"
    shutil.copytree(path, copy)
    (copy / name).write_bytes(content)
    return copy


@pytest.mark.parametrize(
    "name",
    ["model.safetensors", "optimizer.safetensors", "optimizer.json", "scheduler.json", "rng_state_0.json",
     "progress.json"],
)  # fmt: skip
def test_a_pickle_in_any_checkpoint_file_runs_nothing_and_names_the_file(saved_checkpoint, name: str) -> None:
    path, _ = saved_checkpoint
    marker = path.parent / "pwned"
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        poisoned = _poisoned_copy(path, f"{name}", pickle.dumps({"state": _Payload(marker)}, protocol=protocol))
        with pytest.raises(CheckpointError, match=f"checkpoint file {poisoned / name}: ") as info:
            load_checkpoint(_tiny_state(), poisoned)
        assert info.value.path == poisoned / name
        shutil.rmtree(poisoned)
    assert not marker.exists(), "a checkpoint file ran code"


def test_a_poisoned_settings_file_is_refused_before_anything_is_loaded(saved_checkpoint) -> None:
    from graft_hf.training.checkpoint import check_resume_settings

    path, _ = saved_checkpoint
    marker = path.parent / "pwned"
    (path / "run_settings.json").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match=f"checkpoint file {path / 'run_settings.json'}: not readable as JSON"):
        check_resume_settings(path, {"seed": 0})
    (path / "run_settings.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="expected a JSON object of settings"):
        check_resume_settings(path, {"seed": 0})
    assert not marker.exists()


def test_accelerate_pickles_are_never_read(saved_checkpoint) -> None:
    path, expected = saved_checkpoint
    marker = path.parent / "pwned"
    payload = pickle.dumps({"step": _Payload(marker)})
    for name in ("random_states_0.pkl", "custom_checkpoint_0.pkl", "scheduler.bin", "optimizer.bin"):
        (path / name).write_bytes(payload)  # what Accelerate's load_state would unpickle (weights_only=False)
    state = _tiny_state(seed=1)
    load_checkpoint(state, path)
    assert _steps(state, 3) == expected and not marker.exists()
    # A checkpoint of the old (Accelerate) format is refused, not unpickled.
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="pickled training state .*custom_checkpoint_0.pkl.* not loaded"):
        load_checkpoint(_tiny_state(), path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("scheduler.json", lambda v: {**v, "last_epoch": "__import__('os')"}, "wrong type .*last_epoch"),
        ("scheduler.json", lambda v: {**v, "optimizer": "x"}, "has keys"),
        ("optimizer.json", lambda v: {**v, "param_groups": [{**v["param_groups"][0], "params": [1, 0, 2, 3]}]},
         "other parameters"),
        ("rng_state_0.json", lambda v: {**v, "torch": v["torch"][:100]}, "not a valid RNG state"),
        ("rng_state_0.json", lambda v: {**v, "python": {**v["python"], "gauss_next": "x"}}, "not a valid RNG state"),
        ("progress.json", lambda v: {**v, "step": -1}, "non-negative whole numbers"),
    ],
)  # fmt: skip
def test_tampered_json_is_refused_naming_the_file(saved_checkpoint, name: str, edit, message: str) -> None:
    path, _ = saved_checkpoint
    poisoned = path.parent / "tampered"
    shutil.copytree(path, poisoned)
    (poisoned / name).write_text(json.dumps(edit(json.loads((path / name).read_text()))))
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(_tiny_state(), poisoned)
    assert info.value.path == poisoned / name


def test_weights_of_another_shape_are_refused(saved_checkpoint) -> None:
    from safetensors.torch import load_file, save_file

    path, _ = saved_checkpoint
    tensors = load_file(path / "model.safetensors")
    tensors["0.weight"] = torch.zeros(8, 5)
    save_file(tensors, path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"shape or dtype .*0.weight: \(8, 5\)"):
        load_checkpoint(_tiny_state(), path)


def test_cli_resume_from_a_poisoned_run_runs_nothing(
    tmp_path: Path, train_pairs, capsys: pytest.CaptureFixture[str]
) -> None:
    from graft_hf_cli import main

    data, teacher = train_pairs
    run = tmp_path / "run"
    args = ["train", "naip-vitb16"]
    for item in tiny_overrides(data, teacher, run, **{"train.max_steps": 2, "train.save_every": 1}):
        args += ["-o", item]
    assert main(args) == 0
    checkpoint = find_latest_checkpoint(run / "checkpoints")
    marker = tmp_path / "pwned"
    (checkpoint / "rng_state_0.json").write_bytes(pickle.dumps(_Payload(marker)))
    (checkpoint / "random_states_0.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    assert main([*args, "--resume"]) == 1
    err = capsys.readouterr().err
    assert f"checkpoint file {checkpoint / 'rng_state_0.json'}: not readable as JSON" in err
    assert not marker.exists()


# --------------------------------------------------------------------------------- resume with changed settings
def test_resume_refuses_changed_settings_and_accepts_a_longer_run(
    tmp_path: Path, train_pairs, capsys: pytest.CaptureFixture[str]
) -> None:
    from graft_hf.training.loop import train
    from graft_hf_cli import main

    data, teacher = train_pairs
    run = tmp_path / "run"
    base = {"train.max_steps": 2, "train.save_every": 1}
    train(load_train_config("naip-vitb16", tiny_overrides(data, teacher, run, **base)))
    refused = {
        "train.batch_size": (8, "train.batch_size 4 -> 8"),
        "optim.lr": (0.01, "optim.lr 0.001 -> 0.01"),
        "seed": (3, "seed 0 -> 3"),
        "data.num_workers": (1, "data.num_workers 0 -> 1"),
    }
    for key, (value, named) in refused.items():
        config = load_train_config("naip-vitb16", tiny_overrides(data, teacher, run, **{**base, key: value}))
        with pytest.raises(ResumeRefusedError, match="different settings") as info:
            train(config, resume=True)
        assert named in str(info.value) and info.value.key == "resume"
        assert "start a new run in a new output_dir" in str(info.value)
    # The command line names its flag; nothing was trained by the refused resumes.
    args = [
        "train",
        "naip-vitb16",
        *[a for o in tiny_overrides(data, teacher, run, **{**base, "seed": 3}) for a in ("-o", o)],
    ]
    assert main([*args, "--resume"]) == 1
    assert "--resume: cannot resume from checkpoint" in capsys.readouterr().err
    assert find_latest_checkpoint(run / "checkpoints").name == "step-00000002"

    # Longer, with other logging: accepted, continues from step 2 and is recorded.
    longer = {**base, "train.max_steps": 4, "train.log_every": 2}
    train(load_train_config("naip-vitb16", tiny_overrides(data, teacher, run, **longer)), resume=True)
    assert find_latest_checkpoint(run / "checkpoints").name == "step-00000004"
    log = [json.loads(line) for line in (run / "resume_log.jsonl").read_text().splitlines()]
    assert [r["decision"] for r in log] == ["refused"] * 5 + ["resumed"]
    assert log[0]["refused_changes"] == {"train.batch_size": [4, 8]}
    assert log[-1]["accepted_changes"] == {"train.max_steps": [2, 4], "train.log_every": [1, 2]}
    assert log[-1]["step"] == 2
