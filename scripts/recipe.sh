#!/usr/bin/env bash
# The GRAFT recipe end to end: a region and a date range -> photos -> download -> filter -> imagery -> pairs ->
# embed -> train -> eval. Every stage resumes when rerun; run them all or one at a time:
#
#   bash scripts/recipe.sh                  # all stages, one machine
#   bash scripts/recipe.sh download pairs   # the named stages only
#
# Settings (environment variables; defaults in brackets):
#   BBOX        region WEST,SOUTH,EAST,NORTH in degrees, or REGION=FILE.geojson  [-99.2,47.0,-99.1,47.05]
#   START, END  capture dates of the photos  [2015-01-01, 2020-12-31]
#   OUT         working folder  [runs/recipe]
#   TEACHER     CLIP teacher: a transformers CLIP directory or Hub id (filter, embed, train)  [required there]
#   SENSOR      naip or sentinel2  [naip]
#   YFCC        a YFCC100M metadata dump (.bz2 or plain) instead of the Flickr API  [unset: the API, which needs
#               FLICKR_API_KEY and FLICKR_API_SECRET in the environment]
#   STAC        STAC API  [Microsoft Planetary Computer]
#   EVAL_DATA   labelled dataset for graft eval (folder or Hub id)  [unset: eval is skipped]
#   PRESET      training preset  [${SENSOR}-vitb16]
#   WORKERS     processes for download and pairs  [nproc]
#   DEVICE      device of the filter and embed teachers  [auto]
# On a cluster, the download and pairs stages split over NUM_SHARDS jobs (job i runs with SHARD_INDEX=i; under
# a Slurm array they default to SLURM_ARRAY_TASK_COUNT / SLURM_ARRAY_TASK_ID); the job finishing last writes the
# table or the card, and rerunning any one job writes them if it finished first. Train under `accelerate launch`
# with LAUNCH="accelerate launch -m graft_hf_cli" (see README, "One recipe end to end").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command -v graft >/dev/null 2>&1 || source "$ROOT/scripts/env.sh"  # else: the project's .venv, as quickstart.sh

BBOX="${BBOX:--99.2,47.0,-99.1,47.05}"
START="${START:-2015-01-01}"
END="${END:-2020-12-31}"
OUT="${OUT:-runs/recipe}"
SENSOR="${SENSOR:-naip}"
PRESET="${PRESET:-${SENSOR}-vitb16}"
WORKERS="${WORKERS:-$(nproc)}"
DEVICE="${DEVICE:-auto}"
NUM_SHARDS="${NUM_SHARDS:-${SLURM_ARRAY_TASK_COUNT:-1}}"
SHARD_INDEX="${SHARD_INDEX:-${SLURM_ARRAY_TASK_ID:-0}}"
LAUNCH="${LAUNCH:-graft}"
mkdir -p "$OUT"

need_teacher() { [[ -n "${TEACHER:-}" ]] || { echo "set TEACHER to a CLIP checkpoint for the $1 stage" >&2; exit 2; }; }
split=(--num-shards "$NUM_SHARDS" --shard-index "$SHARD_INDEX")

stage_photos() {
  local where=(--bbox="$BBOX")
  [[ -n "${REGION:-}" ]] && where=(--region "$REGION")
  local source=()
  [[ -n "${YFCC:-}" ]] && source=(--yfcc "$YFCC")
  graft collect photos "${where[@]}" "${source[@]}" --start "$START" --end "$END" -o "$OUT/photos.parquet"
}
stage_download() { graft collect download --photos "$OUT/photos.parquet" -o "$OUT/download" --workers "$WORKERS" "${split[@]}"; }
stage_filter() {
  need_teacher filter
  graft pairs filter --photos "$OUT/download/photos.parquet" -o "$OUT/filtered.parquet" --teacher "$TEACHER" --device "$DEVICE"
}
stage_imagery() {
  local endpoint=()
  [[ -n "${STAC:-}" ]] && endpoint=(--endpoint "$STAC")
  graft collect imagery --photos "$OUT/filtered.parquet" -o "$OUT/scenes.json" --sensor "$SENSOR" "${endpoint[@]}"
}
stage_pairs() {
  graft pairs build --photos "$OUT/filtered.parquet" --catalog "$OUT/scenes.json" -o "$OUT/pairs" --sensor "$SENSOR" \
    --workers "$WORKERS" "${split[@]}"
}
stage_embed() { need_teacher embed; graft pairs embed "$OUT/pairs" --teacher "$TEACHER" --device "$DEVICE"; }
stage_train() {
  need_teacher train
  local resume=()
  compgen -G "$OUT/train/checkpoints/step-*" >/dev/null && resume=(--resume)  # a rerun continues the run
  $LAUNCH train "$PRESET" -o data.path="$OUT/pairs" -o teacher.name_or_path="$TEACHER" -o output_dir="$OUT/train" \
    "${resume[@]}"
}
stage_eval() {
  if [[ -z "${EVAL_DATA:-}" ]]; then echo "EVAL_DATA not set: skipping eval" >&2; return 0; fi
  graft eval --model "$OUT/train/model" --data "$EVAL_DATA" -o "$OUT/eval"
}

stages=("$@")
[[ ${#stages[@]} -eq 0 ]] && stages=(photos download filter imagery pairs embed train eval)
for stage in "${stages[@]}"; do
  case "$stage" in
    photos|download|filter|imagery|pairs|embed|train|eval) echo "== $stage" >&2; "stage_$stage" ;;
    *) echo "unknown stage '$stage' (photos download filter imagery pairs embed train eval)" >&2; exit 2 ;;
  esac
done
