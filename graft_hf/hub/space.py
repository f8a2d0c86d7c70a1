"""Publish the demo as a Hugging Face Space and its retrieval gallery as a Hub dataset.

A Space staged by :func:`stage_space` runs as shipped:

- `app.py`: the demo (:mod:`graft_hf.demo.space`), which starts even without a model or gallery and then names the
  Space variable to set;
- `graft_hf/`: the graft-hf source this Space runs (the package is imported from the Space's folder, so no index
  has to carry graft-hf; Spaces install `requirements.txt` before the repository is copied in, so a wheel in the
  repository could not be installed from it);
- `requirements.txt`: graft-hf's own requirements (core and the `demo` extra), read from the installed package's
  metadata, with gradio pinned to the Space's `sdk_version`;
- `README.md`: Space metadata (gradio SDK, Python version, `models:` and `datasets:` links to the model and gallery);
- `space_config.json`: the model, gallery and prompt templates it was published with (Space variables override).

A gallery folder (`graft demo-gallery` output) is published with :func:`push_gallery` as a dataset repository
with a card saying which model embedded it; the Space downloads it with `snapshot_download`.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData, SpaceCard, SpaceCardData
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import graft_hf
from graft_hf.extras import require
from graft_hf.hub.files import folder_files
from graft_hf.hub.naming import validate_repo_id
from graft_hf.hub.push import PushResult, commit_folder
from graft_hf.hub.registry import MODELS
from graft_hf.io import write_json

logger = logging.getLogger(__name__)

__all__ = ["SPACE_APP", "push_gallery", "push_space", "space_requirements", "stage_space"]

SPACE_APP = '''"""Hugging Face Space of the GRAFT demo (published with `graft push --space`).

Settings: Space variables MODEL_ID (GRAFT model repo or registered name), GALLERY (gallery dataset repo or folder)
and TEMPLATES ('satellite' or 'none') override space_config.json. graft-hf is imported from ./graft_hf.
"""

import logging
from pathlib import Path

from graft_hf.demo.space import build_space_demo, serve_space

logging.basicConfig(level=logging.INFO)
demo = build_space_demo(Path(__file__).resolve().parent)

if __name__ == "__main__":
    serve_space(demo)
'''
_EXTRAS = ("demo",)
_SOURCE_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*")


def _copy_package_source(target: Path) -> None:
    """Copy graft-hf's importable source to ``target``, with the subpackages an editable install maps elsewhere.

    ``graft_hf.modeling`` and ``graft_hf.hub_cards`` live in the repository's ``modeling/`` and ``hub_cards/``
    (setup.cfg ``package_dir``), so a source checkout's ``graft_hf/`` folder lacks them; a wheel install has them
    inside. Either way the Space gets one self-contained ``graft_hf/`` package.
    """
    shutil.copytree(Path(graft_hf.__file__).parent, target, ignore=_SOURCE_IGNORE, symlinks=False)
    for name in ("modeling", "hub_cards"):
        source = Path(next(iter(importlib.import_module(f"graft_hf.{name}").__path__)))
        if source.resolve() != (target / name).resolve():
            shutil.copytree(source, target / name, ignore=_SOURCE_IGNORE, symlinks=False, dirs_exist_ok=True)


def space_requirements(gradio_version: str) -> str:
    """`requirements.txt` of the Space: graft-hf's core requirements and its `demo` extra, gradio pinned.

    Raises:
        RuntimeError: graft-hf is not installed (its metadata holds the requirements).
    """
    try:
        requires = distribution("graft-hf").requires or []
    except PackageNotFoundError as error:
        raise RuntimeError("graft-hf is not installed, so its requirements are unknown; pip install it") from error
    lines = []
    for text in requires:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is not None and not any(marker.evaluate({"extra": extra}) for extra in ("", *_EXTRAS)):
            continue  # another extra's requirement
        if marker is not None and "extra" in str(marker):
            requirement.marker = None  # wanted here: the Space installs it unconditionally
        pinned = canonicalize_name(requirement.name) == "gradio"
        lines.append(f"gradio=={gradio_version}" if pinned else str(requirement))
    header = (
        "# graft-hf's requirements (core + demo extra), from its installed metadata; graft-hf itself is the source in\n"
        "# ./graft_hf, imported from the Space's folder. gradio is pinned to the README's sdk_version.\n"
    )
    return header + "\n".join(dict.fromkeys(lines)) + "\n"


def _model_repo(model: str | None) -> str | None:
    """The Hub repository `model` names: a registered name's repository, an `owner/name` as it is, else None."""
    if model in MODELS:
        return MODELS[model].repo_id
    return model if model and model.count("/") == 1 else None


def _space_card(model: str | None, gallery: str | None, title: str, gradio_version: str) -> str:
    repo = _model_repo(model)
    data = SpaceCardData(
        title=title, sdk="gradio", sdk_version=gradio_version, python_version=f"{sys.version_info[0]}.{sys.version_info[1]}",
        app_file="app.py", license="apache-2.0", models=[repo] if repo else None,
        datasets=[gallery] if gallery and "/" in gallery and not Path(gallery).exists() else None,
        tags=["remote-sensing", "satellite-imagery", "zero-shot", "image-retrieval", "semantic-segmentation", "graft"],
        short_description="Text queries over satellite images, no text labels needed", emoji="🛰️",
        colorFrom="green", colorTo="blue", pinned=False,
    )  # fmt: skip
    body = f"""
# {title}

[GRAFT](https://arxiv.org/abs/2312.06960) (Mall, Phoo et al., ICLR 2024) trains a satellite image encoder to land
near the CLIP embeddings of geotagged ground photos taken inside each image, so a text encoder can query satellite
imagery with no text annotations. This Space runs a GRAFT model on a CPU: text-to-image retrieval over a
precomputed gallery, open-vocabulary segmentation of an uploaded image or GeoTIFF, and a region map of a query over
an uploaded GeoTIFF.

Model: `{model or "not set"}`; gallery: `{gallery or "not set"}`.

## Settings (Space variables)

| Variable | What it sets |
|---|---|
| `MODEL_ID` | GRAFT model repository (`owner/name`) or registered name such as `graft-naip-vitb16` |
| `GALLERY` | gallery dataset repository (`graft push GALLERY_FOLDER OWNER/NAME --gallery`) or a folder in this Space; `none` for no retrieval |
| `TEMPLATES` | `satellite` (prompt ensembling) or `none` (queries as typed) |

They override `space_config.json`. A private model or gallery needs the Space secret `HF_TOKEN`. Without a
reachable model the Space shows which variable to set instead of the demo.
"""
    return str(SpaceCard.from_template(data, template_str="---\n{{ card_data }}\n---\n" + body))


def stage_space(
    out_dir: str | os.PathLike,
    model: str | None,
    gallery: str | None = None,
    *,
    templates: str = "satellite",
    title: str = "GRAFT satellite image search",
) -> Path:
    """Write a Space folder that runs the demo as shipped (see the module docstring for its files).

    Args:
        out_dir: Folder to write (created; must not hold a Space already).
        model: The model it serves: a Hub repository id or a registered name (a local folder would not exist on
            the Space).
        gallery: The gallery: a Hub dataset repository id, or a folder to copy into the Space (as `gallery/`).
        templates: Prompt templates of queries (`satellite` or `none`).
        title: The Space's title.

    Returns:
        The folder.
    """
    gradio = require("gradio", "demo", "publishing the demo Space (its sdk_version)")
    out = Path(out_dir)
    if (out / "app.py").exists():
        raise FileExistsError(f"{out} already holds a Space (app.py); choose an empty folder")
    if model and Path(model).is_dir():
        raise ValueError(
            f"model={model!r} is a local folder, which the Space cannot read: push it first "
            "(graft_hf.hub.push_model) and pass its repository id"
        )
    out.mkdir(parents=True, exist_ok=True)
    if gallery and Path(gallery).is_dir():
        shutil.copytree(gallery, out / "gallery", ignore=_SOURCE_IGNORE)
        gallery = "gallery"
    _copy_package_source(out / "graft_hf")
    (out / "app.py").write_text(SPACE_APP)
    (out / "requirements.txt").write_text(space_requirements(gradio.__version__))
    (out / "README.md").write_text(_space_card(model, gallery, title, gradio.__version__))
    write_json(out / "space_config.json", {"model": model, "gallery": gallery, "templates": templates, "title": title})
    return out


def push_space(
    repo_id: str,
    model: str | None,
    gallery: str | None = None,
    *,
    templates: str = "satellite",
    title: str = "GRAFT satellite image search",
    endpoint: str | None = None,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
) -> PushResult:
    """Stage the Space (:func:`stage_space`) and push it to a gradio Space repository in one commit.

    Args:
        repo_id: `namespace/name` or `name` of the Space.
        model, gallery, templates, title: As in :func:`stage_space`.
        endpoint, token, private, commit_message: As in `graft_hf.hub.push_model`.

    Returns:
        The `PushResult`.
    """
    validate_repo_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="graft-space-") as tmp:
        folder = stage_space(Path(tmp) / "space", model, gallery, templates=templates, title=title)
        return commit_folder(
            folder_files(folder), repo_id, "space", endpoint=endpoint, token=token, private=private,
            commit_message=commit_message or "Upload the GRAFT demo Space", revision=None, create_pr=False,
        )  # fmt: skip


def _gallery_card(info: dict, repo_id: str, license: str) -> str:
    data = DatasetCardData(
        license=license, tags=["graft", "embeddings", "satellite-imagery"],
        pretty_name=f"GRAFT demo gallery {repo_id.rsplit('/', 1)[-1]}",
    )  # fmt: skip
    body = f"""
# GRAFT demo gallery

Image embeddings of {info.get("num_items", "?")} satellite tiles ({info.get("projection_dim", "?")}-d, computed
by the GRAFT model `{info.get("model") or "unknown"}`) with their coordinates and PNG thumbnails, saved as a
graft-hf `EmbeddingIndex` (Arrow). The GRAFT demo and Space search it with the same model's text tower:

```python
from graft_hf.demo import build_demo, launch_demo

launch_demo(build_demo("{info.get("model") or "MODEL"}", "{repo_id}"))
```

Licence: `{license}` (the thumbnails are derived from the source imagery, whose licence applies).
"""
    return str(DatasetCard.from_template(data, template_str="---\n{{ card_data }}\n---\n" + body))


def push_gallery(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    license: str = "unknown",
    endpoint: str | None = None,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
) -> PushResult:
    """Push a gallery folder (`graft demo-gallery` / `build_gallery` output) to a Hub dataset repository.

    Args:
        folder: The gallery folder (holds `gallery.json`).
        repo_id: `namespace/name` or `name` of the dataset.
        license: Licence id of the card (that of the source imagery; `unknown` unless given).
        endpoint, token, private, commit_message: As in `graft_hf.hub.push_model`.

    Raises:
        FileNotFoundError: `folder` is not a gallery.
    """
    from graft_hf.demo.gallery import GALLERY_FILE

    validate_repo_id(repo_id)
    folder = Path(folder)
    if not (folder / GALLERY_FILE).is_file():
        raise FileNotFoundError(f"{folder} has no {GALLERY_FILE}: build the gallery with graft_hf.demo.build_gallery")
    files = folder_files(folder, ignore=(".*", "*/.*", "__pycache__/*"))
    with tempfile.TemporaryDirectory(prefix="graft-gallery-") as tmp:
        if "README.md" not in files:
            readme = Path(tmp) / "README.md"
            readme.write_text(_gallery_card(json.loads((folder / GALLERY_FILE).read_text()), repo_id, license))
            files["README.md"] = readme
        return commit_folder(
            files, repo_id, "dataset", endpoint=endpoint, token=token, private=private,
            commit_message=commit_message or "Upload a GRAFT demo gallery", revision=None, create_pr=False,
        )  # fmt: skip
