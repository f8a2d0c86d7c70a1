"""scripts/recipe.sh: every stage's `graft` command line parses with graft's own parser (so the script passes no flag
that does not exist), in order, with the cluster split; unknown stages and a missing teacher are clean errors.
The commands running for real on loopback servers are tests/collect/test_end_to_end.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from graft_hf_cli import build_parser

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "recipe.sh"


def _run(tmp_path: Path, *stages: str, **env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """Run the recipe with a `graft` on PATH that records its arguments instead of running."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "graft"
    stub.write_text(
        f"#!{sys.executable}\nimport json, sys\nopen({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    stub.chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    environ.update(PATH=f"{bin_dir}{os.pathsep}{environ['PATH']}", OUT=str(tmp_path / "run"), **env)
    result = subprocess.run(["bash", str(SCRIPT), *stages], capture_output=True, text=True, env=environ, timeout=60)
    lines = calls.read_text().splitlines() if calls.exists() else []
    return result, [json.loads(line) for line in lines]


def test_every_stage_runs_a_valid_graft_command(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, TEACHER="clip-dir", EVAL_DATA="eurosat", WORKERS="3")
    assert result.returncode == 0, result.stderr
    assert [c[:2] for c in calls] == [["collect", "photos"], ["collect", "download"], ["pairs", "filter"],
                                      ["collect", "imagery"], ["pairs", "build"], ["pairs", "embed"],
                                      ["train", "naip-vitb16"], ["eval", "--model"]]  # fmt: skip
    parser = build_parser()
    for argv in calls:
        parser.parse_args(argv)  # exits (fails the test) on a flag graft does not have
    assert calls[0][2] == "--bbox=-99.2,47.0,-99.1,47.05" and "--yfcc" not in calls[0]
    assert "--resume" not in calls[6]  # nothing to resume yet


def test_cluster_split_yfcc_and_errors(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, "photos", "download", "pairs", YFCC="dump.bz2", SLURM_ARRAY_TASK_COUNT="8",
                         SLURM_ARRAY_TASK_ID="5", SENSOR="sentinel2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    photos, download, pairs = calls
    assert photos[photos.index("--yfcc") + 1] == "dump.bz2"
    for argv in (download, pairs):
        build_parser().parse_args(argv)
        assert argv[argv.index("--num-shards") + 1] == "8" and argv[argv.index("--shard-index") + 1] == "5"
    assert pairs[pairs.index("--sensor") + 1] == "sentinel2"
    missing, _ = _run(tmp_path, "filter")
    assert missing.returncode == 2 and "set TEACHER" in missing.stderr
    unknown, _ = _run(tmp_path, "nope")
    assert unknown.returncode == 2 and "unknown stage 'nope'" in unknown.stderr
