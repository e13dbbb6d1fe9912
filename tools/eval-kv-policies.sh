#!/usr/bin/env bash
# The quality grid of docs/ACCURACY.md in one command: calibrate a Fourier profile, then perplexity and passkey
# for the full cache, a window cache of the fourier cache's bytes and the fourier cache, at each length.
# Results: one JSON line per run in $OUT/kv-eval.jsonl (or ./kv-eval/), a markdown table in kv-eval.md.
#
#   tools/eval-kv-policies.sh [--backend cpu|vulkan|cuda] [--lengths 2048,4096,8192] [--bin DIR]
#
# Environment: FKV_MODEL (default: the default model), FKV_SINK (4), FKV_WINDOW (256), FKV_FOURIER_N (128),
# FKV_NORM (lsq), FKV_DEPTHS (0.1,0.3,0.5,0.7,0.9), FKV_PROFILE (a profile to use instead of calibrating on
# 4096 tokens of the essays), FKV_EXTRA_RUNS=1 adds the heuristic profile, the range normalisation and N /
# ratio sweeps at the longest length.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=cpu lengths=2048,4096,8192 bin=build
while [[ $# -gt 0 ]]; do
  case $1 in
    --backend) backend=$2; shift 2 ;;
    --lengths) lengths=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "eval-kv-policies: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
out=${OUT:-$PWD/kv-eval}
mkdir -p "$out"
data=${FKV_DATA:-../shared/data}
essays=$data/PaulGrahamEssays.json wiki=$data/wikitext-2-raw-test.txt
for f in "$essays" "$wiki" "$bin/fkv-kv-eval" "$bin/fkv-calibrate"; do
  [[ -e $f ]] || { echo "eval-kv-policies: missing $f" >&2; exit 2; }
done
model=()
[[ -n ${FKV_MODEL:-} ]] && model=(--model "$FKV_MODEL")
S=${FKV_SINK:-4} W=${FKV_WINDOW:-256} N=${FKV_FOURIER_N:-128} norm=${FKV_NORM:-lsq}
depths=${FKV_DEPTHS:-0.1,0.3,0.5,0.7,0.9}
common=("${model[@]}" --backend "$backend" --sink "$S" --window "$W" --fourier-n "$N")
profile=${FKV_PROFILE:-$out/profile-s$S-w$W-n$N-$norm.json}
log=$out/kv-eval.jsonl

step() { echo "[$(date +%H:%M:%S)] $*" >&2; }
if [[ ! -s $profile ]]; then
  step "calibrating $profile"
  "$bin/fkv-calibrate" "${common[@]}" --text "$essays" --ctx 4096 --fourier-norm "$norm" --out "$profile" \
    >"$out/calibrate.txt"
fi
kv_eval() {  # task, policy args...
  local task=$1
  shift
  step "$task $*"
  "$bin/fkv-kv-eval" "$task" "${common[@]}" --lengths "$lengths" --depths "$depths" "$@" \
    --text "$([[ $task == passkey ]] && echo "$essays" || echo "$wiki")" >>"$log"
}
fourier=(--kv fourier --fourier-profile "$profile" --fourier-norm "$norm")
for task in perplexity passkey; do
  kv_eval $task --kv full
  kv_eval $task --kv window --match-window "${fourier[@]:2}"
  kv_eval $task "${fourier[@]}"
done
if [[ -n ${FKV_EXTRA_RUNS:-} ]]; then
  longest=${lengths##*,}
  lengths=$longest
  kv_eval perplexity --kv fourier --fourier-norm "$norm"  # heuristic profile
  kv_eval perplexity --kv fourier --fourier-norm range --fourier-profile "$profile"
  kv_eval perplexity "${fourier[@]}" --fourier-ratio 0.5
  for n in 64 256; do
    common=("${model[@]}" --backend "$backend" --sink "$S" --window "$W" --fourier-n $n)
    kv_eval perplexity "${fourier[@]}"
  done
fi
python3 tools/eval/kv_eval_table.py "$log" >"$out/kv-eval.md"
cat "$out/kv-eval.md"
