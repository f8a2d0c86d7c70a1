"""Publish GRAFT models and pairs datasets to the Hugging Face Hub, each in one commit.

A model repository gets the safetensors weights, `config.json` with `auto_map`, the model files as remote code
(`configuration_graft.py`, `modeling_graft.py`, ...), the processor (image processor + CLIP tokenizer) and the
model card, all in a single `create_commit`. Files are staged in a temporary folder (existing files are uploaded
from where they are), so a push never writes to the source folder and a failed push leaves it untouched.

Only regular files inside the folder are uploaded: symbolic links (to files or folders, anywhere) and special files
are skipped and listed (`PushResult.skipped`, logged), never followed; a model folder holding pickles (`.bin`,
`.pt`, `.pkl`, ... or pickled content) is refused, since loading a pickle runs code
(:mod:`graft_hf.hub.files`).

Failures are reported as `HubPushError` saying which step failed (create the repository, upload, commit) and
what to do (`HF_TOKEN` / `hf auth login` or `token=` for authentication, `endpoint=` / `HF_ENDPOINT` for the
server, `HF_HUB_OFFLINE` for offline mode).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, DatasetCard, HfApi, constants, get_token, is_offline_mode
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError
from safetensors import safe_open

import graft_hf
from graft_hf.hub.cards import (
    EvalResults,
    ModelCardInfo,
    check_model_card,
    parse_card_metadata,
    render_model_card,
    to_eval_results,
)
from graft_hf.hub.files import StagedFiles, folder_files, pickle_files
from graft_hf.hub.naming import validate_model_repo_id, validate_repo_id
from graft_hf.modeling import GraftConfig, GraftModel, GraftProcessor
from graft_hf.pairs.card import render_card

logger = logging.getLogger(__name__)

__all__ = [
    "DATASET_IGNORE_PATTERNS",
    "REMOTE_CODE_FILES",
    "HubPushError",
    "PushResult",
    "check_dataset_card",
    "push_dataset",
    "push_model",
    "stage_model_files",
]

# Model files uploaded as remote code next to the weights (written by GraftModel/GraftProcessor.save_pretrained).
REMOTE_CODE_FILES = ("configuration_graft.py", "modeling_graft.py", "image_processing_graft.py", "processing_graft.py")
# Build bookkeeping of `graft pairs build` and editor/OS leftovers that never go to the Hub.
DATASET_IGNORE_PATTERNS = ("_build/*", ".*", "*/.*", "*.tmp*", "__pycache__/*")
_PROCESSOR_FILES = ("processor_config.json", "tokenizer_config.json")


class HubPushError(RuntimeError):
    """A push to the Hub failed; the message names the failed step and the fix."""


@dataclass
class PushResult:
    """Outcome of a push.

    Args:
        repo_id: The full repository id (`namespace/name`).
        repo_type: `model` or `dataset`.
        commit_oid: Id of the commit holding every file.
        commit_url: URL of that commit.
        files: Paths uploaded, relative to the repository root.
        skipped: Paths in the folder that were not uploaded, with the reason (links, special files, bookkeeping).
    """

    repo_id: str
    repo_type: str
    commit_oid: str
    commit_url: str
    files: list[str]
    skipped: dict[str, str] = field(default_factory=dict)


def _auth_hint(endpoint: str) -> str:
    return (
        f"authenticate with a token that has write access to {endpoint}: set HF_TOKEN, run `hf auth login`, or pass "
        "token=; check endpoint= / HF_ENDPOINT if this is not the server you meant"
    )


def _connection_errors() -> tuple[type[BaseException], ...]:
    """Connection/timeout exception types of the HTTP client huggingface_hub uses (httpx2 in 2.x, httpx in 1.x)."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        errors += [module.ConnectError, module.TimeoutException]
    return tuple(errors)


def _explain(err: Exception, step: str, endpoint: str) -> HubPushError:
    """Turn a huggingface_hub / HTTP error into a HubPushError naming the step and the fix."""
    if isinstance(err, OfflineModeIsEnabled):
        return HubPushError(f"{step} failed: HF_HUB_OFFLINE=1 is set; unset it (HF_HUB_OFFLINE=0) to push")
    if isinstance(err, _connection_errors()):
        return HubPushError(
            f"{step} failed: cannot reach the Hub at {endpoint} ({type(err).__name__}: {err}); check the network or "
            "pass endpoint= / set HF_ENDPOINT to a reachable Hub"
        )
    if isinstance(err, HfHubHTTPError):
        status = err.response.status_code if err.response is not None else None
        if status in (401, 403) or isinstance(err, RepositoryNotFoundError):
            return HubPushError(f"{step} failed with HTTP {status}: {_auth_hint(endpoint)} ({err})")
        return HubPushError(f"{step} failed with HTTP {status} from {endpoint}: {err}")
    return HubPushError(f"{step} failed: {type(err).__name__}: {err}")


def _api(endpoint: str | None, token: str | None) -> tuple[HfApi, str]:
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    if is_offline_mode():
        raise HubPushError("cannot push: HF_HUB_OFFLINE=1 is set; unset it (HF_HUB_OFFLINE=0) to push")
    token = token or get_token()
    if not token:
        raise HubPushError(f"no Hugging Face token found: {_auth_hint(endpoint)}")
    return HfApi(endpoint=endpoint, token=token), endpoint


def _commit_folder(
    files: dict[str, Path],
    repo_id: str,
    repo_type: str,
    *,
    endpoint: str | None,
    token: str | None,
    private: bool | None,
    commit_message: str,
    revision: str | None,
    create_pr: bool,
) -> PushResult:
    """Create the repository if needed and commit every file in one commit."""
    api, endpoint = _api(endpoint, token)
    try:
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    except Exception as err:  # translated for the user, original chained
        raise _explain(err, f"creating {repo_type} repository {repo_id!r}", endpoint) from err
    full_id = url.repo_id
    operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(src)) for p, src in sorted(files.items())]
    total = sum(src.stat().st_size for src in files.values())
    logger.info("pushing %d files (%.1f MB) to %s %s in one commit", len(files), total / 1e6, repo_type, full_id)
    try:
        info = api.create_commit(
            full_id,
            operations,
            commit_message=commit_message,
            repo_type=repo_type,
            revision=revision,
            create_pr=create_pr,
        )
    except Exception as err:  # translated for the user, original chained
        raise _explain(err, f"uploading {len(files)} files to {repo_type} {full_id!r}", endpoint) from err
    logger.info("pushed %s", info.commit_url)
    skipped = files.skipped if isinstance(files, StagedFiles) else {}
    return PushResult(full_id, repo_type, info.oid, info.commit_url, sorted(files), skipped)


def _report_skipped(folder: Path, skipped: dict[str, str]) -> None:
    """Log what of ``folder`` stays local: links and special files one by one, ignored files as a count."""
    ignored = [rel for rel, reason in skipped.items() if reason.startswith("ignored")]
    for rel, reason in skipped.items():
        if not reason.startswith("ignored"):
            logger.warning("not uploaded: %s (%s)", folder / rel, reason)
    if ignored:
        logger.info("not uploaded: %d bookkeeping or hidden files of %s (e.g. %s)", len(ignored), folder, ignored[0])


def _check_model_files(files: dict[str, Path]) -> None:
    missing = [f for f in ("config.json", "configuration_graft.py", "modeling_graft.py", "README.md") if f not in files]
    if "model.safetensors" not in files and "model.safetensors.index.json" not in files:
        missing.append("model.safetensors")
    missing += [f for f in _PROCESSOR_FILES if f not in files]
    if missing:
        skipped = files.skipped if isinstance(files, StagedFiles) else {}
        links = [f for f in missing if "link" in skipped.get(f, "")]
        why = (
            f" ({links} are symbolic links, which are never uploaded: copy the real files into the folder, e.g. "
            "`hf download REPO --local-dir DIR` rather than a cache snapshot)"
            if links
            else ""
        )
        raise HubPushError(
            f"model folder is incomplete, missing {missing}{why}; save it with graft_hf (save_pretrained)"
        )
    pickles = pickle_files(files)
    if pickles:
        raise HubPushError(
            f"refusing to push pickle files {pickles}: loading a pickle runs code, and GRAFT model repos carry "
            "safetensors only; remove them from the model folder"
        )
    config = json.loads(files["config.json"].read_text())
    if config.get("model_type") != "graft" or "AutoModel" not in (config.get("auto_map") or {}):
        raise HubPushError(
            "config.json is not a GRAFT config with auto_map (model_type 'graft', auto_map.AutoModel); save the model "
            "with GraftModel.save_pretrained"
        )


def _card_text(
    files: dict[str, Path],
    config: GraftConfig,
    logit_scale: float | None,
    card_info: ModelCardInfo | None,
    eval_results: EvalResults,
    repo_id: str | None,
) -> str:
    """The README of a staged model: the folder's own card unless card details are given, else a rendered one."""
    if "README.md" in files and card_info is None and eval_results is None:
        card = files["README.md"].read_text()
        try:
            check_model_card(card)
        except ValueError as err:
            raise ValueError(
                f"{files['README.md']}: {err}; delete it, or render a new card with card_info= / eval_results= "
                "(ModelCardInfo), or pass the README text as card="
            ) from err
        return card
    card_info = card_info or ModelCardInfo(repo_id=repo_id)
    return str(render_model_card(config, card_info, to_eval_results(eval_results), logit_scale=logit_scale))


def _stage_weights(
    model: GraftModel | str | os.PathLike, staging: Path
) -> tuple[StagedFiles, GraftConfig, float | None]:
    """`(files, config, logit_scale)` of a model object (saved into `staging`) or of a saved folder."""
    if isinstance(model, GraftModel):
        model.save_pretrained(staging)
        return folder_files(staging), model.config, float(model.logit_scale.detach())
    folder = Path(model)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist; pass a folder saved by graft_hf")
    files = folder_files(folder, ignore=(".*", "*/.*", "__pycache__/*", "*.pyc"))
    _report_skipped(folder, files.skipped)
    return files, GraftConfig.from_pretrained(folder), _saved_logit_scale(folder)


@contextmanager
def stage_model_files(
    model: GraftModel | str | os.PathLike,
    *,
    processor: GraftProcessor | None = None,
    card_info: ModelCardInfo | None = None,
    eval_results: EvalResults = None,
    card: str | None = None,
    repo_id: str | None = None,
) -> Iterator[StagedFiles]:
    """Stage every file of a model repository; yields `{path_in_repo: local path}` (temporary files removed after).

    Only regular files of the folder are staged (links and special files are skipped: the yielded mapping's
    `skipped`); a folder holding pickles is refused.

    The card is, in order of precedence: `card`; a card rendered from `card_info` / `eval_results` when either is
    given; the folder's own README.md (e.g. the one `graft convert` writes); a card rendered with defaults.

    Args:
        model: A `GraftModel` or the path of a folder saved with `save_pretrained`.
        processor: A `GraftProcessor`; `None` keeps the folder's processor files or builds the default one for the
            config (`graft_hf.build_processor`).
        card_info: Details for the rendered model card.
        eval_results: Evaluation results (a path or parsed JSON, see `graft_hf.hub.cards`) or `EvalResult`s.
        card: A ready README text.
        repo_id: Repository the default card refers to (code examples, title).
    """
    with tempfile.TemporaryDirectory(prefix="graft-push-") as tmp:
        staging = Path(tmp)
        files, config, logit_scale = _stage_weights(model, staging / "model")
        if processor is not None or not all(f in files for f in _PROCESSOR_FILES):
            processor = processor if processor is not None else graft_hf.build_processor(config)
            processor.save_pretrained(staging / "processor")
            files.update(folder_files(staging / "processor"))
        if card is None:
            card = _card_text(files, config, logit_scale, card_info, eval_results, repo_id)
        check_model_card(card)
        (staging / "README.md").write_text(card)
        files["README.md"] = staging / "README.md"
        _check_model_files(files)
        yield files


def _saved_logit_scale(folder: Path) -> float | None:
    path = folder / "model.safetensors"
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as f:
        return float(f.get_tensor("logit_scale")) if "logit_scale" in f.keys() else None


def push_model(
    model: GraftModel | str | os.PathLike,
    repo_id: str,
    *,
    processor: GraftProcessor | None = None,
    card_info: ModelCardInfo | None = None,
    eval_results: EvalResults = None,
    card: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    allow_any_name: bool = False,
) -> PushResult:
    """Push a GRAFT model (weights, config, remote code, processor, card) to the Hub in one commit.

    Args:
        model: A `GraftModel` or a folder saved with `save_pretrained`.
        repo_id: `namespace/name` or `name` (the token's user namespace). The name must be
            `graft_hf.hub.model_repo_name(config)` (e.g. `graft-naip-vitb16`), optionally with `-<suffix>`.
        processor: Processor to save with it (see `stage_model_files`).
        card_info: Card details (its `repo_id` defaults to `repo_id`); without it and `eval_results`, a README.md in
            the folder is kept, else a default card is rendered.
        eval_results: Evaluation JSON path / parsed JSON / `EvalResult`s for the card and `model-index`.
        card: README text to use instead of rendering one.
        endpoint: Hub URL (default `HF_ENDPOINT` or https://huggingface.co).
        token: Access token (default: `HF_TOKEN` or the `hf auth login` token).
        private: Create the repository as private.
        revision: Branch to commit to.
        create_pr: Open a pull request instead of committing to the branch.
        commit_message: Commit message.
        allow_any_name: Skip the check that the name matches the config.

    Returns:
        The `PushResult`.

    Raises:
        HubPushError: naming the failed step and the fix (also: pickle files in the folder); nothing local is
            modified.
    """
    validate_repo_id(repo_id)
    config = model.config if isinstance(model, GraftModel) else GraftConfig.from_pretrained(model)
    if not allow_any_name:
        validate_model_repo_id(repo_id, config)
    if card_info is not None and card_info.repo_id is None:
        card_info.repo_id = repo_id
    with stage_model_files(
        model, processor=processor, card_info=card_info, eval_results=eval_results, card=card, repo_id=repo_id
    ) as files:
        return _commit_folder(
            files,
            repo_id,
            "model",
            endpoint=endpoint,
            token=token,
            private=private,
            commit_message=commit_message or f"Upload GRAFT model {repo_id.rsplit('/', 1)[-1]}",
            revision=revision,
            create_pr=create_pr,
        )


def check_dataset_card(text: str) -> dict[str, Any]:
    """Check a pairs dataset card locally (parsed with huggingface_hub's `DatasetCard`): `license`, and `configs`
    whose every entry has `data_files`.

    Returns:
        The card's metadata.

    Raises:
        ValueError: listing the problems.
    """
    metadata = parse_card_metadata(DatasetCard, text, "dataset card")
    problems = [f"missing metadata key {k!r}" for k in ("license", "configs") if not metadata.get(k)]
    for config in metadata.get("configs") or []:
        if not isinstance(config, dict) or not config.get("data_files"):
            problems.append(f"config {config!r} has no data_files")
    if problems:
        raise ValueError("dataset card check failed: " + "; ".join(problems))
    return metadata


def push_dataset(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    endpoint: str | None = None,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
) -> PushResult:
    """Push a pairs dataset folder (`graft pairs build` output) to a Hub dataset repository in one commit.

    Uploads `README.md` (the dataset card with its `configs:` block), `build_report.json` and the parquet shards;
    `_build/` bookkeeping, hidden files, symbolic links and special files stay local (`PushResult.skipped`). A folder without README.md but with `build_report.json`
    gets its card rendered by `graft_hf.pairs.card.render_card`.

    Args:
        folder: The build folder.
        repo_id: `namespace/name` or `name`.
        endpoint, token, private, revision, create_pr, commit_message: As in `push_model`.

    Returns:
        The `PushResult`.

    Raises:
        FileNotFoundError: when the folder or its shards are missing.
        HubPushError: naming the failed step and the fix; nothing local is modified.
    """
    validate_repo_id(repo_id)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {folder} does not exist")
    files = folder_files(folder, ignore=DATASET_IGNORE_PATTERNS)
    _report_skipped(folder, files.skipped)
    if not any(name.endswith(".parquet") for name in files):
        links = [rel for rel, reason in files.skipped.items() if rel.endswith(".parquet") and "link" in reason]
        also = f" (symbolic links are not uploaded: {links[:3]})" if links else ""
        raise FileNotFoundError(
            f"no parquet shards under {folder}{also}; build the pairs first (graft pairs build) or point at the build "
            "folder"
        )
    with tempfile.TemporaryDirectory(prefix="graft-push-") as tmp:
        if "README.md" not in files:
            report_path = folder / "build_report.json"
            if not report_path.is_file():
                raise FileNotFoundError(
                    f"{folder} has neither README.md nor build_report.json; rerun `graft pairs build` to finish the "
                    "build (the card is written when every shard exists)"
                )
            readme = Path(tmp) / "README.md"
            readme.write_text(render_card(json.loads(report_path.read_text())))
            files["README.md"] = readme
        check_dataset_card(files["README.md"].read_text())
        return _commit_folder(
            files,
            repo_id,
            "dataset",
            endpoint=endpoint,
            token=token,
            private=private,
            commit_message=commit_message or f"Upload GRAFT pairs dataset {repo_id.rsplit('/', 1)[-1]}",
            revision=revision,
            create_pr=create_pr,
        )
