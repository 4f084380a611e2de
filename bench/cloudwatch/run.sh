#!/usr/bin/env bash
# CloudWatch throughput and latency, nimbus vs moto (bench.py), and the collectors' CPU (collectors.py). Uses a release build
# unless NIMBUS_BIN names another binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
if [ -z "${NIMBUS_BIN:-}" ]; then
  [ -x target/release/nimbus ] || cargo build --release --bin nimbus
fi
python3 bench/cloudwatch/bench.py
python3 bench/cloudwatch/collectors.py
