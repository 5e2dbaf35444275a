#!/usr/bin/env bash
# Builds the Dockerfile with buildah (no daemon): IMAGE from PYTHON_IMAGE (the Dockerfile's default
# when empty). pip inside the build gets this machine's index and CA bundle as build secrets
# (pip_conf, pip_ca), so they reach the build stage only and no image layer.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-localhost/recserve:test}
PYTHON_IMAGE=${PYTHON_IMAGE:-}
PIP=${PIP:-.venv/bin/pip}

secrets=$(mktemp -d)
trap 'rm -rf "$secrets"' EXIT
# A pip.conf for inside the build: the host's index only if it is a URL (file:// paths and
# find-links do not exist in the build), and its CA bundle as the mounted secret.
index=$("$PIP" config get global.index-url 2>/dev/null || true)
ca=${PIP_CERT:-$("$PIP" config get global.cert 2>/dev/null || true)}
ca=${ca:-/etc/ssl/certs/ca-certificates.crt}
{
  echo "[global]"
  [[ $index == http* ]] && echo "index-url = $index"
  echo "cert = /run/secrets/pip_ca"
} >"$secrets/pip.conf"

args=(--isolation chroot --layers --pull=false -f Dockerfile -t "$IMAGE"
  --secret "id=pip_conf,src=$secrets/pip.conf" --secret "id=pip_ca,src=$ca")
[ -z "$PYTHON_IMAGE" ] || args+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
buildah bud "${args[@]}" .
