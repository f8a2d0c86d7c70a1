#!/usr/bin/env bash
# The main job from a fresh machine: set up .venv, then run the EuroSAT benchmark (`graft quickstart`), offline.
# Extra arguments go to `graft quickstart` (e.g. `bash scripts/quickstart.sh -o runs/eurosat --epochs 4`).
# The report lands in runs/quickstart/report/report.md (or <output>/report/); rerunning resumes a killed run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
graft quickstart "$@"
