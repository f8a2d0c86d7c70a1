#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install graft-hf with its test extras.
# Sourced by scripts/test.sh and scripts/quickstart.sh; safe to run repeatedly (pip skips what is installed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GRAFT_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x "$VENV/bin/python" ]; then
  echo "[graft-hf] creating virtual environment in $VENV"
  "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import graft_hf, pytest" >/dev/null 2>&1 || [ "${GRAFT_REINSTALL:-0}" = 1 ]; then
  echo "[graft-hf] installing graft-hf[dev] (torch 2.14 + torchvision 0.29 from the local wheel cache; ~3 min)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]"
  "$VENV/bin/python" -c "import graft_hf, pytest, faiss, scipy" || {
    echo "[graft-hf] installation incomplete: 'import graft_hf' failed; see the pip output above" >&2; exit 1; }
fi
# Offline Hugging Face stack (no Hub is reachable; fail fast instead of retrying for minutes).
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export HF_UPDATE_DOWNLOAD_COUNTS=False GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_XET=1
export TOKENIZERS_PARALLELISM=false
export PATH="$VENV/bin:$PATH"
