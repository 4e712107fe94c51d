# shellcheck shell=bash
# Set-up shared by scripts/up and scripts/test: installs what the project needs on a fresh
# Debian machine that has only the Rust toolchain. Every step is skipped when already done.

# The repository root.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"

log() { printf '==> %s\n' "$*" >&2; }

# Installs Debian packages that are missing (needs root, or sudo without a password).
ensure_apt() {
  local missing=()
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo)
    else
      log "missing Debian packages: ${missing[*]}; install them as root: apt-get install ${missing[*]}"
      return 1
    fi
  fi
  log "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# redis-server for the integration tests and the local stack. Tests start their own servers
# on free ports; the system service is not used.
ensure_redis() {
  command -v redis-server >/dev/null || ensure_apt redis-server
}

# A virtualenv in .venv with the pinned Python tools (validators, just).
ensure_venv() {
  local requirements="$ROOT/tools/requirements.txt"
  local stamp="$VENV/.requirements"
  if [ -x "$VENV/bin/python" ] && cmp -s "$requirements" "$stamp"; then
    return 0
  fi
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    ensure_apt python3-venv
  fi
  log "creating $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
}
