#!/usr/bin/env bash
# Instance launch vs a bare QEMU boot (see bench.py). Needs a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/install-deps.sh
cargo build --quiet --release --bin nimbus
python3 bench/launch/bench.py
