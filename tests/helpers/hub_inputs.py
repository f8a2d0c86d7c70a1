"""What the card and push tests hand to the Hub code: a saved tiny model, its repo name, evaluation results."""

from __future__ import annotations

from pathlib import Path

MODEL_NAME = "graft-naip-vit-w32-d2-p8"  # model_repo_name of the tiny config

EVAL = [
    {
        "task": "zero-shot-image-classification",
        "task_name": "Zero-shot classification",
        "dataset": {"name": "EuroSAT", "type": "eurosat", "split": "test"},
        "metrics": [{"type": "accuracy", "value": 0.6172, "name": "top-1"}, {"type": "accuracy", "value": 0.9}],
    },
    {
        "task": "image-retrieval",
        "dataset": {"name": "NAIP-ND", "type": "naip-nd"},
        "metrics": [{"type": "map", "value": 0.31, "name": "mAP@100"}],
    },
]


def saved_model(folder: Path) -> Path:
    """A tiny GRAFT model (seed 3) saved with its processor into `folder`."""
    import graft_hf
    from graft_hf.testing import tiny_graft_model

    model = tiny_graft_model(seed=3)
    model.save_pretrained(folder)
    graft_hf.build_processor(model.config).save_pretrained(folder)
    return folder
