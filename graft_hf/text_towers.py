"""Text encoders as GRAFT text towers: a sentence-transformers folder (all-MiniLM-L6-v2) read into a `GraftTextTower`.

The alt-text teacher (`graft pairs embed --text`, the quickstart's targets) and the text tower a trained student is
saved with are the same object: :func:`load_text_tower` reads the encoder's folder once, and both the teacher
(:class:`graft_hf.pairs.teachers.SentenceTeacher`) and ``GraftModel.set_text_tower`` use what it returns. No
sentence-transformers code runs: its folder layout is read as data.

* A sentence-transformers folder: ``modules.json`` lists a ``Transformer`` (the transformers encoder and tokenizer,
  in the folder itself or a sub-folder), a ``Pooling`` (its ``config.json`` picks mean or CLS pooling) and an
  optional ``Normalize``; ``sentence_bert_config.json`` caps the tokens per text (``max_seq_length``). Other
  modules (``Dense``, ``LayerNorm``, ...) are refused by name.
* A plain transformers text encoder folder (no ``modules.json``): mean pooling, no normalisation
  (sentence-transformers' default for such a folder).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import is_offline_mode, snapshot_download
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from graft_hf.modeling import GraftModel, GraftTextTower

logger = logging.getLogger(__name__)

__all__ = ["LoadedTextTower", "TextTowerError", "TextTowerSpec", "attach_text_tower", "load_text_tower", "read_spec"]

# sentence-transformers' pooling-config flags (older releases) and modes (newer ones) that GraftTextTower has.
_POOLING_FLAGS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}
_UNSUPPORTED_POOLING_FLAGS = (
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)
_DOWNLOAD_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors", "*/*.json"]


class TextTowerError(ValueError):
    """A folder cannot be used as a GRAFT text tower; the message names the file and the fix."""


@dataclass(frozen=True)
class TextTowerSpec:
    """What a text encoder folder says about its tower, read without loading weights.

    Attributes:
        folder: The local folder.
        encoder_dir: Folder of the transformers encoder and tokenizer (``folder`` or a sub-folder).
        pooling: ``mean`` or ``cls``.
        normalize: Whether embeddings are L2-normalised.
        max_seq_length: Tokens kept per text (``None``: the tokenizer's and encoder's own limits).
        dim: Embedding size (the encoder's hidden size; there is no projection).
        name: Name of the encoder for configs and cards (e.g. ``all-MiniLM-L6-v2``).
    """

    folder: Path
    encoder_dir: Path
    pooling: str
    normalize: bool
    max_seq_length: int | None
    dim: int
    name: str


@dataclass
class LoadedTextTower:
    """A text tower with its tokenizer (``tokenizer.model_max_length`` is the tower's token limit)."""

    tower: GraftTextTower
    tokenizer: PreTrainedTokenizerBase
    spec: TextTowerSpec

    @property
    def name(self) -> str:
        return self.spec.name


def _local_folder(path: str | os.PathLike) -> Path:
    folder = Path(path)
    if folder.is_dir():
        return folder
    if str(path).startswith((".", "/")) or folder.suffix:
        raise TextTowerError(f"text encoder folder {str(path)!r} not found; pass a local folder")
    if is_offline_mode():
        raise TextTowerError(
            f"{str(path)!r} is not a local folder and HF_HUB_OFFLINE is set, so it cannot be downloaded: download it "
            f"where the Hub is reachable (`hf download {path} --local-dir DIR`) and pass DIR"
        )
    return Path(snapshot_download(str(path), allow_patterns=_DOWNLOAD_PATTERNS))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise TextTowerError(f"cannot read {path}: {err}") from err


def _pooling(config: dict, where: Path) -> str:
    mode = config.get("pooling_mode")
    modes = [mode] if isinstance(mode, str) else list(mode or [])
    modes += [name for flag, name in _POOLING_FLAGS.items() if config.get(flag)]
    unsupported = [flag for flag in _UNSUPPORTED_POOLING_FLAGS if config.get(flag)]
    unsupported += [m for m in modes if m not in ("mean", "cls")]
    modes = list(dict.fromkeys(m for m in modes if m in ("mean", "cls")))
    if unsupported or len(modes) != 1:
        raise TextTowerError(
            f"{where}: GRAFT text towers pool with exactly one of mean or cls, this encoder asks for "
            f"{modes + unsupported or 'no pooling'}; use a sentence encoder with mean or CLS pooling"
        )
    return modes[0]


def _modules(folder: Path) -> tuple[Path, str, bool]:
    """``(encoder folder, pooling, normalize)`` from a sentence-transformers ``modules.json``."""
    encoder_dir, pooling, normalize = None, None, False
    for module in _read_json(folder / "modules.json"):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = folder / str(module.get("path", ""))
        if kind == "Transformer":
            encoder_dir = path
        elif kind == "Pooling":
            pooling = _pooling(_read_json(path / "config.json"), path / "config.json")
        elif kind == "Normalize":
            normalize = True
        else:
            raise TextTowerError(
                f"{folder / 'modules.json'} has a {kind or 'nameless'} module; GRAFT text towers are an encoder, "
                "mean or CLS pooling and an optional Normalize (no Dense or other layers)"
            )
    if encoder_dir is None or pooling is None:
        raise TextTowerError(f"{folder / 'modules.json'} needs a Transformer and a Pooling module")
    return encoder_dir, pooling, normalize


def _display_name(folder: Path) -> str:
    """The model card's ``# title`` after its metadata (sentence-transformers cards have one), else the folder."""
    readme = folder / "README.md"
    if readme.is_file():
        text = readme.read_text(errors="replace")
        body = text.split("\n---\n", 1)[1] if text.startswith("---\n") and "\n---\n" in text[4:] else text
        heading = re.search(r"^# (\S[^\n]*)$", body, flags=re.MULTILINE)
        if heading:
            return heading.group(1).strip()
    return folder.name


def read_spec(path: str | os.PathLike, name: str | None = None) -> TextTowerSpec:
    """Read a text encoder folder's tower description (no weights are loaded).

    Args:
        path: A sentence-transformers or transformers text encoder folder, or a Hub id (downloaded when online).
        name: Name to record (default: the title of the folder's README.md, else the folder name).

    Raises:
        TextTowerError: The folder is missing, or describes a tower GRAFT does not have.
    """
    folder = _local_folder(path)
    if (folder / "modules.json").is_file():
        encoder_dir, pooling, normalize = _modules(folder)
    else:
        encoder_dir, pooling, normalize = folder, "mean", False
    settings = (
        _read_json(folder / "sentence_bert_config.json") if (folder / "sentence_bert_config.json").is_file() else {}
    )
    if settings.get("do_lower_case"):
        raise TextTowerError(
            f"{folder / 'sentence_bert_config.json'} asks to lower-case texts before tokenising, which a GRAFT text "
            "tower cannot record; use an encoder whose tokenizer lower-cases by itself (an uncased tokenizer)"
        )
    try:
        config = AutoConfig.from_pretrained(encoder_dir)
    except (OSError, ValueError) as err:
        raise TextTowerError(f"no transformers text encoder config in {encoder_dir}: {err}") from err
    if config.model_type in ("clip", "graft") or not hasattr(config, "hidden_size"):
        raise TextTowerError(
            f"{encoder_dir} holds a {config.model_type!r} model, not a text encoder; pass a sentence encoder folder "
            "(e.g. all-MiniLM-L6-v2), or use the CLIP teacher for CLIP checkpoints"
        )
    max_seq_length = settings.get("max_seq_length")
    return TextTowerSpec(
        folder=folder,
        encoder_dir=encoder_dir,
        pooling=pooling,
        normalize=normalize,
        max_seq_length=int(max_seq_length) if max_seq_length else None,
        dim=int(config.hidden_size),
        name=name or _display_name(folder),
    )


def load_text_tower(
    path: str | os.PathLike, device: str | torch.device = "cpu", name: str | None = None
) -> LoadedTextTower:
    """Load a text encoder folder as a frozen `GraftTextTower` in eval mode, with its tokenizer.

    Args:
        path: A sentence-transformers or transformers text encoder folder (e.g. all-MiniLM-L6-v2's), or a Hub id.
        device: Where the tower runs.
        name: Name to record (see :func:`read_spec`).

    Raises:
        TextTowerError: The folder cannot be used (see :func:`read_spec`), or its weights or tokenizer do not load.
    """
    spec = read_spec(path, name)
    try:
        text_model = AutoModel.from_pretrained(spec.encoder_dir)
        tokenizer = AutoTokenizer.from_pretrained(spec.encoder_dir)
    except (OSError, ValueError) as err:
        raise TextTowerError(f"cannot load the text encoder in {spec.encoder_dir}: {err}") from err
    tower = GraftTextTower(text_model, None, spec.pooling, spec.normalize).to(device).eval().requires_grad_(False)
    limit = tower.token_limit(tokenizer)
    if spec.max_seq_length is not None:
        limit = min(spec.max_seq_length, limit) if limit else spec.max_seq_length
    if limit is not None:
        tokenizer.model_max_length = limit
    return LoadedTextTower(tower, tokenizer, spec)


def attach_text_tower(model: GraftModel, path: str | os.PathLike, name: str | None = None) -> PreTrainedTokenizerBase:
    """Put the text encoder of folder ``path`` into ``model`` as its text tower; returns the tower's tokenizer.

    The model's image tower must embed into the encoder's space (``projection_dim`` equal to its size), as a student
    trained on that encoder's text embeddings does. Save the tokenizer with the model's processor
    (``graft_hf.build_processor(model.config, tokenizer=...)``).

    Raises:
        TextTowerError: The folder cannot be used as a tower.
        ValueError: The encoder's size differs from the model's ``projection_dim``.
    """
    loaded = load_text_tower(path, name=name)
    model.set_text_tower(loaded.tower, loaded.name)
    logger.info("text tower of the model: %s (%s pooling)", loaded.name, loaded.spec.pooling)
    return loaded.tokenizer
