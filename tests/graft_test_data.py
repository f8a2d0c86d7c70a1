"""Paths to the real test data in ../shared/data (a module with a unique name, importable from any test file).

Tests import it as ``from graft_test_data import shared_data``; a module named ``conftest`` would be ambiguous,
since pytest imports every directory's ``conftest.py`` under that same name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()


def shared_data(*parts: str) -> Path:
    """Path inside ../shared/data; skips the calling test with a reason when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (expected ../shared/data beside the repository)")
    return path
