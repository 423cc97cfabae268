#!/usr/bin/env bash
# First run on a fresh machine: set up the venv once, make a sample clip (with audio) and
# interpolate it x2 with the built-in method (no download beyond PyPI).
#   bash tools/demo.sh [--comfyui] [demo options, see: python -m engine.cli demo --help]
# --comfyui also starts a local ComfyUI with this pack and its example workflows and prints the URL.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
comfy=0
args=()
for a in "$@"; do
  if [ "$a" = "--comfyui" ]; then comfy=1; else args+=("$a"); fi
done
ve_env
cd "$ve_root"
"$VE_VENV/bin/python" -m engine.cli demo "${args[@]}"
if [ "$comfy" = 1 ]; then
  bash "$ve_root/tools/comfyui.sh" up
  ve_log "open the URL above; the examples are under Templates (video-engine). Stop it with: bash tools/comfyui.sh stop"
fi
