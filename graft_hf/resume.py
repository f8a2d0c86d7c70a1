"""Resuming an interrupted job: the one check that its run-defining settings did not change, and its record.

Training (``train(config, resume=True)``), pair builds and region maps save the settings their outputs depend on
next to those outputs. A resume compares the saved settings with the new ones, setting by setting (nested
mappings are compared key by key under dotted names, values as JSON writes them, so a tuple equals a list and a
path its string). A change to a setting the job declares safe (a run's length, how often it logs) is accepted
and reported; any other change refuses the resume with a :class:`ResumeRefusedError` naming every changed
setting, its saved and new value and how to start a new run instead. Each decision is logged, and appended to a
JSON-lines log in the job's folder when the job keeps one (training: ``<output_dir>/resume_log.jsonl``).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graft_hf.config import ConfigError

__all__ = ["ResumeRefusedError", "SettingChange", "check_resume", "record_resume", "setting_changes"]

logger = logging.getLogger(__name__)

_SHOWN_CHARS = 60  # longest value quoted in a message (hashes and long lists are cut)


@dataclass(frozen=True)
class SettingChange:
    """One setting whose value differs between the saved run and the resumed one.

    Attributes:
        key: Dotted name of the setting (``train.batch_size``).
        saved: Its value in the saved run (``None`` when the saved run did not have it).
        current: Its value now (``None`` when the setting is gone).
    """

    key: str
    saved: Any
    current: Any

    def __str__(self) -> str:
        return f"{self.key} {_shown(self.saved)} -> {_shown(self.current)}"


class ResumeRefusedError(ConfigError):
    """A resume was refused because run-defining settings changed.

    Attributes:
        changes: The refused changes (settings that define the run).
    """

    def __init__(self, key: str | None, reason: str, changes: list[SettingChange]) -> None:
        super().__init__(key, reason)
        self.changes = changes


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _plain(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples become lists, paths and other objects their string)."""
    return json.loads(json.dumps(value, default=str))


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}{key}.", out)
    else:
        out[prefix.rstrip(".")] = value
    return out


def setting_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[SettingChange]:
    """Every dotted setting whose value differs between ``saved`` and ``current``, sorted by name.

    Args:
        saved: The settings the interrupted run recorded (nested mappings allowed).
        current: The settings of the run that wants to resume it.
    """
    old, new = _flatten(_plain(dict(saved)), "", {}), _flatten(_plain(dict(current)), "", {})
    return [
        SettingChange(key, old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key) or (key in old) != (key in new)
    ]


def _is_safe(key: str, safe: Collection[str]) -> bool:
    """``key`` is a safe setting, or lies under one (``train`` covers ``train.log_every``; patterns allowed)."""
    return any(key == s or key.startswith(s + ".") or fnmatch.fnmatchcase(key, s) for s in safe)


def check_resume(
    saved: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    what: str,
    fix: str,
    key: str | None = "resume",
    safe: Collection[str] = (),
    labels: Mapping[str, str] | None = None,
    log: str | os.PathLike | None = None,
    details: Mapping[str, Any] | None = None,
) -> list[SettingChange]:
    """Refuse a resume whose run-defining settings changed; return the accepted (safe) changes.

    Args:
        saved: The settings recorded by the run being resumed.
        current: The settings of this run.
        what: The run being resumed, for messages (``"the checkpoint runs/x/checkpoints/step-00000100"``).
        fix: How to go on instead (resume with the saved settings, or start a new run and how).
        key: The parameter a refusal is about (:class:`graft_hf.config.ConfigError` key).
        safe: Settings that may change on resume (dotted names or patterns; a name covers the settings under it).
        labels: Readable names of settings for messages (``{"plan_sha256": "the sampled tiles"}``).
        log: JSON-lines file the decision is appended to (``None``: the logger only).
        details: Extra fields for the log record (the step resumed from, ...).

    Returns:
        The accepted changes (all safe), possibly empty.

    Raises:
        ResumeRefusedError: A setting outside ``safe`` changed; the message names each one.
    """
    changes = setting_changes(saved, current)
    refused = [c for c in changes if not _is_safe(c.key, safe)]
    accepted = [c for c in changes if _is_safe(c.key, safe)]
    names = dict(labels or {})

    def described(items: list[SettingChange]) -> str:
        return "; ".join(f"{names[c.key]} changed" if c.key in names else str(c) for c in items)

    if refused:
        record_resume(log, "refused", what, refused=refused, accepted=accepted, details=details)
        reason = f"cannot resume {what}: it was made with different settings ({described(refused)}); {fix}"
        raise ResumeRefusedError(key, reason, refused)
    record_resume(log, "resumed", what, accepted=accepted, details=details)
    if accepted:
        logger.info("resuming %s with changed settings that are safe to change: %s", what, described(accepted))
    return accepted


def record_resume(
    log: str | os.PathLike | None,
    decision: str,
    what: str,
    *,
    accepted: list[SettingChange] = (),  # type: ignore[assignment]
    refused: list[SettingChange] = (),  # type: ignore[assignment]
    details: Mapping[str, Any] | None = None,
) -> None:
    """Log a resume decision and append it as one JSON line to ``log`` (when given).

    Args:
        log: The job's resume log, or ``None``.
        decision: ``"resumed"`` or ``"refused"``.
        what: The run resumed.
        accepted: Safe changes taken over.
        refused: Run-defining changes that refused it.
        details: Extra fields for the record.
    """
    logger.info("resume %s: %s", decision, what)
    if log is None:
        return
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "decision": decision,
        "resumed": what,
        "accepted_changes": {c.key: [c.saved, c.current] for c in accepted},
        "refused_changes": {c.key: [c.saved, c.current] for c in refused},
        **_plain(dict(details or {})),
    }
    path = Path(log)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:  # an append-only log: a kill loses at most its last line
        handle.write(json.dumps(record, default=str) + "\n")
