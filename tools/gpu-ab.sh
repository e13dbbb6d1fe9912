#!/usr/bin/env bash
# An A/B of environment switches on the lent NVIDIA machine in one call: fkv-bench decode on random
# Llama-3-8B-shape weights, each variant in turn, round after round (the lent H100s differ by a few percent,
# so only variants of one call compare), then the phase profile of the fourier decode (--profile-phases)
# of the first variant. Results go to $OUT/ab.txt as they come, so a call cut short keeps what it measured.
#
# Binaries are built where the dependencies are and carried (FKV_PREBUILT: a folder with fkv-bench and
# fkv-make-random-model); the Vulkan loader and the NVIDIA ICD's libraries come as Debian packages in
# FKV_DEBS (default .gl; ../shared/scripts/fetch-vulkan-debs.sh fetches them).
#
#   FKV_PREBUILT=carry FKV_AB_VARIANTS="- FKV_VULKAN_MERGE_LANES=16" tools/gpu-ab.sh
#
#   FKV_AB_VARIANTS  variants, space-separated; each "-" (no switch) or VAR=VALUE[,VAR=VALUE...] (default "-");
#                    FKV_AB_BIN=DIR in a variant runs DIR's fkv-bench (a build of another commit, carried too)
#   FKV_AB_TYPES     weight types (default "q4_0 f16")
#   FKV_AB_ROUNDS    rounds over the variants (default 3)
#   FKV_AB_ARGS      fkv-bench's arguments after --model and --backend (default: fourier W 256 N 128 at 32K,
#                    16 prompt and 64 decoded tokens, 2 repetitions, synthetic fill)
#   FKV_AB_PHASES=0  no phase profile
#   FKV_AB_SHAPE     fkv-make-random-model's shape (default llama3-8b; "small" for a dry run on lavapipe)
#   FKV_GUARD        seconds after which the remaining runs are skipped (default 500)
set -u
cd "$(dirname "$0")/.."
source tools/gpu-env.sh
S=$LOGS/ab.txt
ARGS=${FKV_AB_ARGS:---kv fourier --window 256 --fourier-n 128 -p 16 -n 64 -r 2 -d 32768 --fill synthetic}
for b in fkv-bench fkv-make-random-model; do
  [[ -x $BIN/$b ]] || { echo "gpu-ab.sh: no $BIN/$b (set FKV_PREBUILT)" | tee -a "$S" >&2; exit 2; }
done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> "$S" 2>&1
echo "args: $ARGS" >> "$S"

# Runs fkv-bench with a variant's switches set; extra arguments follow ARGS.
run() {  # type variant [fkv-bench args...]
  local t=$1 v=$2; shift 2
  local envs=() bin=$BIN e
  [[ $v != - ]] && IFS=, read -r -a envs <<< "$v"
  for e in "${envs[@]}"; do [[ $e == FKV_AB_BIN=* ]] && bin=${e#FKV_AB_BIN=}; done
  # shellcheck disable=SC2086  # ARGS is a list of arguments
  env "${envs[@]}" timeout "${FKV_BENCH_TIMEOUT:-120}" "$bin/fkv-bench" --model "$MODELS/$t.gguf" \
    --backend vulkan $ARGS "$@" > /tmp/fkv-ab.txt 2> /tmp/fkv-ab.err
}

for t in ${FKV_AB_TYPES:-q4_0 f16}; do
  rm -f "$MODELS"/*.gguf
  "$BIN/fkv-make-random-model" --shape "${FKV_AB_SHAPE:-llama3-8b}" --type "$t" "$MODELS/$t.gguf" > /dev/null 2>&1
  echo "model $t at ${SECONDS}s" >> "$S"
  for ((r = 1; r <= ${FKV_AB_ROUNDS:-3}; r++)); do
    for v in ${FKV_AB_VARIANTS:--}; do
      if ((SECONDS > ${FKV_GUARD:-500})); then echo "skip $t $v round $r (time)" >> "$S"; continue; fi
      run "$t" "$v"
      rc=$?
      echo "$t $v round $r rc=$rc: $(grep -E '^ +[0-9]+ ' /tmp/fkv-ab.txt | tail -n 1)" >> "$S"
      ((rc == 0)) || tail -c 300 /tmp/fkv-ab.err >> "$S"
    done
  done
  if [[ ${FKV_AB_PHASES:-1} != 0 ]] && ((SECONDS <= ${FKV_GUARD:-500})); then
    first=${FKV_AB_VARIANTS:--}
    run "$t" "${first%% *}" --profile-phases
    rc=$?
    cp /tmp/fkv-ab.err "$LOGS/phases_$t.txt"
    echo "$t phase profile rc=$rc: phases_$t.txt" >> "$S"
  fi
done
rm -f "$MODELS"/*.gguf
