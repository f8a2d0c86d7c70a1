"""Optional LoRA fine-tuning of the student's vision tower through peft: wrap, save, merge, reload.

peft is an optional dependency (``pip install 'graft-hf[train]'``), imported when LoRA is used.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from torch import nn

from graft_hf.extras import require
from graft_hf.training.sections import LoraSection

logger = logging.getLogger(__name__)

__all__ = ["ADAPTER_DIR", "apply_lora", "export_student", "is_peft_model", "load_lora_adapters"]

ADAPTER_DIR = "adapter"
_FEATURE = "LoRA fine-tuning"


def apply_lora(student: nn.Module, lora: LoraSection) -> nn.Module:
    """Wrap ``student`` in a peft model with LoRA adapters; only adapters (and ``modules_to_save``) train.

    Args:
        student: A ``GraftModel``.
        lora: The LoRA options of the run config.

    Returns:
        A ``peft.PeftModel``; calling it forwards to ``GraftModel.forward``.
    """
    peft = require("peft", "train", _FEATURE)
    config = peft.LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        modules_to_save=list(lora.modules_to_save) or None,
        bias="none",
    )
    try:
        model = peft.get_peft_model(student, config)
    except ValueError as err:
        raise ValueError(
            f"student.lora.target_modules={lora.target_modules!r} matched no layer of the student: {err}"
        ) from err
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("LoRA: %d trainable parameters of %d (%.2f%%)", trainable, total, 100 * trainable / max(total, 1))
    return model


def is_peft_model(model: nn.Module) -> bool:
    """Whether ``model`` is a peft wrapper (without importing peft when no LoRA was ever applied)."""
    peft = sys.modules.get("peft")  # a PeftModel exists only once peft is imported
    return peft is not None and isinstance(model, peft.PeftModel)


def export_student(student: nn.Module, output_dir: str | os.PathLike, merge: bool = True) -> Any:
    """The plain ``GraftModel`` to publish; LoRA adapters are saved to ``output_dir/adapter`` first.

    Args:
        student: The trained student (a ``GraftModel`` or a peft wrapper of one).
        output_dir: Final model directory.
        merge: Fold the adapters into the weights (``merge_and_unload``); otherwise return the base model
            without them (load the adapters with :func:`load_lora_adapters`).

    Returns:
        The ``GraftModel`` to ``save_pretrained``.
    """
    if not is_peft_model(student):
        return student
    adapter_dir = Path(output_dir) / ADAPTER_DIR
    student.save_pretrained(str(adapter_dir))
    logger.info("LoRA adapters saved to %s", adapter_dir)
    return student.merge_and_unload() if merge else student.unload()


def load_lora_adapters(base_model: nn.Module, adapter_dir: str | os.PathLike, merge: bool = False) -> nn.Module:
    """Attach saved adapters to a ``GraftModel`` (optionally merging them)."""
    peft = require("peft", "train", _FEATURE)
    model = peft.PeftModel.from_pretrained(base_model, str(adapter_dir))
    return model.merge_and_unload() if merge else model
