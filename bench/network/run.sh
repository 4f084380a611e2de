#!/usr/bin/env bash
# The data plane's cost on this host, with network namespaces as guests (see
# crates/network/examples/bench_network.rs). Needs root, iperf3, nft, dnsmasq, busybox.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q -p network --example bench_network
echo "## network — $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); kernel $(uname -r); guests are network namespaces on veth pairs."
echo
target/debug/examples/bench_network
