"""graft_hf.training.state: each piece of training state round-trips through its code-free file, and a file that
does not fit the live object is refused naming the file (the gradient scaler and the RNG states here; the whole
checkpoint in test_checkpoint.py).
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from graft_hf.training.state import (
    CheckpointError,
    load_rng_state,
    load_scaler_state,
    save_rng_state,
    save_scaler_state,
)


def test_gradient_scaler_round_trip_and_refusals(tmp_path: Path) -> None:
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    scaler.scale(torch.ones(()))
    scaler.update(512.0)  # a state other than the initial one
    save_scaler_state(scaler, tmp_path)
    restored = torch.amp.GradScaler("cpu")
    load_scaler_state(restored, tmp_path)
    assert restored.state_dict() == scaler.state_dict()
    path = tmp_path / "scaler.json"
    saved = json.loads(path.read_text())
    for bad in (pickle.dumps(saved), json.dumps({**saved, "scale": "1e9"}).encode(), b"[]"):
        path.write_bytes(bad)
        with pytest.raises(CheckpointError, match=f"checkpoint file {path}"):
            load_scaler_state(torch.amp.GradScaler("cpu"), tmp_path)
    load_scaler_state(None, tmp_path)  # a run without a scaler reads nothing
    path.unlink()
    with pytest.raises(CheckpointError, match="scaler.json: missing"):
        load_scaler_state(torch.amp.GradScaler("cpu"), tmp_path)


def test_rng_states_round_trip_exactly(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.gauss(0, 1)  # a cached Gaussian in Python's state
    save_rng_state(tmp_path, 0, torch.device("cpu"))
    expected = (random.random(), random.gauss(0, 1), np.random.rand(), np.random.randn(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    load_rng_state(tmp_path, 0, torch.device("cpu"))
    got = (random.random(), random.gauss(0, 1), np.random.rand(), np.random.randn(), torch.rand(3))
    assert got[:4] == expected[:4] and torch.equal(got[4], expected[4])
    with pytest.raises(CheckpointError, match="rng_state_1.json: missing"):
        load_rng_state(tmp_path, 1, torch.device("cpu"))
    state = json.loads((tmp_path / "rng_state_0.json").read_text())
    state["numpy"]["keys"] = state["numpy"]["keys"][:10]
    (tmp_path / "rng_state_0.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="rng_state_0.json: not a valid RNG state"):
        load_rng_state(tmp_path, 0, torch.device("cpu"))
