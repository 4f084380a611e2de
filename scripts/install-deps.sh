#!/usr/bin/env bash
# Installs every system and Python package nimbus needs to run and to be tested.
# Idempotent: safe to run on every `make run` / `make test`.
set -euo pipefail

DEBIAN_PACKAGES=(
  qemu-system-x86 qemu-utils linux-image-cloud-amd64 busybox-static dropbear-bin
  e2fsprogs cpio fio libnbd-bin nbdkit iproute2 openssh-client debootstrap socat
)
PYTHON_PACKAGES=(boto3 awscli 'moto[server]' pytest)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# QEMU drops to this user when nimbus runs as root (docs/compute.md).
if [[ $(id -u) -eq 0 ]] && ! id -u nimbus-qemu >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nimbus-qemu
fi

python3 - <<'PY' || python3 -m pip install -q "${PYTHON_PACKAGES[@]}"
import boto3, awscli, moto, pytest  # noqa: F401
PY
