#!/usr/bin/env bash
# Creates (or reuses) the project's Python venv for its side tools (golden-logit checks, fixtures) at
# ${FKV_VENV:-<repo>/.venv} with the packages pinned in tools/golden/requirements-ci.txt, and prints the venv's
# python path on stdout. Idempotent and quiet: a venv whose recorded requirements hash matches is left alone.
# Needs python3 >= 3.10 with venv and ensurepip (Debian: apt-get install -y python3-venv python3-pip; done here
# when run as root).
#   py=$(tools/python-env.sh) && "$py" tools/golden/check_numpy_reference.py
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="${FKV_VENV:-$repo/.venv}"
req="$repo/tools/golden/requirements-ci.txt"
python="${FKV_PYTHON:-python3}"
say() { echo "python-env: $*" >&2; }

command -v "$python" >/dev/null 2>&1 || { say "$python not found (Debian: apt-get install -y python3 python3-venv python3-pip)"; exit 1; }
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { say "$python is older than 3.10"; exit 1; }

stamp="$venv/.fkv-requirements"
want="$(sha256sum "$req" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c 'import numpy, gguf' 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi

if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv" 2>/dev/null)" ]; then
  say "$venv exists and is not a venv; not touching it (set FKV_VENV elsewhere)"
  exit 1
fi

if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing python3-venv python3-pip with apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip; } >&2
  else
    say "python venv support is missing; install it with: sudo apt-get install -y python3-venv python3-pip"
    exit 1
  fi
fi

[ -d "$venv" ] && say "recreating $venv (requirements or python changed)" || say "creating $venv"
rm -rf "$venv"
"$python" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req" >&2
echo "$want" >"$stamp"
echo "$venv/bin/python"
