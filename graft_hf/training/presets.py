"""Run presets reproducing the GRAFT paper's training recipe (Mall, Phoo et al., ICLR 2024).

Shared by all presets: AdamW, weight decay 1e-2, linear warm-up then cosine decay, 10 epochs, student
initialised from the teacher CLIP, targets from the frozen teacher. Peak LR is 1e-5 for the image-level model
(eq. 2) and 5e-5 for the pixel-level model (eq. 3). The batch size and warm-up fraction are our choices where
the paper's text does not pin them. ``data.path`` (and, offline, ``teacher.name_or_path``) must be supplied.

Names: ``{sensor}-{arch}`` is the image-level model, ``{sensor}-{arch}-pixel`` the pixel-level one, for
``sensor`` in ``naip``/``sentinel2`` and ``arch`` in ``vitb16``/``vitb32``.
"""

import copy

from graft_hf.config import ConfigError
from graft_hf.training.sections import (
    LossSection,
    OptimSection,
    StudentSection,
    TeacherSection,
    TrainConfig,
    TrainSection,
)

__all__ = ["PRESETS", "get_preset"]

_TEACHERS = {"vitb16": "openai/clip-vit-base-patch16", "vitb32": "openai/clip-vit-base-patch32"}
_LR = {"image": 1e-5, "pixel": 5e-5}


def _preset(sensor: str, arch: str, task: str) -> TrainConfig:
    return TrainConfig(
        task=task,  # type: ignore[arg-type]
        output_dir=f"runs/graft-{sensor}-{arch}{'-pixel' if task == 'pixel' else ''}",
        teacher=TeacherSection(name_or_path=_TEACHERS[arch], targets="auto", dtype="float16"),
        student=StudentSection(init="from_clip", sensor=sensor),
        loss=LossSection(target="image", temperature=0.07, gather_negatives=True),
        optim=OptimSection(lr=_LR[task], weight_decay=1e-2, warmup_ratio=0.05, min_lr_ratio=0.0),
        train=TrainSection(batch_size=256, epochs=10, mixed_precision="bf16", save_every=1000, eval_every=1000),
    )


PRESETS: dict[str, TrainConfig] = {
    f"{sensor}-{arch}{'-pixel' if task == 'pixel' else ''}": _preset(sensor, arch, task)
    for sensor in ("naip", "sentinel2")
    for arch in ("vitb16", "vitb32")
    for task in ("image", "pixel")
}


def get_preset(name: str) -> TrainConfig:
    """A fresh copy of preset ``name`` (see :data:`PRESETS`).

    Raises:
        ConfigError: ``name`` is not a preset (the error lists them).
    """
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; available: {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
