"""graft_hf.io: atomic writes leave either the old file or the new one, never a partial or stray temporary."""

import json
from pathlib import Path

import pytest

from graft_hf.io import atomic_path, atomic_write, write_json, write_report


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.json"
    write_json(target, {"a": 1})
    atomic_write(target, "new text", durable=True)
    assert target.read_text() == "new text"
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]
    write_json(target, {"b": Path("x")})
    assert json.loads(target.read_text()) == {"b": "x"}


def test_failed_writer_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "shard.parquet"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["shard.parquet"]


def test_write_report_writes_results_json_and_markdown(tmp_path: Path) -> None:
    paths = write_report(tmp_path / "eval", {"accuracy": 0.5}, "# report\n")
    assert paths == {"json": tmp_path / "eval" / "results.json", "markdown": tmp_path / "eval" / "results.md"}
    assert json.loads(paths["json"].read_text()) == {"accuracy": 0.5} and paths["markdown"].read_text() == "# report\n"
