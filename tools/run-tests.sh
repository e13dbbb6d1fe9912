#!/usr/bin/env bash
# The README's second command: installs what is missing, builds and runs every test.
#  1. the Release build's tests (unit, model, vulkan on lavapipe or a GPU, cuda where a GPU is present);
#  2. the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer (hostile-file tests included);
#  3. the numpy reference recomputed and compared with the committed golden fixtures.
# Fails loudly on the first failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FKV_BUILD:-$root/build}"
jobs="${FKV_JOBS:-$(nproc)}"
step() { printf '\n== %s ==\n' "$*"; }

step "dependencies"
bash "$root/tools/install-deps.sh"
step "default model"
bash "$root/tools/fetch-default-model.sh"

step "build (Release)"
FKV_BUILD="$build" bash "$root/tools/build.sh"
step "tests (Release)"
# Validation layers on for the Vulkan tests: any validation message fails them.
FKV_VULKAN_VALIDATE=1 ctest --test-dir "$build" -j "$jobs" --output-on-failure --timeout 900

step "build (ASan + UBSan: unit tests, C API tests)"
asan="${build}-asan"
cmake -S "$root" -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFKV_SANITIZE=ON -DFKV_VULKAN=OFF \
  -DFKV_CUDA=OFF >/dev/null
cmake --build "$asan" -j "$jobs" --target fkv_unit_tests fkv_api_tests
step "tests (ASan + UBSan)"
# allocator_may_return_null: out-of-memory tests expect a failed allocation to come back as an error.
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
ctest --test-dir "$asan" -L unit -j "$jobs" --output-on-failure --timeout 900
# The C API's own tests (lifecycle, bad arguments, cancel, save/restore): no leaks, no aborts. The tool tests
# of the api label run in the Release step only; under ASan they take minutes.
ctest --test-dir "$asan" -L api -R '^CApi' -j "$jobs" --output-on-failure --timeout 900

if [ -f "$root/tools/golden/check_numpy_reference.py" ]; then
  step "numpy reference vs committed golden fixtures"
  py=$(bash "$root/tools/python-env.sh")
  "$py" "$root/tools/golden/check_numpy_reference.py"
fi
step "all tests passed"
