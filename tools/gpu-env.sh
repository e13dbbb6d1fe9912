# Sourced from the repository root by the scripts that run on the lent NVIDIA machine (gpu-bench-table.sh,
# gpu-ab.sh). Sets BIN (the carried binaries: FKV_PREBUILT, default build), LOGS ($OUT, else
# build-gpu-check/logs) and MODELS (FKV_MODEL_DIR, default /tmp/fkv-8b), and makes the last two. That machine
# has no Vulkan loader, so the Debian packages carried in FKV_DEBS (default .gl; fetched here by
# ../shared/scripts/fetch-vulkan-debs.sh) are unpacked once; the NVIDIA ICD is chosen when none is set, and
# validation is off (timings).
BIN=${FKV_PREBUILT:-build}
LOGS=${OUT:-$PWD/build-gpu-check/logs}
MODELS=${FKV_MODEL_DIR:-/tmp/fkv-8b}
mkdir -p "$LOGS" "$MODELS"
if [[ -d ${FKV_DEBS:-.gl} ]] && ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in "${FKV_DEBS:-.gl}"/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
if [[ -z ${VK_DRIVER_FILES:-} && -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export FKV_VULKAN_VALIDATE=0
