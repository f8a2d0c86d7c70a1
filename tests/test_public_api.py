"""Every name a subpackage advertises in __all__ resolves (lazy exports cannot silently rot)."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    "package",
    [
        "graft_hf",
        "graft_hf.modeling",
        "graft_hf.hub",
        "graft_hf.pairs",
        "graft_hf.evaluation",
        "graft_hf.tasks",
        "graft_hf.quickstart",
        "graft_hf.demo",
    ],
)
def test_all_names_resolve(package):
    module = importlib.import_module(package)
    assert module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute"):
        module.definitely_not_exported  # noqa: B018


_LOAD_EVERYTHING = """
import sys
import graft_hf
from graft_hf.testing import tiny_graft_model
from transformers import AutoImageProcessor, AutoModel, AutoProcessor, pipeline

folder = sys.argv[1]
model = tiny_graft_model()
model.save_pretrained(folder)
graft_hf.build_processor(model.config).save_pretrained(folder)
for _ in range(2):
    AutoModel.from_pretrained(folder)
    AutoProcessor.from_pretrained(folder)
    AutoImageProcessor.from_pretrained(folder)
    pipeline("zero-shot-image-classification", model=folder)
print("loaded")
"""


def test_loading_a_model_reports_no_image_backend_fallback(tmp_path):
    """GraftImageProcessor serves both of transformers' image backends: no "backend is not available" on a load."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _LOAD_EVERYTHING, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr[-3000:]
    assert "backend is not available" not in result.stderr and "Falling back" not in result.stderr
