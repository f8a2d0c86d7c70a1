"""Checkpoints: atomic writes, and a run killed by a real signal resumes onto the uninterrupted loss curve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graft_hf.training.checkpoint import find_latest_checkpoint
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
