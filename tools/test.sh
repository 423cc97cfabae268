#!/usr/bin/env bash
# The test command (README, and what .ci/run calls): sets up the venv once, then runs every test,
# including the real ComfyUI server tests and the headless-Chromium UI test. Extra arguments go
# to pytest, e.g. `bash tools/test.sh tests/test_zoo.py -x`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ve_env
cd "$ve_root"
exec "$VE_VENV/bin/python" -m pytest -q -p no:cacheprovider "${@:-tests}"
