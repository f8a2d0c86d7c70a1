"""A bare virtual environment: a user's machine with only a few packages installed and no graft-hf.

Built in seconds without a download: ``python -m venv --without-pip``, then one ``.pth`` file that adds a folder of
symlinks to exactly the requested distributions and what they require (their top-level packages, modules, shared
libraries and ``.dist-info`` metadata, taken from this environment). Everything else of this environment, graft-hf
and its optional dependencies included, cannot be imported there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

__all__ = ["bare_python", "requirement_closure"]


def requirement_closure(names: list[str]) -> dict[str, Distribution]:
    """The installed distributions ``names`` need, theirs included (extras and other platforms left out)."""
    found: dict[str, Distribution] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # an optional or platform-specific requirement that is not installed here
        found[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def bare_python(root: Path, packages: list[str]) -> Path:
    """Create a venv in ``root/venv`` that can import only ``packages`` (and their requirements).

    Returns:
        The venv's ``python``.
    """
    venv, shelf = root / "venv", root / "site"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    shelf.mkdir(parents=True, exist_ok=True)
    for dist in requirement_closure(packages).values():
        site = Path(str(dist.locate_file("")))
        for top in {Path(str(f)).parts[0] for f in dist.files or []} - {"..", "__pycache__"}:
            link = shelf / top
            if not link.exists() and (site / top).exists() and not top.endswith(".pth"):
                link.symlink_to(site / top)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "bare.pth").write_text(f"{shelf}{os.linesep}")
    return python
