"""What a model card may say about training, read from the run's own records.

A `graft train` run leaves ``train_config.yaml`` (every setting), ``metrics.jsonl`` (the training log) and the
pairs it read; :func:`card_info_from_train_config` turns them into a :class:`~graft_hf.hub.cards.ModelCardInfo`:
teacher, initialisation (``student.init``), targets (``loss.target``), data (real or simulated, from the pairs
dataset's card) and the recipe table. Nothing is assumed: a key a record does not hold stays ``None`` and the card
says "not recorded". Evaluation figures come from ``graft eval``'s ``results.json`` (``graft_hf.hub.cards``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import DatasetCard

from graft_hf.hub.cards import ModelCardInfo
from graft_hf.text_towers import TextTowerError, read_spec

logger = logging.getLogger(__name__)

__all__ = ["card_info_from_train_config", "pairs_data_kind", "training_log_steps"]

# Rows of the recipe table taken from a `graft train` config (`train_config.yaml`): (dotted key, label).
_RECIPE_ROWS = (
    ("task", "level (image / pixel)"),
    ("teacher.name_or_path", "frozen teacher (CLIP)"),
    ("student.init", "student initialisation"),
    ("loss.target", "loss target"),
    ("loss.temperature", "loss temperature"),
    ("loss.text_weight", "text loss weight"),
    ("loss.gather_negatives", "negatives gathered across processes"),
    ("data.max_photos", "max photos per tile"),
    ("data.rotate", "rotation augmentation"),
    ("data.translate", "translation augmentation"),
    ("optim.lr", "learning rate"),
    ("optim.weight_decay", "weight decay"),
    ("optim.warmup_ratio", "warmup ratio"),
    ("train.batch_size", "batch size"),
    ("train.epochs", "epochs"),
    ("train.max_steps", "max steps"),
    ("train.mixed_precision", "mixed precision"),
    ("student.lora.enabled", "LoRA"),
    ("seed", "seed"),
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_TRAINING_LOG = "metrics.jsonl"


def _dotted(tree: dict, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _is_hub_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_HUB_ID.fullmatch(value)) and not Path(value).exists()


def _display(name_or_path: str) -> str:
    """A Hub id as given; a local path by its folder name (cards never publish local paths)."""
    return name_or_path if _is_hub_id(name_or_path) else Path(name_or_path).name


def pairs_data_kind(path: str | os.PathLike) -> str | None:
    """``simulated`` or ``real`` for a local pairs folder whose dataset card says so, else ``None``.

    The EuroSAT benchmarks tag their pairs cards ``simulated``; a card without that tag is a `graft pairs build`
    of real photos. A Hub dataset or a folder without a card is not looked into (``None``: not recorded).
    """
    readme = Path(path) / "README.md"
    if not readme.is_file():
        return None
    try:
        tags = DatasetCard(readme.read_text()).data.tags or []
    except (ValueError, yaml.YAMLError) as err:
        logger.warning("cannot read the dataset card %s (%s); the card says nothing about the data", readme, err)
        return None
    return "simulated" if "simulated" in tags else "real"


def training_log_steps(log: str | os.PathLike) -> int | None:
    """The last optimizer step recorded in a training log (``metrics.jsonl``), ``None`` without one."""
    path = Path(log)
    if not path.is_file():
        return None
    steps = None
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            steps = record["step"]
    return steps


def _teacher(config: dict) -> str | None:
    """The frozen teacher whose embeddings were the targets: the text tower for text targets, else the CLIP."""
    text_tower = _dotted(config, "student.text_tower")
    if _dotted(config, "loss.target") == "text" and isinstance(text_tower, str) and text_tower:
        try:
            return read_spec(text_tower).name
        except TextTowerError:
            return _display(text_tower)
    teacher = _dotted(config, "teacher.name_or_path")
    return _display(teacher) if isinstance(teacher, str) and teacher else None


def _read_config(config: str | os.PathLike | dict) -> tuple[dict, Path | None]:
    if isinstance(config, dict):
        return config, None
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"training config {path} not found")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"training config {path} is not a YAML mapping")
    return values, path


def card_info_from_train_config(config: str | os.PathLike | dict, repo_id: str | None = None) -> ModelCardInfo:
    """Card details from a `graft train` run: its config (``<output_dir>/train_config.yaml``, or the dict) and,
    next to a config file, its training log (``metrics.jsonl``).

    Fills teacher, initialisation, targets, data (real or simulated, from a local pairs folder's card), the recipe
    table, the training temperature, the steps the log recorded, the base model (a ``from_clip`` student's teacher
    when it is a Hub id) and the training dataset (``data.path`` when it is a Hub id). Missing keys stay unset.
    """
    values, path = _read_config(config)
    target = _dotted(values, "loss.target")
    info = ModelCardInfo(repo_id=repo_id)
    info.training = {
        label: v
        for key, label in _RECIPE_ROWS
        if (v := _dotted(values, key)) not in (None, "") and (key != "loss.text_weight" or target == "image+text")
    }
    temperature = _dotted(values, "loss.temperature")
    if isinstance(temperature, (int, float)) and temperature > 0:
        info.training_temperature = float(temperature)
    info.teacher = _teacher(values)
    init = _dotted(values, "student.init")
    info.initialisation = init if init in ("from_clip", "scratch") else None
    info.targets = target if target in ("image", "text", "image+text") else None
    teacher = _dotted(values, "teacher.name_or_path")
    if info.initialisation == "from_clip" and _is_hub_id(teacher):
        info.base_model = teacher
    data = _dotted(values, "data.path")
    if isinstance(data, str) and data:
        if _is_hub_id(data):
            info.datasets = [data]
            where = f"[`{data}`](https://huggingface.co/datasets/{data})"
        else:
            where = f"a local pairs build (`{Path(data).name}`)"
            info.data = pairs_data_kind(data)
        info.training_data = f"Trained on the `{_dotted(values, 'data.split') or 'train'}` split of {where}."
    if path is not None:
        info.training_steps = training_log_steps(path.parent / _TRAINING_LOG)
    return info
