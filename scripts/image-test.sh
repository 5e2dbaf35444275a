#!/usr/bin/env bash
# `make image-test`: builds a Debian base (cached) and the image with buildah, then runs
# tests/image against the image's root filesystem: every command the chart runs, as the image's
# user, on a read-only root. Needs root (apt-get, mounts); no Docker engine or registry.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
BASE_IMAGE=${BASE_IMAGE:-localhost/recserve-base:bookworm}
IMAGE=${IMAGE:-localhost/recserve:test}

need_apt=()
command -v buildah >/dev/null || need_apt+=(buildah)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
if ((${#need_apt[@]})); then
  echo "image-test: installing ${need_apt[*]} via apt"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
fi

BASE_IMAGE=$BASE_IMAGE ./scripts/image-base.sh
IMAGE=$IMAGE PYTHON_IMAGE=$BASE_IMAGE PIP="$VENV/bin/pip" ./scripts/image-build.sh

work=$(mktemp -d)
ctr=$(buildah from --pull=never "$IMAGE")
trap 'buildah rm "$ctr" >/dev/null; rm -rf "$work"' EXIT
buildah inspect --type image "$IMAGE" >"$work/image.json"
# A private mount namespace: the test's read-only, tmpfs and proc mounts end with it.
RECSERVE_IMAGE_ROOTFS=$(buildah mount "$ctr") RECSERVE_IMAGE_INSPECT="$work/image.json" \
  RECSERVE_HOST_MOUNT_NS=$(readlink /proc/self/ns/mnt) \
  unshare --mount --propagation private "$VENV/bin/pytest" -q tests/image "$@"
