#!/usr/bin/env bash
# The data plane's cost on this host, with network namespaces as guests (see
# crates/network/examples/bench_network.rs), then with real VMs (vms.py). Needs root, iperf3,
# nft, dnsmasq, busybox, qemu-system-x86_64.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q -p network --example bench_network
echo "## network — $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); kernel $(uname -r); guests are network namespaces on veth pairs."
echo
target/debug/examples/bench_network
echo
# The same with real VMs: two nimbus instances in a VPC against two bare QEMU VMs on a
# bridge, alternated; appends its section to bench/RESULTS.md (see vms.py).
[ -x "${NIMBUS_BIN:-target/release/nimbus}" ] || cargo build --release --bin nimbus
python3 bench/network/vms.py
