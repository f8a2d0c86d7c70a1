"""Test-wide settings: offline Hugging Face stack, temporary caches, the fixtures every folder may use."""

from __future__ import annotations

import os
import tempfile

_TMP_HOME = tempfile.mkdtemp(prefix="graft-hf-tests-")
for key, value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_UPDATE_DOWNLOAD_COUNTS": "False",
    "HF_HUB_DISABLE_XET": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HOME": os.path.join(_TMP_HOME, "hf"),
    "HF_MODULES_CACHE": os.path.join(_TMP_HOME, "hf", "modules"),
    "GRADIO_TEMP_DIR": os.path.join(_TMP_HOME, "gradio"),
}.items():
    os.environ.setdefault(key, value)

import pytest  # noqa: E402

# Fixtures shared between folders (a folder's own ones are in its conftest.py).
pytest_plugins = ["tests.fixtures.demo", "tests.fixtures.hub", "tests.fixtures.pairs"]


@pytest.fixture(scope="session")
def clip_tokenizer():
    from graft_hf.tokenizer import load_clip_tokenizer

    return load_clip_tokenizer()


@pytest.fixture
def tiny_model():
    from graft_hf.testing import tiny_graft_model

    return tiny_graft_model(seed=0)
