"""The real EuroSAT test split (40 images) that the harness and encoder tests evaluate on."""

from __future__ import annotations

import pytest

from tests.helpers.data import EUROSAT


@pytest.fixture(scope="module")
def eurosat():
    from graft_hf.evaluation.datasets import load_eval_dataset

    if not EUROSAT.is_dir():
        pytest.skip(f"real EuroSAT data not found at {EUROSAT}")
    return load_eval_dataset(EUROSAT, split="test", limit=40)
