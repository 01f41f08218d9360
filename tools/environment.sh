#!/usr/bin/env bash
# Builds (once) and enters the Python environment that runs this project.
#
# TFX 1.21 ships native wheels (ml-metadata, TFDV) built for glibc >= 2.39. On a host
# that has it, and a Python 3.10-3.13, a plain virtualenv is enough. On an older host
# (Debian 12 has glibc 2.36) we build a Debian 13 root filesystem with debootstrap and
# run every command inside it with chroot, in a private mount namespace so that no
# bind mount outlives the command.
#
# The environment is cached outside the clone, keyed on the pinned requirements and on
# this recipe, so a fresh clone on the same machine reuses it.
#
# Usage: tools/environment.sh exec COMMAND [ARGS...]   run COMMAND inside the environment
#        tools/environment.sh ensure                   only build it
#        tools/environment.sh info                     print mode and location
set -euo pipefail

RECIPE_VERSION=1
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${MNIST_TFX_ENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mnist-tfx}"
HOST_CA_BUNDLE="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
SUITE=trixie

log() { printf '[environment] %s\n' "$*" >&2; }

env_key() {
  { cat "$REPO/requirements.in" "$REPO/requirements-test.in" "$REPO/requirements.lock" \
      2>/dev/null || true
    echo "recipe=$RECIPE_VERSION"; } | sha256sum | cut -c1-16
}

host_qualifies() {
  # glibc >= 2.39 and python3 in 3.10..3.13
  local glibc py
  glibc="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')" || return 1
  py="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || return 1
  [ -n "$glibc" ] && [ -n "$py" ] || return 1
  printf '%s\n2.39\n' "$glibc" | sort -V -C -r 2>/dev/null || return 1
  case "$py" in 3.10|3.11|3.12|3.13) return 0 ;; *) return 1 ;; esac
}

MODE="${MNIST_TFX_ENV_MODE:-}"
if [ -z "$MODE" ]; then
  if host_qualifies; then MODE=venv; else MODE=chroot; fi
fi
KEY="$(env_key)"
if [ "$MODE" = venv ]; then
  ENV_DIR="$CACHE_ROOT/venv-$KEY"
  VENV="$ENV_DIR"
else
  ENV_DIR="$CACHE_ROOT/rootfs-$SUITE-$KEY"
  VENV=/opt/venv
fi
READY="$ENV_DIR/.mnist-tfx-ready"

# Requirement files of the development environment: the runtime dependencies and
# the `test` extra (pyproject.toml reads the same files), constrained by the lock.
REQUIREMENT_FILES=(requirements.in requirements-test.in)

pip_install_args() {
  local args=() file
  for file in "${REQUIREMENT_FILES[@]}"; do args+=(-r "$1/$file"); done
  [ -f "$1/requirements.lock" ] && args+=(-c "$1/requirements.lock")
  printf '%s\n' "${args[@]}"
}

debian_mirror() {
  local src=/etc/apt/sources.list.d/debian.sources mirror=""
  if [ -f "$src" ]; then
    mirror="$(awk '/^URIs:/ {print $2; exit}' "$src")"
  elif [ -f /etc/apt/sources.list ]; then
    mirror="$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)"
  fi
  [ -n "$mirror" ] || { log "cannot read a Debian mirror from the apt configuration"; exit 1; }
  # The -security archive is not a full mirror; use the main one.
  printf '%s\n' "${mirror%-security}"
}

# The JDK that `java` on the host's PATH belongs to (fails if there is none).
host_java_home() {
  local java
  java="$(command -v java 2>/dev/null)" || return 1
  java="$(readlink -f "$java")"
  dirname "$(dirname "$java")"
}

# Runs a command inside the root filesystem $1 with /proc, /dev, /sys, the repo,
# $HOME, /tmp and $PWD bind-mounted at the same paths (plus MNIST_TFX_BIND, a
# colon-separated list). The mounts live in a private namespace and vanish with it.
in_rootfs() {
  local root="$1"; shift
  local binds=("$REPO" "$HOME" /tmp "$PWD") java_env=()
  # The host's Java, for the Flink and Spark clusters (tools/engines.sh), at the
  # same path; Debian's JDK links part of its configuration from /etc/java-*.
  local java_home
  if java_home="$(host_java_home)"; then
    binds+=("$java_home" /etc/java-*)
    java_env=("JAVA_HOME=$java_home")
  fi
  [ -n "${MNIST_TFX_ENGINES:-}" ] && binds+=("$MNIST_TFX_ENGINES")
  if [ -n "${MNIST_TFX_BIND:-}" ]; then
    IFS=: read -r -a extra <<< "$MNIST_TFX_BIND"
    binds+=("${extra[@]}")
  fi
  # Variables of the project, TensorFlow and pytest pass through; the rest of the
  # host environment (pyenv, pip's host-only indexes) does not belong inside.
  local passenv=()
  mapfile -t passenv < <(env | grep -E '^(MNIST_TFX_|TF_CPP_|TF_ENABLE_ONEDNN_OPTS=|PYTEST_|PIP_INDEX_URL=|CI=|TERM=|COLUMNS=)' || true)
  unshare --mount --propagation private -- /bin/bash -s "$root" "${binds[@]}" -- "${passenv[@]}" "${java_env[@]}" -- "$@" <<'INNER'
set -euo pipefail
root="$1"; shift
binds=(); passenv=()
while [ "$1" != -- ]; do binds+=("$1"); shift; done
shift
while [ "$1" != -- ]; do passenv+=("$1"); shift; done
shift
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"
for b in "${binds[@]}"; do
  [ -d "$b" ] || continue
  mkdir -p "$root$b"
  mount --rbind "$b" "$root$b"
done
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
exec chroot "$root" /usr/bin/env -i \
  HOME="$HOME" PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
  "${passenv[@]}" PYTHONPATH="$MNIST_TFX_REPO" \
  SSL_CERT_FILE=/etc/ssl/host-ca-bundle.crt PIP_CERT=/etc/ssl/host-ca-bundle.crt \
  REQUESTS_CA_BUNDLE=/etc/ssl/host-ca-bundle.crt PIP_CONFIG_FILE=/dev/null \
  MNIST_TFX_IN_ENV=1 \
  /bin/bash -c 'cd "$0" && exec "$@"' "$MNIST_TFX_CWD" "$@"
INNER
}

# --- Populating an environment: the only part that needs the network. ----------
# Each takes the directory to fill; ensure() below owns locking, naming and clean-up.

populate_chroot() {
  local dir="$1" mirror
  [ "$(id -u)" = 0 ] || { log "building the Debian 13 environment needs root (debootstrap, chroot)"; exit 1; }
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap from the host's apt sources"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; } \
      > "$CACHE_ROOT/apt.log" 2>&1 || { log "installing debootstrap failed; see $CACHE_ROOT/apt.log"; exit 1; }
  fi
  mirror="$(debian_mirror)"
  log "debootstrap $SUITE from $mirror (about 1 min)"
  if ! debootstrap --variant=minbase \
      --include=python3,python3-venv,python3-dev,ca-certificates,g++ \
      "$SUITE" "$dir" "$mirror" > "$CACHE_ROOT/debootstrap.log" 2>&1; then
    log "debootstrap failed; see $CACHE_ROOT/debootstrap.log"; exit 1
  fi
  cp -L "$HOST_CA_BUNDLE" "$dir/etc/ssl/host-ca-bundle.crt"
  log "creating the virtualenv and installing the pinned requirements (about 1 min)"
  mapfile -t args < <(pip_install_args "$REPO")
  MNIST_TFX_CWD=/ in_rootfs "$dir" /bin/bash -c '
    set -e
    python3 -m venv /opt/venv
    /opt/venv/bin/pip install -q --upgrade pip
    /opt/venv/bin/pip install -q "$@"' pip "${args[@]}"
}

# What the venv path needs from the host, each named with the Debian package that
# provides it: venv and ensurepip, and a C++ compiler with Python's headers for
# pyfarmhash (a TFX dependency that ships no wheel).
venv_prerequisites() {
  local missing=()
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=("python3-venv")
  python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    >/dev/null 2>&1 || missing+=("python3-dev")
  command -v g++ >/dev/null 2>&1 || missing+=("g++")
  if [ "${#missing[@]}" -gt 0 ]; then
    log "cannot build the virtualenv: missing ${missing[*]} (Debian/Ubuntu: apt-get install ${missing[*]})"
    exit 1
  fi
}

populate_venv() {
  local dir="$1"
  venv_prerequisites
  log "creating a virtualenv with the pinned requirements in $dir"
  mapfile -t args < <(pip_install_args "$REPO")
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --upgrade pip
  "$dir/bin/pip" install -q "${args[@]}"
}

# --- The cache. ------------------------------------------------------------------

# Removes what interrupted builds left (directories without a ready stamp, *.partial)
# and keeps the two most recently used environments (about 4 GB each). Call it only
# holding the build lock: then no build is under way and nothing unstamped is in use.
# The bind mounts of a command running in an old environment live in that command's
# private mount namespace, so removing it from here never reaches through them.
prune_old() {
  local keep=2 dir _
  for dir in "$CACHE_ROOT"/rootfs-* "$CACHE_ROOT"/venv-*; do
    [ -d "$dir" ] && [ ! -f "$dir/.mnist-tfx-ready" ] || continue
    log "removing an unfinished environment: $dir"
    rm -rf --one-file-system "$dir"
  done
  find "$CACHE_ROOT" -mindepth 2 -maxdepth 2 -name .mnist-tfx-ready -printf '%T@ %h\n' \
    | sort -rn | tail -n +$((keep + 1)) | while read -r _ dir; do
      [ "$dir" != "$ENV_DIR" ] || continue
      log "removing an older environment: $dir"
      rm -rf --one-file-system "$dir"
    done
}

ensure() {
  if [ -f "$READY" ]; then
    touch "$READY" 2>/dev/null || true  # most recently used, for prune_old
    return 0
  fi
  # One builder at a time per machine; a second caller waits and then uses it.
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.build.lock"
  if ! flock -n 9; then
    log "another command is building the environment; waiting for it"
    flock 9
  fi
  if [ ! -f "$READY" ]; then
    build
    prune_old
  fi
  exec 9>&-
}

# Builds into a directory without a ready stamp, renames it into place (a rootfs;
# a virtualenv is not relocatable and is built in place) and stamps it last, so a
# build cut short anywhere leaves nothing that looks ready.
build() {
  local started=$SECONDS
  BUILDING="$ENV_DIR.partial"  # global: the EXIT trap reads it after we return
  [ "$MODE" = venv ] && BUILDING="$ENV_DIR"
  rm -rf --one-file-system "$ENV_DIR.partial" "$ENV_DIR"
  trap 'rm -rf --one-file-system "$BUILDING"' EXIT
  "populate_$MODE" "$BUILDING"
  [ "$BUILDING" = "$ENV_DIR" ] || mv "$BUILDING" "$ENV_DIR"
  trap - EXIT
  touch "$READY"
  log "environment ready in $((SECONDS - started)) s: $ENV_DIR"
}

main() {
  export MNIST_TFX_REPO="$REPO"
  export MNIST_TFX_CWD="$PWD"
  # On Linux TensorFlow computes with oneDNN's kernels by default only on CPUs with
  # VNNI (AVX512 or AVX), AVX512-BF16 or AMX (tensorflow/core/util/port.cc); elsewhere
  # it falls back to Eigen's, 3x slower for our training on an AVX2-only CPU
  # (models/trainer/recipe.md, "CPUs without AVX-512"). A user's own
  # TF_ENABLE_ONEDNN_OPTS=0 is kept.
  export TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-1}"
  case "${1:-}" in
    ensure) ensure ;;
    info) echo "mode=$MODE env=$ENV_DIR ready=$([ -f "$READY" ] && echo yes || echo no)" ;;
    exec)
      shift
      ensure
      if [ "$MODE" = venv ]; then
        PATH="$VENV/bin:$PATH" PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" \
          MNIST_TFX_IN_ENV=1 exec "$@"
      else
        in_rootfs "$ENV_DIR" "$@"
      fi
      ;;
    *) echo "usage: $0 {exec COMMAND...|ensure|info}" >&2; return 2 ;;
  esac
}

# Run as a command, not when sourced (the tests source it to replace populate_*).
# One line, read whole before it runs: editing this file while a command runs
# cannot change what the running shell reads next.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; exit "$?"; fi
