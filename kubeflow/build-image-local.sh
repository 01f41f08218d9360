#!/usr/bin/env bash
# Builds kubeflow/Dockerfile on a machine with neither a Docker engine nor Docker Hub:
# buildah (a Debian package) instead of docker, and a Debian 13 base made with
# debootstrap (minbase, which is what debian:trixie-slim is made of) instead of the
# public base image.
#
# Beam's SDK harness launcher only comes from Docker Hub (apache/beam_python3.13_sdk),
# so /opt/apache/beam/boot is a stub here that exits 1: the image runs every step of
# the compiled pipeline, but cannot be a Beam worker image for Dataflow, Flink or
# Spark. Build the image you push with `docker build` (docs/kubeflow.md).
#
# Usage: kubeflow/build-image-local.sh [TAG]     (default localhost/mnist-tfx:dev)
# Environment: TENSORFLOW_EXTRAS=and-cuda for the Trainer's GPU image.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tag="${1:-localhost/mnist-tfx:dev}"
base=localhost/debian:trixie-debootstrap
stub=localhost/beam-sdk-stub:local
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log() { printf '[build-image] %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "needs root (debootstrap, buildah)"; exit 1; }
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || {
    log "installing $tool from the machine's apt sources"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
  }
done

if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  src=/etc/apt/sources.list.d/debian.sources
  mirror="$(awk '/^URIs:/ {print $2; exit}' "$src" 2>/dev/null || true)"
  [ -n "$mirror" ] || { log "cannot read a Debian mirror from $src"; exit 1; }
  mirror="${mirror%-security}"
  log "debootstrap trixie (minbase) from $mirror"
  debootstrap --variant=minbase trixie "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
  ctr="$(buildah from scratch)"
  buildah add "$ctr" "$work/rootfs.tar" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  buildah commit -q --rm "$ctr" "$base" >/dev/null
fi

if ! buildah inspect --type image "$stub" >/dev/null 2>&1; then
  mkdir -p "$work/stub/opt/apache/beam"
  printf '#!/bin/sh\necho "stub: no Beam SDK harness in this local build" >&2\nexit 1\n' \
    > "$work/stub/opt/apache/beam/boot"
  chmod +x "$work/stub/opt/apache/beam/boot"
  ctr="$(buildah from scratch)"
  buildah add "$ctr" "$work/stub/" / >/dev/null
  buildah commit -q --rm "$ctr" "$stub" >/dev/null
fi

# The machine's CA bundle reaches pip as the build secret the Dockerfile reads.
ca="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
log "building $tag from kubeflow/Dockerfile (a few minutes: pip installs the stack)"
buildah bud --isolation chroot \
  -f "$repo/kubeflow/Dockerfile" --ignorefile "$repo/kubeflow/Dockerfile.dockerignore" \
  --secret "id=ca_bundle,src=$ca" \
  --build-arg BASE_IMAGE="$base" --build-arg BEAM_SDK_IMAGE="$stub" \
  --build-arg TENSORFLOW_EXTRAS="${TENSORFLOW_EXTRAS:-}" \
  -t "$tag" "$repo"
log "built $tag; look inside with: buildah run --isolation chroot \$(buildah from $tag) -- pip freeze"
