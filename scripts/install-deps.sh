#!/usr/bin/env bash
# Installs every system, Python and npm package nimbus needs to run and to be tested.
# Idempotent: safe to run on every `make run` / `make test`.
#
# It checks for the commands it needs, not for package names: on this kind of machine a
# preinstalled qemu-utils 10 (from backports) is removed when Debian's qemu-system-x86 7.2
# is installed, so a package check alone would leave qemu-img and qemu-io missing.
set -euo pipefail

# command (or file) -> Debian package that provides it
declare -A PROVIDER=(
  [qemu-system-x86_64]=qemu-system-x86
  [qemu-img]=qemu-utils
  [qemu-io]=qemu-utils
  [qemu-nbd]=qemu-utils
  [busybox]=busybox-static
  [dropbear]=dropbear-bin
  [dropbearkey]=dropbear-bin
  [mkfs.ext4]=e2fsprogs
  [cpio]=cpio
  [fio]=fio
  [nbdinfo]=libnbd-bin
  [nbdcopy]=libnbd-bin
  [nbdkit]=nbdkit
  [ip]=iproute2
  [ssh]=openssh-client
  [ssh-keygen]=openssh-client
  [debootstrap]=debootstrap
  [socat]=socat
  [node]=nodejs
  [npm]=npm
)
# Files that are not commands on PATH.
declare -A FILE_PROVIDER=(
  [/boot/vmlinuz-*-cloud-amd64]=linux-image-cloud-amd64
)

SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"

missing_packages() {
  local -A want=()
  local cmd pattern
  for cmd in "${!PROVIDER[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || want[${PROVIDER[$cmd]}]=1
  done
  for pattern in "${!FILE_PROVIDER[@]}"; do
    compgen -G "$pattern" >/dev/null || want[${FILE_PROVIDER[$pattern]}]=1
  done
  echo "${!want[@]}"
}

read -r -a missing <<<"$(missing_packages)"
if ((${#missing[@]})); then
  # qemu-system-x86 7.2 removes a newer qemu-utils, so both always come from the same
  # Debian release in the same step.
  for pkg in "${missing[@]}"; do
    if [[ $pkg == qemu-system-x86 || $pkg == qemu-utils ]]; then
      missing=("${missing[@]/qemu-system-x86}"); missing=("${missing[@]/qemu-utils}")
      missing+=(qemu-system-x86/bookworm qemu-utils/bookworm qemu-system-common/bookworm qemu-block-extra/bookworm)
      break
    fi
  done
  read -r -a missing <<<"${missing[*]}"
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    --allow-downgrades "${missing[@]}"
fi

read -r -a still_missing <<<"$(missing_packages)"
if ((${#still_missing[@]})); then
  echo "install-deps: still missing after installing: packages ${still_missing[*]}" >&2
  for cmd in "${!PROVIDER[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || echo "  command not found: $cmd" >&2
  done
  exit 1
fi

# QEMU drops to this user when nimbus runs as root (docs/compute.md).
if [[ $(id -u) -eq 0 ]] && ! id -u nimbus-qemu >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nimbus-qemu
fi

PYTHON_PACKAGES=(boto3 awscli 'moto[server]' pytest)
python3 - <<'PY' 2>/dev/null || python3 -m pip install -q "${PYTHON_PACKAGES[@]}"
import boto3, awscli, moto, pytest  # noqa: F401
PY
for cmd in aws moto_server pytest; do
  command -v "$cmd" >/dev/null 2>&1 || python3 -c "import ${cmd/moto_server/moto}" 2>/dev/null || {
    echo "install-deps: $cmd is missing after pip install" >&2; exit 1; }
done

# The JavaScript SDK v3, a second real SDK for the end-to-end tests (tests/js/).
JS_DIR="$(dirname "$0")/../tests/js"
if [[ -f $JS_DIR/package.json && ! -d $JS_DIR/node_modules/@aws-sdk/client-sts ]]; then
  (cd "$JS_DIR" && npm install --no-audit --no-fund --silent)
fi
