#!/usr/bin/env bash
# Idempotent setup on a fresh machine: system packages, venv, Python packages, default dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v promtool >/dev/null || need_apt+=(prometheus)
# h2load: the native load generator of the open-loop benchmark.
command -v h2load >/dev/null || need_apt+=(nghttp2-client)
# dnsmasq: a local DNS name for two replicas in `make chaos` (client-side round_robin).
command -v dnsmasq >/dev/null || need_apt+=(dnsmasq-base)
if ((${#need_apt[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "bootstrap: installing ${need_apt[*]} via apt"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian starts packaged daemons; recserve runs its own instances on its own ports.
  for svc in redis-server prometheus; do
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || $SUDO service "$svc" stop >/dev/null 2>&1 || true
  done
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e ".[dev]"
  touch "$stamp"
fi

# buf for `make api-check`, pinned in package-lock.json; `npm ci` empties node_modules first,
# so a changed lock file finds no stamp and reinstalls.
npm_stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -f "$npm_stamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch "$npm_stamp"
fi

"$VENV/bin/python" -m recserve.training.data fetch-movielens --dest data
