#!/usr/bin/env bash
# Installs every system, Rust, Python and npm package nimbus needs to run and to be tested.
# Idempotent: safe to run on every `make run` / `make test`. Nothing is assumed from what the
# machine had before: commands are checked, and the Python and npm packages are pinned
# (tests/requirements.txt, tests/js/package-lock.json) and installed at exactly those versions.
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
  [bash]=bash
  [curl]=curl
  [iperf3]=iperf3
  [unlz4]=lz4
  [readelf]=binutils
  [depmod]=kmod
  [dropbear]=dropbear-bin
  [dropbearkey]=dropbear-bin
  [mkfs.ext4]=e2fsprogs
  [cpio]=cpio
  [fio]=fio
  [nbdinfo]=libnbd-bin
  [nbdcopy]=libnbd-bin
  [nbdkit]=nbdkit
  [ip]=iproute2
  [unshare]=util-linux
  [setpriv]=util-linux
  [nsenter]=util-linux
  [ssh]=openssh-client
  [ssh-keygen]=openssh-client
  [debootstrap]=debootstrap
  [nft]=nftables
  [dnsmasq]=dnsmasq-base
  [haproxy]=haproxy
  [cc]=build-essential
  [python3]=python3
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
  for pattern in "${!FILE_PROVIDER[@]}"; do
    compgen -G "$pattern" >/dev/null || echo "  file not found: $pattern" >&2
  done
  exit 1
fi

# Rust itself comes with this kind of machine (Debian's rustc is too old, and toolchain
# downloads are not reachable from every machine we run on), so it is checked, not fetched.
# cargo-nextest builds from crates.io when missing.
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"
if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo is missing: install Rust stable (https://rustup.rs) and run again" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest from crates.io"
  cargo install --locked cargo-nextest
fi
RUST_MIN=1.89 # std::fs::File::try_lock (the data dir's lock)
RUST_HAVE=$(rustc --version | awk '{print $2}')
if [[ $(printf '%s\n' "$RUST_MIN" "$RUST_HAVE" | sort -V | head -n1) != "$RUST_MIN" ]]; then
  echo "install-deps: rustc $RUST_HAVE is older than $RUST_MIN, which nimbus needs: run \`rustup update stable && rustup default stable\`" >&2
  exit 1
fi

# When nimbus runs as root, each QEMU drops to a uid of its own from this user's subordinate
# range (docs/compute.md, "Least privilege"). 1,000,000,000 + 65,536 lies far above the
# ranges useradd hands to people (100,000 on).
if [[ $(id -u) -eq 0 ]] && ! id -u nimbus-qemu >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nimbus-qemu
fi
if [[ $(id -u) -eq 0 ]] && ! grep -q '^nimbus-qemu:' /etc/subuid 2>/dev/null; then
  echo "nimbus-qemu:1000000000:65536" >> /etc/subuid
fi

# The pinned Python packages, into the python3 that `make test` runs (a no-op when they are
# there). Debian's own python3 is "externally managed"; these pins are what the tests need.
ROOT_DIR="$(cd "$(dirname "$0")/.." && pwd)"
if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "install-deps: installing python3-pip"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends python3-pip
fi
PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  -r "$ROOT_DIR/tests/requirements.txt"
for cmd in aws moto_server; do
  command -v "$cmd" >/dev/null 2>&1 || {
    echo "install-deps: $cmd is not on PATH after pip install (add python3's scripts directory)" >&2
    exit 1
  }
done

# The JavaScript SDK v3, a second real SDK for the end-to-end tests (tests/js/), exactly as
# locked; installed again whenever the lock file changed since the last install.
JS_DIR="$ROOT_DIR/tests/js"
JS_STAMP="$JS_DIR/node_modules/.nimbus-installed-lock.json"
if ! cmp -s "$JS_DIR/package-lock.json" "$JS_STAMP"; then
  (cd "$JS_DIR" && npm ci --no-audit --no-fund --silent)
  cp "$JS_DIR/package-lock.json" "$JS_STAMP"
fi
