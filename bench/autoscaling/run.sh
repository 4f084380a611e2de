#!/usr/bin/env bash
# Auto Scaling scale-out vs bare QEMU boots started together (see bench.py). Needs a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/install-deps.sh
cargo build --quiet --release --bin nimbus
python3 bench/autoscaling/bench.py
