#!/usr/bin/env bash
# Builds BASE_IMAGE, a local stand-in for python:3.11-slim-bookworm made from Debian packages only
# (for hosts that reach Debian's mirrors but no container registry): debootstrap bookworm with
# python3, python3-venv, python-is-python3 and ca-certificates, committed with buildah.
# Cached: does nothing when BASE_IMAGE already exists.
set -euo pipefail
BASE_IMAGE=${BASE_IMAGE:-localhost/recserve-base:bookworm}

if buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "image-base: $BASE_IMAGE already built"
  exit 0
fi
# The mirror apt already uses (it is reachable from here), unless DEBIAN_MIRROR says otherwise.
mirror=${DEBIAN_MIRROR:-$(apt-cache policy | awk '$2 ~ /^https?:/ && $3 ~ /^bookworm\/main/ {print $2; exit}')}
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d /var/tmp/recserve-base.XXXXXX)
ctr=""
cleanup() {
  [ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "image-base: debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
  bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log"; exit 1; }
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*

ctr=$(buildah from scratch)
cp -a "$work/rootfs/." "$(buildah mount "$ctr")/"
buildah umount "$ctr" >/dev/null
# The same PATH and LANG as the python:3.11-slim images.
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 --cmd python3 "$ctr"
buildah commit --rm -q "$ctr" "$BASE_IMAGE" >/dev/null
ctr=""
echo "image-base: built $BASE_IMAGE"
