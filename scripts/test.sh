#!/usr/bin/env bash
# Run the test suite from a fresh machine: sets up .venv, then lint + pytest, all offline.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m slow`, `bash scripts/test.sh tests/test_losses.py`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
export HF_HOME="$(mktemp -d)/hf" GRADIO_TEMP_DIR="$(mktemp -d)"
ruff check graft_hf graft_hf_cli modeling scripts tests
python -m pytest -q "$@"
