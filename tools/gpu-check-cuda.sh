#!/usr/bin/env bash
# One command on an NVIDIA machine: configure and build the CUDA backend and its tests, run the cuda tests,
# then the benchmarks (decode matvec bandwidth, 8B-shape decode step with and without the CUDA graph,
# attention at 32K, prefill GEMM). Logs go to $OUT (the lent GPU machine's output folder) or
# ./build-gpu-check/logs.
#
#   tools/gpu-check-cuda.sh                 # build here (arch from FKV_CUDA_ARCH, default 90), test, bench
#   FKV_PREBUILT=dir tools/gpu-check-cuda.sh  # use dir/fkv_cuda_tests built elsewhere (no toolchain deps here)
#   FKV_SKIP_BENCH=1 ...                    # tests only
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${OUT:-$PWD/build-gpu-check/logs}
mkdir -p "$LOGS"
export PATH=$PATH:/usr/local/cuda/bin

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv >"$LOGS/gpu.txt" 2>&1
cat "$LOGS/gpu.txt"

if [[ -n "${FKV_PREBUILT:-}" ]]; then
  TESTS=$FKV_PREBUILT/fkv_cuda_tests
else
  BUILD=${FKV_BUILD_DIR:-build-gpu-check}
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFKV_CUDA=ON -DFKV_VULKAN=OFF \
    -DCMAKE_CUDA_ARCHITECTURES="${FKV_CUDA_ARCH:-90}" >"$LOGS/configure.log" 2>&1 ||
    { tail -30 "$LOGS/configure.log"; exit 1; }
  cmake --build "$BUILD" -j"$(nproc)" --target fkv_cuda_tests >"$LOGS/build.log" 2>&1 ||
    { grep -E "error|FAILED" "$LOGS/build.log" | head -40; exit 1; }
  TESTS=$BUILD/tests/fkv_cuda_tests
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
fi
echo "cuda tests: $([[ $status == 0 ]] && echo passed || echo FAILED)"
exit $status
