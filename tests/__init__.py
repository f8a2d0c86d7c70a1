"""graft-hf's tests.

Shared code lives in the importable :mod:`tests.helpers` (``from tests.helpers.data import shared_data``); fixtures
in ``conftest.py`` files, and those shared between folders in the :mod:`tests.fixtures` plugins that
``tests/conftest.py`` loads. ``tests/data/`` holds checked-in test data.
"""
