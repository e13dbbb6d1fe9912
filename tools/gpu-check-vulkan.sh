#!/usr/bin/env bash
# One command on an NVIDIA machine (the lent GPU machine has no Vulkan loader, glslc or the build's other
# Debian packages): unpack the Vulkan debs, then run the Vulkan tests on the GPU and benchmark decode.
# Logs go to $OUT (the GPU machine's output folder) or ./build-gpu-check/logs.
#
# The binaries are built here, where the dependencies are, and carried (FKV_PREBUILT=dir holding
# fkv_vulkan_tests, fkv-bench, fkv-make-random-model; see docs/VULKAN.md). Without FKV_PREBUILT it builds
# in build-gpu-check (needs the build dependencies on that machine).
#
#   FKV_PREBUILT=build-vulkan-carry tools/gpu-check-vulkan.sh
#   FKV_SHAPES="llama3-8b:q4_0 llama3-8b:f16" FKV_DEPTHS=0,32768 ...   # what to benchmark
#   FKV_SKIP_BENCH=1 ... / FKV_SKIP_TESTS=1 ...                       # tests only / bench only
#   FKV_REPLAY_MODES="on off" FKV_FILL=synthetic FKV_REPS=2 ...        # decode replay on, then off (one
#                                                                     # bench per mode; default: on only;
#                                                                     # nofuse: on, FKV_VULKAN_FUSE=0)
#   FKV_BENCH_FOURIER=1 ...   # also --kv full vs fourier (FKV_BENCH_KVS="full fourier fourier:128", :N sets
#                             # --fourier-n) decode at depths 0..128K (FKV_BENCH_KV_DEPTHS), synthetic fill
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${OUT:-$PWD/build-gpu-check/logs}
mkdir -p "$LOGS"

if [[ -d .gl ]] && ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
if [[ -z "${VK_DRIVER_FILES:-}" && -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$LOGS/gpu.txt" 2>&1
vulkaninfo --summary >"$LOGS/vulkaninfo.txt" 2>&1
grep -E "deviceName|driverVersion|apiVersion" "$LOGS/vulkaninfo.txt" | head -6

if [[ -n "${FKV_PREBUILT:-}" ]]; then
  BIN=$FKV_PREBUILT
  TESTS=$BIN/fkv_vulkan_tests
  [[ -d $BIN/lib ]] && export LD_LIBRARY_PATH=$PWD/$BIN/lib:${LD_LIBRARY_PATH:-}
  # The tests find fixtures under the source folder they were built in (FKV_SOURCE_DIR) and stories260K in
  # ../shared/models beside it: recreate both paths when this checkout lives elsewhere.
  src=$(cat "$BIN/source_dir" 2>/dev/null)
  if [[ -n $src && ! -e $src ]]; then
    mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"
    # "$src/.." resolves through the link to this checkout's parent.
    mkdir -p "$PWD/../shared/models" && cp "$BIN/stories260K.bin" "$PWD/../shared/models/"
  fi
else
  BIN=build-gpu-check
  cmake -S . -B $BIN -G Ninja -DCMAKE_BUILD_TYPE=Release -DFKV_VULKAN=ON -DFKV_CUDA=OFF >"$LOGS/configure.log" 2>&1 ||
    { tail -30 "$LOGS/configure.log"; exit 1; }
  cmake --build $BIN -j"$(nproc)" --target fkv_vulkan_tests fkv-bench fkv-make-random-model >"$LOGS/build.log" 2>&1 ||
    { grep -E "error|FAILED" "$LOGS/build.log" | head -40; exit 1; }
  TESTS=$BIN/tests/fkv_vulkan_tests
fi

# The GPU machine has no validation layer; the tests that need the default model or ../shared are left out
# unless those files are present.
export FKV_VULKAN_VALIDATE=${FKV_VULKAN_VALIDATE:-0}
filter=${FKV_TEST_FILTER:-*}
[[ -f ${FKV_MODELS:-$HOME/.cache/fkv}/SmolLM2-135M-Instruct.Q4_1.gguf ]] || filter="$filter:-*SmolLM2*"
status=0
if [[ -z "${FKV_SKIP_TESTS:-}" ]]; then
timeout 300 "$TESTS" --gtest_filter="$filter" >"$LOGS/vulkan_tests.log" 2>&1
status=$?
grep -E "^\[  (FAILED|PASSED) |Failure|parity" "$LOGS/vulkan_tests.log" | head -40
fi

if [[ -z "${FKV_SKIP_BENCH:-}" ]]; then
  [[ -z "${FKV_SKIP_OPS_BENCH:-}" ]] && timeout 180 "$TESTS" --gtest_also_run_disabled_tests --gtest_filter='*DISABLED_Bench*' >"$LOGS/bench_ops.log" 2>&1
  grep -E "^BENCH|Failure" "$LOGS/bench_ops.log" 2>/dev/null
  # Host time of a small model's decode step with the replay off and on (a few seconds).
  timeout 60 "$TESTS" --gtest_also_run_disabled_tests --gtest_filter='*DISABLED_BenchReplayHostTime*' \
    >"$LOGS/bench_replay_host.log" 2>&1
  grep -E "^BENCH|Failure" "$LOGS/bench_replay_host.log"
  depths=${FKV_DEPTHS:-0,32768} n_prompt=${FKV_N_PROMPT:-256} n_gen=${FKV_N_GEN:-64}
  max_depth=$(tr , '\n' <<<"$depths" | sort -n | tail -1)
  ctx=$((max_depth + n_prompt + n_gen))
  for shape_type in ${FKV_SHAPES:-llama3-8b:q4_0 llama3-8b:f16}; do
    shape=${shape_type%%:*} type=${shape_type##*:}
    model=/tmp/fkv-$shape-$type.gguf
    [[ -f $model ]] || "$BIN/fkv-make-random-model" --shape "$shape" --type "$type" "$model" >"$LOGS/make_$shape-$type.log" 2>&1
    for mode in ${FKV_REPLAY_MODES:-on}; do
      # FKV_VULKAN_REPLAY: a decode step recorded once and replayed (on), or recorded every token (off);
      # nofuse: replayed, without the fused add + norm and RoPE + K store (FKV_VULKAN_FUSE=0).
      log=$LOGS/bench_$shape-$type-replay-$mode.log
      FKV_VULKAN_FUSE=$([[ $mode == nofuse ]] && echo 0 || echo 1) \
      FKV_VULKAN_REPLAY=$([[ $mode == off ]] && echo 0 || echo 1) timeout "${FKV_BENCH_TIMEOUT:-240}" \
        "$BIN/fkv-bench" --model "$model" --backend vulkan --n-prompt "$n_prompt" --n-gen "$n_gen" \
        --depth "$depths" --reps "${FKV_REPS:-1}" --ctx "$ctx" --fill "${FKV_FILL:-prefill}" \
        >"$log" 2>&1 || echo "bench $shape $type replay $mode failed or timed out"
      echo "== $shape $type, replay $mode (${SECONDS}s since the start)"
      tail -5 "$log"
    done
    rm -f "$model"
  done
fi
# Split KV cache decode speed against the full cache (issue 6): one session per policy at ctx 131072, its
# context filled with synthetic K/V (stored through the policy: appends, fits and refits run, no forward pass).
if [[ -n "${FKV_BENCH_FOURIER:-}" ]]; then
  f=/tmp/fkv-llama3-8b-${FKV_BENCH_FOURIER_TYPE:-f16}.gguf
  [[ -f $f ]] || "$BIN/fkv-make-random-model" --shape llama3-8b --type "${FKV_BENCH_FOURIER_TYPE:-f16}" "$f" >"$LOGS/make_fourier.log" 2>&1
  # fourier:N is the fourier policy with --fourier-n N (decode cost grows with N: docs/VULKAN.md).
  for spec in ${FKV_BENCH_KVS:-full fourier fourier:128}; do
    kv=${spec%%:*} extra=""
    [[ $spec == *:* ]] && extra="--fourier-n ${spec##*:}"
    echo "== fkv-bench vulkan llama3-8b ${FKV_BENCH_FOURIER_TYPE:-f16} --kv $kv $extra ${FKV_BENCH_FOURIER_ARGS:-}" | tee -a "$LOGS/bench_kv.log"
    timeout "${FKV_BENCH_KV_TIMEOUT:-180}" "$BIN/fkv-bench" --model "$f" --backend vulkan --kv $kv $extra --ctx 131072 \
      --depth "${FKV_BENCH_KV_DEPTHS:-0,8192,32768,130816}" --fill synthetic -p "${FKV_BENCH_KV_PROMPT:-128}" -n 64 -r 1 \
      ${FKV_BENCH_FOURIER_ARGS:-} >>"$LOGS/bench_kv.log" 2>&1 || echo "fkv-bench --kv $kv failed or timed out (see bench_kv.log)"
  done
  rm -f "$f"
  grep -vE "^\s*$" "$LOGS/bench_kv.log" | tail -40
fi
echo "vulkan tests: $([[ $status == 0 ]] && echo passed || echo FAILED)"
exit $status
