#!/usr/bin/env bash
# StopInstances Hibernate / StartInstances vs QEMU's own migrate to a file (see bench.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --bin nimbus
python3 bench/hibernate/bench.py
