"""The card templates are package data: a non-editable wheel install renders cards with no source checkout around."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from graft_hf.resources import hub_card_template
from tests.helpers.data import REPO_ROOT

_SOURCES = ("graft_hf", "graft_hf_cli", "modeling", "hub_cards", "setup.cfg", "pyproject.toml", "README.md")

_RENDER = r"""
import sys
from pathlib import Path

import graft_hf
from graft_hf.hub import check_model_card, model_card_template_path, render_model_card
from graft_hf.modeling import GraftConfig
from graft_hf.pairs.card import template_path

site = Path(sys.argv[1]).resolve()
for path in (Path(graft_hf.__file__), model_card_template_path(), template_path()):
    assert site in path.resolve().parents, f"{path} is not inside the installed wheel ({site})"
card = str(render_model_card(GraftConfig.vit_b16(sensor="sentinel2")))
check_model_card(card)
print("RENDERED", card.count("## "))
"""


def _copy_sources(destination: Path) -> None:
    """The files a wheel is built from, without local symlinks (graft_hf/modeling) or caches."""

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if n == "__pycache__" or os.path.islink(os.path.join(folder, n))]

    for name in _SOURCES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            shutil.copy2(source, destination / name)


def test_templates_are_found_through_the_installed_package():
    path = hub_card_template("model_card.md")
    assert path.is_file() and path.parent.name == "hub_cards"
    assert "## Model details" in path.read_text()
    with pytest.raises(FileNotFoundError, match="no_such_card.md"):
        hub_card_template("no_such_card.md")


def test_wheel_install_renders_cards_from_package_data(tmp_path):
    source, dist, venv = tmp_path / "src", tmp_path / "dist", tmp_path / "venv"
    _copy_sources(source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)], check=True)
    (wheel,) = dist.glob("graft_hf-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        text=True).strip())  # fmt: skip
    # Reuse this environment's dependencies (torch, transformers, ...) without its editable graft-hf: a directory
    # named in a .pth file joins the import path, but the .pth files inside it (the editable finder) are not run.
    (site / "reuse_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GRAFT_HUB_CARDS")}
    result = subprocess.run(
        [python, "-c", _RENDER, str(site)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RENDERED" in result.stdout
