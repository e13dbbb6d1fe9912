#!/usr/bin/env bash
# The decode table of docs/PERFORMANCE.md in one call on an NVIDIA machine: fkv-bench, full vs fourier KV,
# on both GPU backends, on random Llama-3-8B-shape Q4_0 then F16 weights. Each result is appended to
# $OUT/summary.txt (or ./build-gpu-check/logs) as soon as it exists, and --profile / --profile-phases tables
# of the Vulkan decode are kept, so a call cut short still returns what it measured.
#
# Binaries are built where the dependencies are and carried (FKV_PREBUILT: a folder with fkv-bench and
# fkv-make-random-model); the Vulkan loader and the NVIDIA ICD's GL/X11 libraries come as Debian packages
# in FKV_DEBS (default .gl; ../shared/scripts/fetch-vulkan-debs.sh fetches them).
#
#   FKV_PREBUILT=build-gpu FKV_DEBS=.gl tools/gpu-bench-table.sh
#   FKV_GUARD=330 ...       # seconds after which remaining benches are skipped (default 500)
#   FKV_BACKENDS=cuda ...   # only these backends' rows (default "cuda vulkan")
set -u
cd "$(dirname "$0")/.."
source tools/gpu-env.sh
S=$LOGS/summary.txt
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> "$S" 2>&1

n=0
bench() {  # model backend kv depths [fkv-bench args...]
  local t=$1 b=$2 kv=$3 d=$4; shift 4
  [[ " ${FKV_BACKENDS:-cuda vulkan} " == *" $b "* ]] || return 0
  if (( SECONDS > ${FKV_GUARD:-500} )); then echo "skip $t $b $kv $d $* (time)" >> "$S"; return; fi
  local s=$SECONDS; n=$((n + 1))
  # A fourier prefill chunk rebuilds the whole middle (docs/VULKAN.md), so at 32K a 64-token prompt, timed
  # and warmed up, ran past the limit on Vulkan (58f2aed): fourier runs prefill 16 tokens.
  local p=64
  [[ $kv == fourier ]] && p=16
  timeout "${FKV_BENCH_TIMEOUT:-90}" "$BIN/fkv-bench" --model "$MODELS/$t.gguf" --backend "$b" --kv "$kv" \
    -p "$p" -n 32 -r 2 -d "$d" --fill synthetic "$@" > /tmp/fkv-bench.txt 2> /tmp/fkv-bench.err
  local rc=$?
  echo "== $t $b $kv $* rc=$rc $((SECONDS - s))s" >> "$S"
  grep -E "^ +[0-9]+ " /tmp/fkv-bench.txt >> "$S" || tail -c 300 /tmp/fkv-bench.err >> "$S"
  if grep -q "GPU profile" /tmp/fkv-bench.err; then cp /tmp/fkv-bench.err "$LOGS/profile_${t}_${b}_$n.txt"; fi
}
model() {  # type: made once, the other type's file removed first (disk)
  rm -f "$MODELS"/*.gguf
  "$BIN/fkv-make-random-model" --shape llama3-8b --type "$1" "$MODELS/$1.gguf" > /dev/null 2>&1
  echo "model $1 at ${SECONDS}s" >> "$S"
}

model q4_0
bench q4_0 cuda full 0,8192,32768,130816
bench q4_0 cuda fourier 0,8192,32768
bench q4_0 cuda fourier 32768 --window 256 --fourier-n 128
bench q4_0 vulkan full 0,8192,32768,130816
bench q4_0 vulkan full 0 --profile
bench q4_0 vulkan fourier 0,8192,32768
bench q4_0 vulkan fourier 32768 --window 256 --fourier-n 128
bench q4_0 vulkan fourier 32768 --window 256 --fourier-n 128 --profile-phases
model f16
bench f16 cuda full 0,8192,32768,130816
bench f16 vulkan full 0,8192,32768,130816
bench f16 cuda fourier 0,32768
bench f16 vulkan fourier 0,32768
bench f16 cuda fourier 32768 --window 256 --fourier-n 128
bench f16 vulkan fourier 32768 --window 256 --fourier-n 128
bench f16 vulkan full 0 --profile
bench f16 vulkan fourier 32768 --window 256 --fourier-n 128 --profile-phases
rm -f "$MODELS"/*.gguf
