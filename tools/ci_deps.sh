#!/usr/bin/env bash
# tools/ci_deps.sh - install the system packages the ComfyUI/browser tests need (Debian/Ubuntu).
#
#   chromium   headless browser for tests/browser (Playwright drives /usr/bin/chromium;
#              `playwright install` is never used)
#   curl       tools/comfyui.sh polls the server with it
#
# Idempotent and quiet: apt runs only when something is missing. Prints one line per package.
# Usage: tools/ci_deps.sh [--check]    (--check: report only, exit 1 if something is missing)
set -Eeuo pipefail

PROG=ci_deps.sh
say() { printf '[%s] %s\n' "$PROG" "$*"; }
die() { printf '[%s] error: %s\n' "$PROG" "$*" >&2; exit 1; }

CHECK=0
case "${1:-}" in
  --check) CHECK=1 ;;
  -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) die "unknown argument '$1' (see --help)" ;;
esac

# package -> command that proves it is there
declare -A PROVIDES=([chromium]=/usr/bin/chromium [curl]=curl)
ORDER=(chromium curl)

have() { command -v "$1" >/dev/null 2>&1; }
version_of() {
  case "$1" in
    chromium) /usr/bin/chromium --version 2>/dev/null | head -n1 ;;
    curl) curl --version 2>/dev/null | head -n1 | cut -d' ' -f1-2 ;;
  esac
}

missing=()
for pkg in "${ORDER[@]}"; do
  if have "${PROVIDES[$pkg]}"; then
    say "$pkg: already present ($(version_of "$pkg"))"
  else
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then say "nothing to install"; exit 0; fi
if [ "$CHECK" = 1 ]; then say "missing: ${missing[*]}"; exit 1; fi

have apt-get || die "missing ${missing[*]} and no apt-get here; install them with your system's package manager"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  have sudo || die "missing ${missing[*]}; need root (or sudo) to apt-get install them"
  SUDO=(sudo -n)
fi

say "installing: ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
t0=$SECONDS
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  die "apt-get install ${missing[*]} failed (output above)"
fi
for pkg in "${missing[@]}"; do
  have "${PROVIDES[$pkg]}" || die "$pkg installed but ${PROVIDES[$pkg]} is still missing"
  say "$pkg: installed ($(version_of "$pkg"))"
done
say "done in $((SECONDS - t0)) s"
