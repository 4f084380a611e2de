#!/usr/bin/env bash
# API throughput and latency, nimbus vs moto (see bench.py). Needs a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
[ -x target/release/nimbus ] || cargo build --release --bin nimbus
python3 bench/api/bench.py
