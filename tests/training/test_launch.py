"""Launches that cannot silently do the wrong thing, tried with the real launchers on this GPU-less machine:
`accelerate launch --cpu --num_processes 2` (one process) and `--multi_gpu` with train.cpu=false (two independent
duplicate runs) stop before writing anything and say how to launch; `accelerate launch --multi_gpu --num_processes 2`
with train.cpu=true (the README's recipe) trains one run over two processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graft_hf.training.launch import launcher_processes
from tests.helpers.train_data import tiny_overrides

_WORKER = """
import sys

from graft_hf_cli import main

sys.exit(main(["train", "naip-vitb16"] + [a for o in {overrides!r} for a in ("-o", o)]))
"""
ACCELERATE = str(Path(sys.executable).parent / "accelerate")

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU-less launches are the point of these tests")


def _launch(
    tmp_path: Path, train_pairs, launcher: list[str], **extra: object
) -> tuple[subprocess.CompletedProcess, Path]:
    data, teacher = train_pairs
    run = tmp_path / "run"
    overrides = tiny_overrides(data, teacher, run, **{"train.max_steps": 2, "train.save_every": 0, **extra})
    script = tmp_path / "worker.py"
    script.write_text(_WORKER.format(overrides=overrides))
    env_home = {"HF_HOME": str(tmp_path / "hf")}  # no accelerate config file: the flags alone decide
    result = subprocess.run(
        [*launcher, str(script)], capture_output=True, text=True, timeout=300, env={**os.environ, **env_home}
    )
    return result, run


def test_accelerate_cpu_launch_of_two_processes_stops_and_says_how(tmp_path: Path, train_pairs) -> None:
    result, run = _launch(tmp_path, train_pairs, [ACCELERATE, "launch", "--cpu", "--num_processes", "2"])
    assert result.returncode != 0
    assert "asked for 2 processes but started 1" in result.stderr, result.stderr[-3000:]
    assert "accelerate launch --multi_gpu --num_processes 2" in result.stderr
    assert "torchrun --standalone --nproc_per_node 2" in result.stderr
    assert not (run / "metrics.jsonl").exists() and not (run / "model").exists()


def test_multi_gpu_launch_without_gpus_and_train_cpu_false_stops_every_process(tmp_path: Path, train_pairs) -> None:
    launcher = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2"]
    result, run = _launch(tmp_path, train_pairs, launcher, **{"train.cpu": False})
    assert result.returncode != 0
    for rank in (0, 1):
        assert f"this is process {rank} of 2 launched together" in result.stderr, result.stderr[-3000:]
    assert "no GPU is visible" in result.stderr and "train.cpu=true" in result.stderr
    assert not (run / "metrics.jsonl").exists() and not (run / "model").exists()


def test_the_readme_recipe_trains_one_run_over_two_cpu_processes(tmp_path: Path, train_pairs) -> None:
    result, run = _launch(tmp_path, train_pairs, [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2"])
    assert result.returncode == 0, result.stderr[-3000:]
    replicas = json.loads((run / "replicas.json").read_text())
    assert replicas["num_processes"] == 2 and replicas["max_abs_diff"] == 0.0
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        (["/venv/bin/python", "/venv/bin/accelerate", "launch", "--cpu", "--num_processes", "4", "t.py"], 4),
        (["accelerate", "launch", "--num-processes=3", "t.py", "--num_processes", "9"], 3),
        (["accelerate", "launch", "t.py", "--num_processes", "9"], None),  # the script's own argument
        (["accelerate", "launch", "-m", "graft_hf_cli", "--num_processes", "9"], None),
        (["python", "-m", "torch.distributed.run", "--nproc_per_node", "2", "t.py"], None),
        (["/bin/bash"], None),
    ],
)
def test_the_launcher_process_count_is_read_from_its_command_line(cmdline: list[str], expected: int | None) -> None:
    assert launcher_processes(cmdline) == expected
