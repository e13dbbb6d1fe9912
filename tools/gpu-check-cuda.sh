#!/usr/bin/env bash
# One command on an NVIDIA machine: configure and build the CUDA backend and its tests, run the cuda tests,
# then the benchmarks (decode matvec bandwidth, 8B-shape decode step with and without the CUDA graph,
# attention at 32K, prefill GEMM). Logs go to $OUT (the lent GPU machine's output folder) or
# ./build-gpu-check/logs.
#
#   tools/gpu-check-cuda.sh                 # build here (arch from FKV_CUDA_ARCH, default 90), test, bench
#   FKV_PREBUILT=dir tools/gpu-check-cuda.sh  # use dir/fkv_cuda_tests built elsewhere (no toolchain deps here)
#   FKV_SKIP_BENCH=1 ...                    # tests only
#   FKV_E2E=0 ...                           # skip fkv-parity cpu vs cuda on a random small model
#   FKV_BENCH_8B=1 ...                      # also fkv-bench on random Llama-3-8B-shape models (F16, Q4_0;
#                                           # depths 0 and 32K; needs ~25 GB of disk and several minutes)
#   FKV_BENCH_FOURIER=1 ...                 # also fkv-bench --kv full/fourier/window (FKV_BENCH_KVS) on a
#                                           # random 8B-shape F16 model at depths 0, 8K, 32K and ~128K
#                                           # (--fill synthetic; 16 GB of disk)
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${OUT:-$PWD/build-gpu-check/logs}
mkdir -p "$LOGS"
export PATH=$PATH:/usr/local/cuda/bin

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv >"$LOGS/gpu.txt" 2>&1
cat "$LOGS/gpu.txt"

if [[ -n "${FKV_PREBUILT:-}" ]]; then
  TESTS=$FKV_PREBUILT/fkv_cuda_tests
  TOOLS=$FKV_PREBUILT
else
  BUILD=${FKV_BUILD_DIR:-build-gpu-check}
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFKV_CUDA=ON -DFKV_VULKAN=OFF \
    -DCMAKE_CUDA_ARCHITECTURES="${FKV_CUDA_ARCH:-90}" >"$LOGS/configure.log" 2>&1 ||
    { tail -30 "$LOGS/configure.log"; exit 1; }
  cmake --build "$BUILD" -j"$(nproc)" --target fkv_cuda_tests fkv-bench fkv-parity fkv-make-random-model \
    >"$LOGS/build.log" 2>&1 || { grep -E "error|FAILED" "$LOGS/build.log" | head -40; exit 1; }
  TESTS=$BUILD/tests/fkv_cuda_tests
  TOOLS=$BUILD
fi

# Each test runs alone under a time limit, so that a hang names its test and the rest still run.
status=0
: >"$LOGS/cuda_tests.log"
tests=$("$TESTS" --gtest_list_tests | awk '/^[^ ]/ {suite=$1} /^  / && $1 !~ /^DISABLED_/ {print suite $1}')
for t in $tests; do
  timeout "${FKV_TEST_TIMEOUT:-90}" "$TESTS" --gtest_filter="$t" >"$LOGS/one_test.log" 2>&1
  rc=$?
  cat "$LOGS/one_test.log" >>"$LOGS/cuda_tests.log"
  if [[ $rc == 0 ]]; then
    result=$(grep -q "SKIPPED \]" "$LOGS/one_test.log" && echo skipped || echo ok)
  else
    status=1
    result=$([[ $rc == 124 ]] && echo TIMEOUT || echo "FAILED rc=$rc")
  fi
  echo "test $t: $result"
  [[ $rc != 0 ]] && grep -E -A4 "Failure|what\(\)|error" "$LOGS/one_test.log" | head -20
done
rm -f "$LOGS/one_test.log"

if [[ -z "${FKV_SKIP_BENCH:-}" ]]; then
  run_bench() {  # label, filter, env...
    local label=$1 filter=$2
    shift 2
    env "$@" timeout "${FKV_BENCH_TIMEOUT:-120}" "$TESTS" --gtest_also_run_disabled_tests --gtest_filter="$filter" \
      >"$LOGS/bench_$label.log" 2>&1 || echo "bench $label failed or timed out (see bench_$label.log)"
    grep -E "^BENCH|Failure" "$LOGS/bench_$label.log"
  }
  run_bench decode_graph 'Bench.DISABLED_Decode8B'
  run_bench decode_eager 'Bench.DISABLED_Decode8B' FKV_CUDA_GRAPH=0
  run_bench attention_gemm 'Bench.DISABLED_Attention32K:Bench.DISABLED_PrefillGemm'
  run_bench matvec 'Bench.DISABLED_MatvecBandwidth'
  run_bench split_kv 'Bench.DISABLED_SplitAttention'
  run_bench split_kv_chirp 'Bench.DISABLED_SplitAttention' FKV_CUDA_CHIRP=1
fi
# End to end through the engine and the C API's tools (when they were built or carried).
models=${FKV_MODEL_DIR:-/tmp/fkv-gpu-check-models}
if [[ "${FKV_E2E:-1}" != 0 && -x "$TOOLS/fkv-parity" && -x "$TOOLS/fkv-make-random-model" ]]; then
  mkdir -p "$models"
  {
    "$TOOLS/fkv-make-random-model" --shape small --type q4_0 "$models/small-q4_0.gguf" &&
      for kv in full fourier window; do
        echo "== fkv-parity cpu,cuda small q4_0 --kv $kv"
        "$TOOLS/fkv-parity" --model "$models/small-q4_0.gguf" --backends cpu,cuda --kv $kv || echo "PARITY FAILED ($kv)"
      done
  } >"$LOGS/e2e.log" 2>&1
  grep -q "PARITY FAILED" "$LOGS/e2e.log" && status=1
  tail -20 "$LOGS/e2e.log"
fi
if [[ -n "${FKV_BENCH_8B:-}" && -x "$TOOLS/fkv-bench" ]]; then
  mkdir -p "$models"
  for type in f16 q4_0; do
    f=$models/llama3-8b-$type.gguf
    [[ -f $f ]] || "$TOOLS/fkv-make-random-model" --shape llama3-8b --type $type "$f" >>"$LOGS/fkv_bench.log" 2>&1
    echo "== fkv-bench llama3-8b $type" | tee -a "$LOGS/fkv_bench.log"
    "$TOOLS/fkv-bench" --model "$f" --backend cuda --ctx 33280 --depth 0,32768 -p 512 -n 64 -r 1 \
      >>"$LOGS/fkv_bench.log" 2>&1 || echo "fkv-bench $type failed"
    rm -f "$f"  # disk: the 8B F16 file alone is 16 GB
  done
  grep -vE "^\s*$" "$LOGS/fkv_bench.log" | tail -20
fi
# Split KV cache decode speed against the full cache (issue 7): one session per policy at ctx 131072, its
# context filled with synthetic K/V (stored through the policy: appends, fits and refits run, no forward pass).
if [[ -n "${FKV_BENCH_FOURIER:-}" && -x "$TOOLS/fkv-bench" ]]; then
  mkdir -p "$models"
  f=$models/llama3-8b-f16.gguf
  [[ -f $f ]] || "$TOOLS/fkv-make-random-model" --shape llama3-8b --type f16 "$f" >>"$LOGS/fkv_bench_kv.log" 2>&1
  # fourier-chirp: --kv fourier with the opt-in chirp-z decode path (FKV_CUDA_CHIRP=1).
  for kv in ${FKV_BENCH_KVS:-full fourier fourier-chirp window}; do
    echo "== fkv-bench llama3-8b f16 --kv $kv" | tee -a "$LOGS/fkv_bench_kv.log"
    chirp=0
    [[ $kv == fourier-chirp ]] && chirp=1
    FKV_CUDA_CHIRP=$chirp timeout "${FKV_BENCH_KV_TIMEOUT:-900}" "$TOOLS/fkv-bench" --model "$f" --backend cuda \
      --kv "${kv%-chirp}" --ctx 131072 --depth 0,8192,32768,130816 --fill synthetic -p 128 -n 64 -r 1 \
      >>"$LOGS/fkv_bench_kv.log" 2>&1 || echo "fkv-bench --kv $kv failed or timed out (see fkv_bench_kv.log)"
  done
  rm -f "$f"
  grep -vE "^\s*$" "$LOGS/fkv_bench_kv.log" | tail -40
fi
echo "cuda tests: $([[ $status == 0 ]] && echo passed || echo FAILED)"
exit $status
