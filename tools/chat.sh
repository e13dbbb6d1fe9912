#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, fetches the default model and starts a chat.
# Arguments go to fkv-chat (e.g. --prompt "..." --n-predict 32, --backend cpu).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/tools/install-deps.sh"
FKV_BUILD="${FKV_BUILD:-$root/build}" bash "$root/tools/build.sh" >&2
model=$(bash "$root/tools/fetch-default-model.sh")
args=("$@")
has_model=0
for a in "${args[@]}"; do [[ "$a" == --model || "$a" == -m || "$a" == --model=* ]] && has_model=1; done
[ $has_model -eq 1 ] || args=(--model "$model" "${args[@]}")
exec "${FKV_BUILD:-$root/build}/fkv-chat" "${args[@]}"
