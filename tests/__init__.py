"""graft-hf's tests, laid out like the code they test.

``graft_hf/<sub>/<module>.py`` is tested in ``tests/<sub>/test_<module>.py``, ``graft_hf/<module>.py`` in
``tests/test_<module>.py``, ``modeling/<file>.py`` (installed as ``graft_hf.modeling``) in
``tests/modeling/test_<file>.py`` and ``graft_hf_cli/<module>.py`` in ``tests/cli/test_<module>.py`` (a leading
underscore dropped; the `graft` entry point itself in ``tests/cli/test_main.py``). A test that runs a whole
pipeline sits with the module of its entry point; one that checks what the command line adds (flag names in
errors, parsing, a `graft ...` subprocess) sits in ``tests/cli/``. The README examples, the public API and the
Space app have their own files at the top.

Shared code lives in the importable :mod:`tests.helpers` (``from tests.helpers.data import shared_data``); fixtures
in ``conftest.py`` files, and those shared between folders in the :mod:`tests.fixtures` plugins that
``tests/conftest.py`` loads. ``tests/data/`` holds checked-in test data.
"""
