"""Training state in files that cannot carry code: safetensors for tensors, JSON for everything else.

A checkpoint downloaded from anywhere must be safe to resume from, so nothing here is a pickle (Accelerate's
``save_state`` pickles the RNG states and registered objects and ``load_state`` unpickles them with
``weights_only=False``). Each writer below has a reader that checks what it reads against the live object (the
same parameters, shapes, dtypes, keys and JSON types) and raises :class:`CheckpointError` naming the file on
anything else, so a damaged or hostile file stops the resume with a one-line reason instead of being skipped or
half-loaded.

=====================  ============================================================================
file                   content
=====================  ============================================================================
model.safetensors      the trained module's state dict (the student; the frozen teacher is not in it)
optimizer.safetensors  the optimizer's per-parameter tensors, ``"{param index}.{name}"``
optimizer.json         its param groups and non-tensor per-parameter values
scheduler.json         the LR schedule's position (its state dict without the schedule function)
scaler.json            the fp16 gradient scaler (written only when one is in use)
rng_state_{rank}.json  Python, numpy, torch CPU and accelerator RNG states of each process
=====================  ============================================================================
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from graft_hf.io import atomic_path, write_json

__all__ = [
    "CheckpointError",
    "load_json_file",
    "load_model_state",
    "load_optimizer_state",
    "load_rng_state",
    "load_scaler_state",
    "load_scheduler_state",
    "save_model_state",
    "save_optimizer_state",
    "save_rng_state",
    "save_scaler_state",
    "save_scheduler_state",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
SCHEDULER_JSON = "scheduler.json"
SCALER_JSON = "scaler.json"


def rng_file(rank: int) -> str:
    """File name of process ``rank``'s RNG states."""
    return f"rng_state_{rank}.json"


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged or not what this run saves; the message names the file.

    Attributes:
        path: The file.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        super().__init__(
            f"checkpoint file {self.path}: {reason}; resume from another checkpoint (resume=PATH) or start a new run"
        )


# ------------------------------------------------------------------------------------------------------- helpers
def load_json_file(path: Path) -> Any:
    """The JSON value in ``path``; :class:`CheckpointError` when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise CheckpointError(path, "missing") from error
    except (OSError, UnicodeDecodeError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        raise CheckpointError(path, f"not readable as JSON ({type(error).__name__}: {error})") from error


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path, device="cpu")
    except FileNotFoundError as error:
        raise CheckpointError(path, "missing") from error
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(path, f"not a readable safetensors file ({type(error).__name__}: {error})") from error


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write tensors (CPU, contiguous; storage shared by tied tensors copied) durably."""
    seen: set[tuple[int, int]] = set()
    plain = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().to("cpu").contiguous()
        key = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
        plain[name] = tensor.clone() if key in seen and tensor.numel() else tensor
        seen.add(key)
    with atomic_path(path, durable=True) as tmp:
        save_file(plain, str(tmp))


def _same_kind(saved: Any, live: Any) -> bool:
    """``saved`` (read from JSON) may stand for ``live``: numbers for numbers, equal-length lists, same types."""
    if live is None:
        return saved is None
    if isinstance(live, bool):
        return isinstance(saved, bool)
    if isinstance(live, int):
        return isinstance(saved, int) and not isinstance(saved, bool)
    if isinstance(live, float):
        return isinstance(saved, int | float) and not isinstance(saved, bool)
    if isinstance(live, list | tuple):
        return isinstance(saved, list) and len(saved) == len(live) and all(map(_same_kind, saved, live))
    return isinstance(saved, type(live))


def _restore_like(saved: Any, live: Any) -> Any:
    """``saved`` with the live value's container and number types (JSON has lists only, and writes 1.0 as 1.0)."""
    if isinstance(live, tuple):
        return tuple(_restore_like(s, v) for s, v in zip(saved, live, strict=True))
    if isinstance(live, list):
        return [_restore_like(s, v) for s, v in zip(saved, live, strict=True)]
    if isinstance(live, float) and not isinstance(saved, bool):
        return float(saved)
    return saved


def _check_mapping(path: Path, saved: Any, live: dict[str, Any], what: str) -> dict[str, Any]:
    """``saved`` as a dict with exactly ``live``'s keys and values of the same kinds, else CheckpointError."""
    if not isinstance(saved, dict) or set(saved) != set(live):
        keys = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
        raise CheckpointError(path, f"the {what} has keys {keys}, expected {sorted(live)}")
    wrong = [key for key in live if not _same_kind(saved[key], live[key])]
    if wrong:
        raise CheckpointError(path, f"the {what} has values of the wrong type or length for {wrong}")
    return {key: _restore_like(saved[key], live[key]) for key in live}


# --------------------------------------------------------------------------------------------------------- model
def save_model_state(module: torch.nn.Module, folder: Path) -> None:
    """The module's state dict as ``model.safetensors``."""
    _save_tensors(module.state_dict(), folder / MODEL_FILE)


def load_model_state(module: torch.nn.Module, folder: Path) -> None:
    """Load ``model.safetensors`` into ``module``: the same keys, shapes and dtypes, or CheckpointError."""
    path = folder / MODEL_FILE
    tensors = _load_tensors(path)
    live = module.state_dict()
    missing, unexpected = sorted(live.keys() - tensors.keys()), sorted(tensors.keys() - live.keys())
    if missing or unexpected:
        raise CheckpointError(
            path, f"holds other weights than the model's (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    wrong = [k for k, v in live.items() if tensors[k].shape != v.shape or tensors[k].dtype != v.dtype]
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            path,
            f"{len(wrong)} tensors differ in shape or dtype from the model's, e.g. {k}: "
            f"{tuple(tensors[k].shape)} {tensors[k].dtype} vs {tuple(live[k].shape)} {live[k].dtype}",
        )
    module.load_state_dict(tensors, strict=True)


# ----------------------------------------------------------------------------------------------------- optimizer
def save_optimizer_state(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Per-parameter tensors to ``optimizer.safetensors``; param groups and plain values to ``optimizer.json``."""
    state = optimizer.state_dict()
    tensors, values = {}, {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value
            else:
                values.setdefault(str(index), {})[name] = value
    _save_tensors(tensors, folder / OPTIMIZER_TENSORS)
    payload = {"param_groups": state["param_groups"], "values": values}
    json.dumps(payload)  # plain JSON or a TypeError here: never str() an optimizer value into a checkpoint
    write_json(folder / OPTIMIZER_JSON, payload, durable=True)


def load_optimizer_state(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Restore the optimizer from its two files, checked against the live optimizer's parameters and groups."""
    json_path, tensor_path = folder / OPTIMIZER_JSON, folder / OPTIMIZER_TENSORS
    payload = load_json_file(json_path)
    live_groups = optimizer.state_dict()["param_groups"]
    saved_groups = payload.get("param_groups") if isinstance(payload, dict) else None
    values = payload.get("values") if isinstance(payload, dict) else None
    if not isinstance(saved_groups, list) or len(saved_groups) != len(live_groups) or not isinstance(values, dict):
        raise CheckpointError(json_path, f"expected an object with {len(live_groups)} param_groups and values")
    groups = []
    for i, (saved, live) in enumerate(zip(saved_groups, live_groups, strict=True)):
        group = _check_mapping(json_path, saved, live, f"param group {i}")
        if group["params"] != live["params"]:
            raise CheckpointError(json_path, f"param group {i} lists other parameters than the optimizer's")
        groups.append(group)
    params = [p for group in optimizer.param_groups for p in group["params"]]  # index i of the state dict
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in _load_tensors(tensor_path).items():
        index, _, name = key.partition(".")
        if not index.isdigit() or int(index) >= len(params) or not name:
            raise CheckpointError(tensor_path, f"tensor {key!r} names no parameter of the optimizer")
        if tensor.dim() and tensor.shape != params[int(index)].shape:
            raise CheckpointError(tensor_path, f"{key} has shape {tuple(tensor.shape)}, the parameter has "
                                  f"{tuple(params[int(index)].shape)}")  # fmt: skip
        state.setdefault(int(index), {})[name] = tensor
    for index, entries in values.items():
        plain = isinstance(entries, dict) and all(isinstance(v, int | float | bool) for v in entries.values())
        if not index.isdigit() or int(index) >= len(params) or not plain:
            raise CheckpointError(json_path, f"values of {index!r} are not numbers of an optimizer parameter")
        state.setdefault(int(index), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# ----------------------------------------------------------------------------------------------- schedule, scaler
def save_scheduler_state(scheduler: torch.optim.lr_scheduler.LRScheduler, folder: Path) -> None:
    """The schedule's position (its state dict without ``lr_lambdas``: the schedule function is rebuilt)."""
    state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    write_json(folder / SCHEDULER_JSON, state, durable=True)


def load_scheduler_state(scheduler: torch.optim.lr_scheduler.LRScheduler, folder: Path) -> None:
    """Restore the schedule's position; its function comes from the run's config (``optim``, run length)."""
    path = folder / SCHEDULER_JSON
    live = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    state = _check_mapping(path, load_json_file(path), live, "LR schedule state")
    if "lr_lambdas" in scheduler.state_dict():
        state["lr_lambdas"] = [None] * len(scheduler.state_dict()["lr_lambdas"])
    scheduler.load_state_dict(state)


def save_scaler_state(scaler: torch.amp.GradScaler | None, folder: Path) -> None:
    """The fp16 gradient scaler's state, when one is in use."""
    if scaler is not None and scaler.state_dict():
        write_json(folder / SCALER_JSON, scaler.state_dict(), durable=True)


def load_scaler_state(scaler: torch.amp.GradScaler | None, folder: Path) -> None:
    """Restore the gradient scaler (a run with one must find ``scaler.json``)."""
    if scaler is None or not scaler.state_dict():
        return
    path = folder / SCALER_JSON
    scaler.load_state_dict(_check_mapping(path, load_json_file(path), scaler.state_dict(), "gradient scaler state"))


# ------------------------------------------------------------------------------------------------------------ RNG
def save_rng_state(folder: Path, rank: int, device: torch.device) -> None:
    """This process's RNG states: Python, numpy, torch CPU and, off the CPU, the accelerator's."""
    version, words, gauss_next = random.getstate()
    algorithm, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(words), "gauss_next": gauss_next},
        "numpy": {
            "algorithm": algorithm,
            "keys": [int(k) for k in keys],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },  # fmt: skip
        "torch": torch.get_rng_state().numpy().tobytes().hex(),
    }
    module = None if device.type == "cpu" else getattr(torch, device.type, None)
    if module is not None and hasattr(module, "get_rng_state_all"):
        states = [s.numpy().tobytes().hex() for s in module.get_rng_state_all()]
        state["device"] = {"type": device.type, "states": states}
    write_json(folder / rng_file(rank), state, durable=True)


def load_rng_state(folder: Path, rank: int, device: torch.device) -> None:
    """Restore this process's RNG states (every value checked by the RNG that takes it)."""
    path = folder / rng_file(rank)
    state = load_json_file(path)
    try:
        python, numpy_state = state["python"], state["numpy"]
        if python["gauss_next"] is not None and not isinstance(python["gauss_next"], float):
            raise TypeError(f"gauss_next must be null or a number, got {python['gauss_next']!r}")
        random.setstate((int(python["version"]), tuple(int(w) for w in python["state"]), python["gauss_next"]))
        np.random.set_state(
            (str(numpy_state["algorithm"]), np.asarray(numpy_state["keys"], dtype=np.uint32), int(numpy_state["pos"]),
             int(numpy_state["has_gauss"]), float(numpy_state["cached_gaussian"]))
        )  # fmt: skip
        torch.set_rng_state(_byte_tensor(state["torch"]))
        saved_device = state.get("device")
        if saved_device is not None:
            _restore_device_rng(saved_device, device)
    except (LookupError, TypeError, ValueError, RuntimeError, OverflowError) as error:
        raise CheckpointError(path, f"not a valid RNG state ({type(error).__name__}: {error})") from error


def _byte_tensor(text: Any) -> torch.Tensor:
    if not isinstance(text, str):
        raise TypeError(f"expected a hex string, got {type(text).__name__}")
    return torch.frombuffer(bytearray(bytes.fromhex(text)), dtype=torch.uint8)


def _restore_device_rng(saved: dict[str, Any], device: torch.device) -> None:
    if saved["type"] != device.type:
        logger.warning("the checkpoint's %s RNG state is not restored on %s", saved["type"], device.type)
        return
    module = getattr(torch, device.type)
    states = [_byte_tensor(s) for s in saved["states"]]
    if len(states) != module.device_count():
        logger.warning("the checkpoint holds RNG states of %d %s devices, this machine has %d; not restored",
                       len(states), device.type, module.device_count())  # fmt: skip
        return
    module.set_rng_state_all(states)
