"""The typed configuration of one GRAFT training run, filled from a preset, a YAML file and ``key=value`` overrides.

A run is described by one :class:`TrainConfig`, made of sections (``data``, ``teacher``, ``student``, ``loss``,
``optim``, ``train``). YAML files mirror that nesting::

    preset: naip-vitb16          # optional: start from a preset (see graft_hf.training.presets)
    task: pixel                  # image (paper eq. 2) | pixel (eq. 3)
    output_dir: runs/naip-pixel
    data: {path: ./pairs-naip, val_split: validation}
    teacher: {name_or_path: /models/clip-vit-base-patch16}
    train: {batch_size: 256, epochs: 10, mixed_precision: bf16}

Overrides use dotted keys and YAML values: ``train.max_steps=100``, ``student.lora.enabled=true``,
``optim.betas=[0.9,0.98]``. Unknown keys fail with the list of valid ones; values are type-checked against the
dataclass annotations; cross-field consistency is checked by :meth:`TrainConfig.validate` before any compute.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DataSection",
    "LoraSection",
    "LossSection",
    "OptimSection",
    "StudentSection",
    "TeacherSection",
    "TrainConfig",
    "TrainSection",
    "apply_overrides",
    "config_from_dict",
    "load_train_config",
    "parse_overrides",
]


@dataclass
class DataSection:
    """Where the pair shards are and how the loader streams them.

    Attributes:
        path: Local folder of pair shards (``graft pairs build``) or a Hub dataset repo id.
        name: Dataset config name, ``None`` for the default one.
        split: Training split.
        val_split: Held-out split for the validation pass (``None``: no validation).
        num_workers: DataLoader workers per process (each reads distinct shards).
        shuffle_buffer: Examples in the streaming shuffle buffer.
        interleave_shards: Shards read at once to fill the shuffle buffer.
        max_photos: Most photos kept per tile.
        rotate: Random rotation of training views.
        translate: Random translation of training views.
        right_angles: Rotate by multiples of 90 degrees only (views as large as the crop, e.g. 64 px EuroSAT tiles).
        num_tiles: Tiles per epoch, for the LR schedule when the shards cannot be counted (remote data).
    """

    path: str = ""
    name: str | None = None
    split: str = "train"
    val_split: str | None = None
    num_workers: int = 2
    shuffle_buffer: int = 1000
    interleave_shards: int = 10
    max_photos: int = 25
    rotate: bool = True
    translate: bool = True
    right_angles: bool = False
    num_tiles: int | None = None


@dataclass
class TeacherSection:
    """The frozen teacher that provides the targets.

    Attributes:
        name_or_path: CLIP checkpoint (local directory, or a Hub id when online). Also initialises the student
            when ``student.init == "from_clip"``. May be ``None`` for a scratch student on precomputed targets.
        targets: ``precomputed`` (photo embeddings stored in the shards), ``on_the_fly`` (the teacher encodes the
            photos in the forward pass) or ``auto`` (precomputed when the shards carry them).
        dtype: Precision of the on-the-fly teacher (``float16``, ``bfloat16``, ``float32``).
    """

    name_or_path: str | None = "openai/clip-vit-base-patch16"
    targets: Literal["auto", "precomputed", "on_the_fly"] = "auto"
    dtype: Literal["float16", "bfloat16", "float32"] = "float16"


@dataclass
class LoraSection:
    """Low-rank adapters (peft) on the student's vision tower instead of full fine-tuning.

    Attributes:
        enabled: Train LoRA adapters only (plus ``modules_to_save``).
        r: Adapter rank.
        alpha: LoRA scaling numerator (``lora_alpha``).
        dropout: Dropout on the adapter input.
        target_modules: Regular expression of the adapted linear layers (peft ``target_modules``).
        modules_to_save: Modules trained fully besides the adapters (e.g. ``["patch_head"]``).
        merge: Merge the adapters into the exported model (the adapters are saved separately either way).
    """

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str = (
        r"vision_model\.encoder\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.(fc1|fc2))"
    )
    modules_to_save: list[str] = field(default_factory=list)
    merge: bool = True


@dataclass
class StudentSection:
    """The trained satellite model.

    Attributes:
        init: ``from_clip`` (copy the teacher CLIP, as in the paper) or ``scratch`` (random weights from a
            ``GraftConfig``; its ``projection_dim`` must equal the target dimension).
        config: ``GraftConfig`` keyword overrides (``scratch``: the whole config, e.g. ``vision_config``,
            ``projection_dim``; ``from_clip``: metadata such as ``gsd`` or ``band_names``).
        sensor: Sensor preset of the student (``naip``, ``sentinel2``, ...).
        gradient_checkpointing: Recompute activations in the backward pass to save memory.
        lora: LoRA options.
    """

    init: Literal["from_clip", "scratch"] = "from_clip"
    config: dict[str, Any] = field(default_factory=dict)
    sensor: str = "naip"
    gradient_checkpointing: bool = False
    lora: LoraSection = field(default_factory=LoraSection)


@dataclass
class LossSection:
    """What the student is aligned to.

    Attributes:
        target: ``image`` (teacher image embeddings of the photos, the paper), ``text`` (the teacher's text
            embedding of each photo's text: the alt-text ablation) or ``image+text`` (image targets plus an
            auxiliary loss on text targets weighted by ``text_weight``).
        text_weight: Weight of the auxiliary text loss for ``image+text``.
        temperature: Softmax temperature of the contrastive loss.
        gather_negatives: Use the ground embeddings of every process as negatives (global batch).
    """

    target: Literal["image", "text", "image+text"] = "image"
    text_weight: float = 0.5
    temperature: float = 0.07
    gather_negatives: bool = True


@dataclass
class OptimSection:
    """AdamW with linear warm-up then cosine decay.

    Attributes:
        lr: Peak learning rate (paper: 1e-5 image level, 5e-5 pixel level).
        weight_decay: Decoupled weight decay (paper: 1e-2); not applied to biases, norms and embeddings.
        betas: Adam betas.
        eps: Adam epsilon.
        warmup_steps: Warm-up optimizer steps; ``None`` uses ``warmup_ratio`` of the total.
        warmup_ratio: Fraction of the total steps used for warm-up when ``warmup_steps`` is ``None``.
        min_lr_ratio: Final LR as a fraction of the peak at the end of the cosine.
        max_grad_norm: Gradient clipping norm (``None`` or 0: no clipping).
    """

    lr: float = 1e-5
    weight_decay: float = 1e-2
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_steps: int | None = None
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.0
    max_grad_norm: float | None = 1.0


@dataclass
class TrainSection:
    """Length, batching, precision, checkpoints, logging and validation of the run.

    Attributes:
        batch_size: Global batch per optimizer step (all processes and accumulation steps together).
        grad_accum: Gradient accumulation steps.
        epochs: Passes over the data (ignored when ``max_steps`` is set).
        max_steps: Optimizer steps to train for; overrides ``epochs`` (streaming data has no length).
        mixed_precision: ``no``, ``bf16`` or ``fp16`` (Accelerate autocast).
        save_every: Checkpoint every N optimizer steps (0: only the final model).
        keep_checkpoints: Checkpoints kept on disk (older ones are deleted).
        eval_every: Validation pass every N optimizer steps (0: none during training).
        eval_batches: Most validation batches per pass.
        log_every: Log losses, LR and throughput every N optimizer steps.
        tracker: Accelerate tracker (``tensorboard``, ``wandb``, ...) or ``none``.
        progress_bar: Show a tqdm bar on the main process.
        cpu: Force CPU training even when an accelerator is present.
    """

    batch_size: int = 256
    grad_accum: int = 1
    epochs: int = 10
    max_steps: int | None = None
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    save_every: int = 1000
    keep_checkpoints: int = 2
    eval_every: int = 1000
    eval_batches: int = 50
    log_every: int = 10
    tracker: str = "tensorboard"
    progress_bar: bool = True
    cpu: bool = False


@dataclass
class TrainConfig:
    """One GRAFT training run.

    Attributes:
        task: ``image`` (image-level model, paper eq. 2) or ``pixel`` (pixel-level model, eq. 3).
        output_dir: Run directory: ``checkpoints/``, ``logs/`` and the final model in ``model/``.
        seed: Seed of the model initialisation, the data order and the augmentation.
        data, teacher, student, loss, optim, train: The sections.
    """

    task: Literal["image", "pixel"] = "image"
    output_dir: str = "runs/graft"
    seed: int = 0
    data: DataSection = field(default_factory=DataSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)
    student: StudentSection = field(default_factory=StudentSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON serialisable)."""
        return dataclasses.asdict(self)

    def micro_batch_size(self, num_processes: int) -> int:
        """Per-process batch of one forward pass: ``batch_size / (num_processes * grad_accum)``."""
        per_step = num_processes * self.train.grad_accum
        if self.train.batch_size % per_step:
            raise ValueError(
                f"train.batch_size={self.train.batch_size} is not divisible by num_processes x train.grad_accum = "
                f"{num_processes} x {self.train.grad_accum} = {per_step}; pick a batch size that is a multiple of "
                f"{per_step} (e.g. {max(1, self.train.batch_size // per_step) * per_step})"
            )
        return self.train.batch_size // per_step

    def validate(self, num_processes: int = 1) -> None:
        """Check cross-field consistency (raises ``ValueError`` naming the keys to change)."""
        if not self.data.path:
            raise ValueError("data.path is empty: pass the pair shards folder or Hub repo id (data.path=...)")
        _choice("task", self.task, ("image", "pixel"))
        _choice("teacher.targets", self.teacher.targets, ("auto", "precomputed", "on_the_fly"))
        _choice("teacher.dtype", self.teacher.dtype, ("float16", "bfloat16", "float32"))
        _choice("student.init", self.student.init, ("from_clip", "scratch"))
        _choice("loss.target", self.loss.target, ("image", "text", "image+text"))
        _choice("train.mixed_precision", self.train.mixed_precision, ("no", "bf16", "fp16"))
        positive = {
            "train.batch_size": self.train.batch_size,
            "train.grad_accum": self.train.grad_accum,
            "train.log_every": self.train.log_every,
            "data.max_photos": self.data.max_photos,
            "data.shuffle_buffer": self.data.shuffle_buffer,
            "data.interleave_shards": self.data.interleave_shards,
            "train.keep_checkpoints": self.train.keep_checkpoints,
        }
        for key, value in positive.items():
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        for key, value in {
            "train.save_every": self.train.save_every,
            "train.eval_every": self.train.eval_every,
            "data.num_workers": self.data.num_workers,
        }.items():
            if value < 0:
                raise ValueError(f"{key} must be >= 0, got {value}")
        if self.train.max_steps is None and self.train.epochs < 1:
            raise ValueError(f"train.epochs must be >= 1 (or set train.max_steps), got {self.train.epochs}")
        if self.train.max_steps is not None and self.train.max_steps < 1:
            raise ValueError(f"train.max_steps must be >= 1 or null, got {self.train.max_steps}")
        if self.optim.lr <= 0 or self.optim.weight_decay < 0:
            raise ValueError(
                f"need optim.lr > 0 and optim.weight_decay >= 0, got {self.optim.lr}, {self.optim.weight_decay}"
            )
        if len(self.optim.betas) != 2 or not all(0 <= b < 1 for b in self.optim.betas):
            raise ValueError(f"optim.betas must be two numbers in [0, 1), got {self.optim.betas}")
        if not 0 <= self.optim.warmup_ratio < 1 or not 0 <= self.optim.min_lr_ratio <= 1:
            raise ValueError("optim.warmup_ratio must be in [0, 1) and optim.min_lr_ratio in [0, 1]")
        if self.loss.temperature <= 0:
            raise ValueError(f"loss.temperature must be > 0, got {self.loss.temperature}")
        if self.loss.target == "image+text" and self.loss.text_weight <= 0:
            raise ValueError("loss.target='image+text' needs loss.text_weight > 0 (or use loss.target=image)")
        if self.loss.target != "image" and self.teacher.targets == "on_the_fly":
            raise ValueError(
                f"loss.target={self.loss.target!r} needs precomputed photo text embeddings in the shards "
                "(`text_embedding`); the loader does not stream photo texts for an on-the-fly teacher. Set "
                "teacher.targets=precomputed (after `graft pairs embed --text`) or loss.target=image"
            )
        if self.student.init == "from_clip" and not self.teacher.name_or_path:
            raise ValueError(
                "student.init=from_clip copies the teacher CLIP: set teacher.name_or_path to a local CLIP directory"
                " (or use student.init=scratch with student.config)"
            )
        if self.teacher.targets == "on_the_fly" and not self.teacher.name_or_path:
            raise ValueError("teacher.targets=on_the_fly needs teacher.name_or_path (a local CLIP directory)")
        if self.student.init == "from_clip" and {"vision_config", "text_config", "projection_dim"} & set(
            self.student.config
        ):
            raise ValueError(
                "student.config may not change the architecture with student.init=from_clip (it is the teacher's); "
                "drop vision_config/text_config/projection_dim or use student.init=scratch"
            )
        if self.student.lora.enabled and (self.student.lora.r < 1 or self.student.lora.alpha <= 0):
            raise ValueError("student.lora.r must be >= 1 and student.lora.alpha > 0")
        self.micro_batch_size(num_processes)


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {list(allowed)}, got {value!r}")


# ------------------------------------------------------------------------------------------------ dict -> config
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_value(key: str, value: Any, annotation: Any) -> Any:
    """Coerce/check ``value`` against a (simple) annotation; raise ``ValueError`` naming ``key``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(key, value, arg)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is Literal:
        if value is False and "no" in typing.get_args(annotation):
            value = "no"  # YAML 1.1 reads a bare `no` as false
        if value not in typing.get_args(annotation):
            raise ValueError(f"{key} must be one of {list(typing.get_args(annotation))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{key} must be a list, got {value!r}")
        (item,) = typing.get_args(annotation) or (Any,)
        return [_check_value(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {annotation!r} for {key}")


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}")
    hints = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {[prefix + k for k in unknown]}; valid keys here: {[prefix + n for n in names]}"
        )
    kwargs = {}
    for name, value in values.items():
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            kwargs[name] = _build(annotation, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_value(prefix + name, value, annotation)
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``student.config`` and other plain dicts merge too."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from a nested dict (a ``preset`` key starts from that preset)."""
    from graft_hf.training.presets import get_preset

    values = dict(values)
    preset = values.pop("preset", None)
    if preset is not None:
        values = _merge(get_preset(preset).to_dict(), values)
    return _build(TrainConfig, values, "")


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[1,2]"]`` into a nested dict; values are parsed as YAML scalars/lists."""
    import yaml

    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like key=value (e.g. train.max_steps=100)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ValueError(f"override {item!r}: value is not valid YAML ({err})") from err
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r} conflicts with another override of {part!r}")
        node[parts[-1]] = value
    return nested


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """A new config with dotted ``key=value`` overrides applied (checked like the YAML keys)."""
    return _build(TrainConfig, _merge(config.to_dict(), parse_overrides(overrides)), "")


def load_train_config(source: str | os.PathLike, overrides: list[str] | None = None) -> TrainConfig:
    """Load a run config from a YAML file or a preset name, then apply overrides.

    Args:
        source: Path to a YAML file, or the name of a preset (``naip-vitb16``, ...).
        overrides: Dotted ``key=value`` strings.

    Returns:
        The config (not yet validated against the number of processes: call ``validate``).
    """
    import yaml

    from graft_hf.training.presets import PRESETS

    path = Path(source)
    if path.is_file():
        with path.open(encoding="utf-8") as handle:
            values = yaml.safe_load(handle) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a YAML mapping of config sections, got {type(values).__name__}")
    elif str(source) in PRESETS:
        values = {"preset": str(source)}
    else:
        raise FileNotFoundError(
            f"config {str(source)!r} is neither a YAML file nor a preset; presets: {sorted(PRESETS)}"
        )
    values = _merge(values, parse_overrides(list(overrides or [])))
    return config_from_dict(values)
