"""A real 2-process (gloo) training run: disjoint data per rank, global negatives, identical replicas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers.train_data import tiny_overrides


def test_ranks_read_disjoint_shards(train_pairs) -> None:
    from graft_hf.pairs import build_pairs_dataloader
    from graft_hf.training.config import DataSection

    data, _ = train_pairs
    section = DataSection(path=str(data), num_workers=0, interleave_shards=1, shuffle_buffer=4)
    seen = []
    for rank in (0, 1):
        loader = build_pairs_dataloader(section.loader_config(
            split="train", target="embedding", batch_size=4, train=True, seed=0, rank=rank, world_size=2,
            view_size=224, drop_last=True,
        ))  # fmt: skip
        seen.append({tile for batch in loader for tile in batch["tile_id"]})
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == 32


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
    assert (run / "checkpoints" / "step-00000004" / "random_states_1.pkl").is_file()
