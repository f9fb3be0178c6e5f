#!/usr/bin/env bash
# Installs what the project needs on a fresh machine of this kind (Debian 12, root, Go,
# Python 3.11): system packages, uv, and the project's locked environment in .venv/.
# Each step checks first, so a second run is quick.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
need=()
for pair in debootstrap:debootstrap ssh-keygen:openssh-client ssh:openssh-client git:git \
            curl:curl openssl:openssl unshare:util-linux ip:iproute2 lua5.4:lua5.4 \
            dpkg-deb:dpkg; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if ((${#need[@]})); then
  echo "[setup] apt-get install ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
if ! command -v uv >/dev/null; then
  echo "[setup] installing uv" >&2
  python3 -m pip install -q uv >&2 || pip install -q uv >&2
fi
command -v go >/dev/null || { echo "[setup] Go is required to build the control plane (go 1.26+)" >&2; exit 1; }
cd "$ROOT"
uv sync --frozen -q
