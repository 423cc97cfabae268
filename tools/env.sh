#!/usr/bin/env bash
# Creates (once) the project's virtualenv with pinned torch and the runtime + test requirements.
# Sourced by tools/test.sh and tools/demo.sh; prints the venv's python path on stdout when run.
# VE_VENV overrides the location (default: .venv in the repo).
set -euo pipefail
ve_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VE_VENV=${VE_VENV:-$ve_root/.venv}
VE_PYTHON_BIN=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
ve_log() { printf 'video-engine: %s\n' "$*" >&2; }

ve_env() {
  local want stamp
  want=$(cat "$ve_root/requirements.txt" "$ve_root/requirements-dev.txt" "$ve_root/requirements-ray.txt" <(echo "$TORCH_SPEC") | sha256sum | cut -c1-16)
  stamp=$VE_VENV/.ve_stamp
  if [ -x "$VE_VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  [ -x "$VE_VENV/bin/python" ] || { ve_log "creating virtualenv $VE_VENV"; "$VE_PYTHON_BIN" -m venv "$VE_VENV"; }
  ve_log "installing $TORCH_SPEC and requirements (first time only)"
  "$VE_VENV/bin/python" -m pip install -q --disable-pip-version-check "$TORCH_SPEC"
  "$VE_VENV/bin/python" -m pip install -q --disable-pip-version-check -c <(echo "$TORCH_SPEC") \
    -r "$ve_root/requirements.txt" -r "$ve_root/requirements-dev.txt"
  echo "$want" >"$stamp"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  ve_env
  echo "$VE_VENV/bin/python"
fi
