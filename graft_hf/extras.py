"""Optional dependencies: one clear "install graft-hf[EXTRA]" error instead of a bare ImportError.

The core install (model, processor, pairs, training, evaluation) does not pull the heavy packages that one feature
needs. A feature imports its dependency through :func:`require`, so a user who lacks it is told which extra to
install. The README's two commands install every extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingDependencyError", "require"]


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def require(module: str, extra: str, feature: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra that installs it.

    Args:
        module: Import name (``"gradio"``, ``"faiss"``).
        extra: graft-hf extra that installs it (``"demo"``, ``"search"``).
        feature: What needs it, for the message (``"the Gradio demo"``).
        package: PyPI name when it differs from the import name (``"faiss-cpu"``).

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(
            f"{feature} needs {package or module}, which is not installed: pip install 'graft-hf[{extra}]'"
            f" (or pip install {package or module})"
        ) from error
