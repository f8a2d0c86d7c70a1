"""graft_hf.resume: the one resume check (training, pair builds and region maps use it): changed settings named,
safe ones accepted, values compared as JSON sees them, each decision logged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graft_hf.resume import ResumeRefusedError, SettingChange, check_resume, setting_changes

SAVED = {"seed": 0, "train": {"batch_size": 256, "max_steps": 100, "log_every": 10}, "optim": {"betas": [0.9, 0.99]}}


def test_changes_are_dotted_and_compared_as_json() -> None:
    current = {"seed": 0, "train": {"batch_size": 128, "max_steps": 100, "log_every": 10}, "optim": {"betas": (0.9, 0.99)},
               "extra": Path("x")}  # fmt: skip
    assert setting_changes(SAVED, current) == [
        SettingChange("extra", None, "x"),
        SettingChange("train.batch_size", 256, 128),
    ]  # a tuple equals the saved list; a new key counts as a change


def test_run_defining_changes_are_refused_naming_each(tmp_path: Path) -> None:
    log = tmp_path / "resume_log.jsonl"
    current = {**SAVED, "seed": 1, "train": {**SAVED["train"], "batch_size": 64, "log_every": 5}}
    with pytest.raises(ResumeRefusedError, match="different settings") as info:
        check_resume(SAVED, current, what="run x", fix="start a new run", safe=("train.log_every",), log=log)
    assert str(info.value) == (
        "resume: cannot resume run x: it was made with different settings (seed 0 -> 1; train.batch_size 256 -> 64); "
        "start a new run"
    )
    assert info.value.key == "resume" and [c.key for c in info.value.changes] == ["seed", "train.batch_size"]
    record = json.loads(log.read_text())
    assert record["decision"] == "refused" and record["refused_changes"] == {
        "seed": [0, 1],
        "train.batch_size": [256, 64],
    }
    assert record["accepted_changes"] == {"train.log_every": [10, 5]}


def test_safe_changes_are_accepted_and_logged(tmp_path: Path) -> None:
    log = tmp_path / "resume_log.jsonl"
    longer = {**SAVED, "train": {**SAVED["train"], "max_steps": 500, "log_every": 1}}
    accepted = check_resume(SAVED, longer, what="run x", fix="-", safe=("train.max_steps", "train.log_*"), log=log,
                            details={"step": 40})  # fmt: skip
    assert [str(c) for c in accepted] == ["train.log_every 10 -> 1", "train.max_steps 100 -> 500"]
    assert check_resume(SAVED, SAVED, what="run x", fix="-", log=log) == []
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["decision"] for r in records] == ["resumed", "resumed"] and records[0]["step"] == 40
    # A whole section may be declared safe.
    assert len(check_resume(SAVED, longer, what="run x", fix="-", safe=("train",))) == 2


def test_labels_and_long_values_keep_messages_short() -> None:
    saved, current = {"plan_sha256": "a" * 64, "queries": list(range(40))}, {"plan_sha256": "b" * 64, "queries": [1]}
    with pytest.raises(ResumeRefusedError) as info:
        check_resume(saved, current, what="the build", fix="use a new folder", key="output_dir",
                     labels={"plan_sha256": "the inputs"})  # fmt: skip
    message = str(info.value)
    assert message.startswith("output_dir: ") and "the inputs changed" in message and "a" * 64 not in message
    assert "queries [0, 1, 2, 3" in message and "..." in message
