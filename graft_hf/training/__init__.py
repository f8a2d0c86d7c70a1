"""GRAFT training: typed run config, presets, the task module (student + teacher + loss) and the Accelerate loop.

``train(config)`` is the entry point behind ``graft train``; the loop (accelerate, and peft for LoRA) is imported
when it runs.
"""

from graft_hf.training.config import TrainConfig, load_train_config
from graft_hf.training.presets import PRESETS, get_preset

__all__ = ["PRESETS", "TrainConfig", "get_preset", "load_train_config", "train"]


def train(config: TrainConfig, resume: bool | str = False):
    """Train a GRAFT model (see :func:`graft_hf.training.loop.train`)."""
    from graft_hf.training.loop import train as _train

    return _train(config, resume=resume)
