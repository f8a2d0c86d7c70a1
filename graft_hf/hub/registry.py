"""The paper's GRAFT models by short name, as open_clip and timm name their checkpoints.

Each :class:`RegisteredModel` is a record, not a URL: the Hub repository it is published under (``graft-hf/<name>``,
the organisation the Space names), the training preset that reproduces it (``graft train <preset>``), the sensor,
architecture and level, the teacher CLIP, the licence and what the paper evaluates it on.

**No weights are published yet**: every entry's ``status`` is ``planned``. :func:`resolve_model` and
:func:`load_model` therefore look for a local folder of the name first (what ``graft convert ... -o
graft-naip-vitb16/`` writes, or a ``graft train`` output copied there) and only then try the Hub repository; when
that fails they say how to get the weights (train them with the preset, or convert the authors' checkpoint).

Every ``--model`` flag of the ``graft`` command accepts these names, through the library loaders that call
:func:`resolve_model`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from huggingface_hub import is_offline_mode

from graft_hf.config import ConfigError
from graft_hf.evaluation.errors import UnavailableSourceError, check_local_or_hub

if TYPE_CHECKING:
    from graft_hf.modeling import GraftModel, GraftProcessor

logger = logging.getLogger(__name__)

__all__ = [
    "HUB_ORGANISATION",
    "MODELS",
    "RegisteredModel",
    "get_model_info",
    "list_models",
    "load_model",
    "load_processor",
    "resolve_model",
]

#: The Hub organisation the paper's models are to be published under.
HUB_ORGANISATION = "graft-hf"
_PAPER = "Mall, Phoo et al., ICLR 2024, https://openreview.net/forum?id=0bUnOJ7SN1"
_TEACHERS = {"vitb16": "openai/clip-vit-base-patch16", "vitb32": "openai/clip-vit-base-patch32"}
_ARCHITECTURES = {"vitb16": "ViT-B/16", "vitb32": "ViT-B/32"}
_SENSORS = {"naip": ("naip", "naip"), "s2": ("sentinel2", "sentinel2")}  # name part -> (sensor, preset sensor)
_PAPER_TASKS = {
    "image": ("zero-shot image classification", "text-to-image retrieval"),
    "pixel": ("zero-shot segmentation", "visual question answering"),
}


@dataclass(frozen=True)
class RegisteredModel:
    """One of the paper's models.

    Attributes:
        name: Short name, e.g. ``graft-naip-vitb16`` (also the name of a local folder holding it).
        repo_id: Hub repository, ``graft-hf/<name>``.
        preset: ``graft train`` preset reproducing its recipe (``graft_hf.training.presets``).
        sensor: Sensor of the imagery (``graft_hf.modeling.SENSORS`` key).
        architecture: Vision tower, e.g. ``ViT-B/16``.
        level: ``image`` (one embedding per image, paper eq. 2) or ``pixel`` (patch embeddings, eq. 3).
        teacher: The CLIP whose image space it is trained into and whose text tower it carries.
        license: Licence the repository is to carry (the project's).
        paper: The paper.
        paper_tasks: What the paper evaluates this kind of model on.
        status: ``planned`` (no weights published yet) or ``published``.
    """

    name: str
    repo_id: str
    preset: str
    sensor: str
    architecture: str
    level: Literal["image", "pixel"]
    teacher: str
    license: str = "apache-2.0"
    paper: str = _PAPER
    paper_tasks: tuple[str, ...] = ()
    status: Literal["planned", "published"] = "planned"


def _entry(sensor_part: str, arch: str, level: Literal["image", "pixel"]) -> RegisteredModel:
    suffix = "-pixel" if level == "pixel" else ""
    sensor, preset_sensor = _SENSORS[sensor_part]
    name = f"graft-{sensor_part}-{arch}{suffix}"
    return RegisteredModel(
        name=name,
        repo_id=f"{HUB_ORGANISATION}/{name}",
        preset=f"{preset_sensor}-{arch}{suffix}",
        sensor=sensor,
        architecture=_ARCHITECTURES[arch],
        level=level,
        teacher=_TEACHERS[arch],
        paper_tasks=_PAPER_TASKS[level],
    )


#: Every registered model by name: ``graft-{naip,s2}-{vitb16,vitb32}`` and their ``-pixel`` variants.
MODELS: dict[str, RegisteredModel] = {
    entry.name: entry
    for entry in (
        _entry(sensor, arch, level)
        for level in ("image", "pixel")
        for sensor in ("naip", "s2")
        for arch in ("vitb16", "vitb32")
    )
}


def list_models() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(MODELS)


def get_model_info(name: str) -> RegisteredModel:
    """The record of a registered model.

    Raises:
        KeyError: ``name`` is not registered; the message lists the names.
    """
    if name not in MODELS:
        raise KeyError(f"no registered GRAFT model {name!r}; registered: {', '.join(list_models())}")
    return MODELS[name]


def _how_to_get(entry: RegisteredModel) -> str:
    return (
        f"train it with the {entry.preset!r} preset (graft_hf.training.train(get_preset({entry.preset!r}) with "
        "data.path set), or convert the authors' checkpoint (graft_hf.hub.convert.convert_authors_checkpoint), into "
        f"a folder named {entry.name!r}: the name then finds it"
    )


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """Where to load a model from: a local folder, a registered model's Hub repository, or the argument unchanged.

    A folder of that name (relative to the working directory, or any path) wins; a registered name without such a
    folder becomes its Hub repository (``graft-naip-vitb16`` -> ``graft-hf/graft-naip-vitb16``); anything else
    (another Hub id) is returned as given.

    Raises:
        UnavailableSourceError: A registered name with no local folder while ``HF_HUB_OFFLINE`` is set, naming how
            to get the weights.
        MissingPathError: ``name_or_path`` is neither an existing folder nor a possible Hub id (``./x``, ``/x``).
    """
    text = os.fspath(name_or_path)
    if Path(text).is_dir():
        return text
    if text not in MODELS:
        check_local_or_hub("model", text, "model folder")
        return text
    entry = MODELS[text]
    if is_offline_mode():
        raise UnavailableSourceError(
            "model",
            f"{text!r} is a registered GRAFT model ({entry.architecture} {entry.sensor}, {entry.level} level) but "
            f"there is no folder {text!r} here, and HF_HUB_OFFLINE is set, so its Hub repository {entry.repo_id} "
            f"cannot be reached. Unset HF_HUB_OFFLINE where the Hub is reachable, or {_how_to_get(entry)}",
        )
    return entry.repo_id


def _unavailable(name: str, source: str, error: Exception) -> UnavailableSourceError:
    detail = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    if name in MODELS and source == MODELS[name].repo_id:
        entry = MODELS[name]
        return UnavailableSourceError(
            "model",
            f"could not load {name!r} from {entry.repo_id} ({detail}); its weights are {entry.status} on the Hub. "
            f"To get them, {_how_to_get(entry)}",
        )
    if is_offline_mode() and not Path(name).exists():
        return UnavailableSourceError(
            "model",
            f"could not load GRAFT model {name!r}: HF_HUB_OFFLINE is set, so Hub ids cannot be fetched; download it "
            f"where the Hub is reachable (`hf download {name} --local-dir DIR`) and pass model=DIR, the local directory "
            f"(a folder saved with GraftModel.save_pretrained, e.g. model=/path/to/graft-naip-vitb16) ({detail})",
        )
    return UnavailableSourceError(
        "model",
        f"could not load GRAFT model {name!r} ({detail}); pass model= a folder saved with GraftModel.save_pretrained, "
        f"a Hub id, or a registered name ({', '.join(list_models()[:2])}, ...)",
    )


def load_model(name_or_path: str | os.PathLike, **kwargs: Any) -> GraftModel:
    """Load a GRAFT model by registered name, folder or Hub id (see :func:`resolve_model`), in eval mode.

    Args:
        name_or_path: ``graft-naip-vitb16`` (a folder of that name first, else ``graft-hf/graft-naip-vitb16``), a
            folder saved with ``save_pretrained``, or a Hub id.
        **kwargs: Passed to ``GraftModel.from_pretrained`` (``dtype``, ``revision``, ...).

    Raises:
        UnavailableSourceError: The model cannot be loaded; the message says how to get it.
        ConfigError: The folder or repository holds another kind of model.
    """
    from transformers import AutoConfig

    from graft_hf.modeling import GraftConfig, GraftModel

    name = os.fspath(name_or_path)
    source = resolve_model(name)
    try:
        config = AutoConfig.from_pretrained(source, revision=kwargs.get("revision"))
    except (OSError, ValueError) as error:
        raise _unavailable(name, source, error) from error
    if not isinstance(config, GraftConfig):
        raise ConfigError("model", f"{name!r} holds a {config.model_type!r} model, not a GRAFT model")
    try:
        return GraftModel.from_pretrained(source, config=config, **kwargs).eval()
    except (OSError, ValueError) as error:
        raise _unavailable(name, source, error) from error


def load_processor(name_or_path: str | os.PathLike, **kwargs: Any) -> GraftProcessor:
    """Load the processor saved with a GRAFT model (image processor + the text tower's tokenizer), by name too.

    Raises:
        UnavailableSourceError: The processor cannot be loaded; the message says how to get it.
    """
    from graft_hf.modeling import GraftProcessor

    name = os.fspath(name_or_path)
    source = resolve_model(name)
    try:
        return GraftProcessor.from_pretrained(source, **kwargs)
    except (OSError, ValueError, TypeError) as error:
        raise _unavailable(name, source, error) from error
