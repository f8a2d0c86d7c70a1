"""Fixtures of the Hub tests: a Hub-compatible server on 127.0.0.1 (see hub_server.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub_server import HUB_TOKEN, HubServer  # noqa: E402


@pytest.fixture(scope="module")
def hub_server():
    """A test Hub (requires `Authorization: Bearer HUB_TOKEN`), shut down after the module."""
    with HubServer(token=HUB_TOKEN) as server:
        yield server
