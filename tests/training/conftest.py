"""Shared tiny pair shards and teacher for the training tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.train_data import write_pairs, write_teacher


@pytest.fixture(scope="session")
def train_pairs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(pairs_dir, teacher_dir)``: 2 train shards x 16 tiles, 6 validation tiles, a tiny 224 px CLIP teacher."""
    root = tmp_path_factory.mktemp("train-pairs")
    teacher = write_teacher(root)
    return write_pairs(root, teacher), teacher
