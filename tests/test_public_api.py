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
