#!/usr/bin/env bash
# The load balancer's cost on this host: wrk straight to a target, through a balancer made by
# the balancer crate's HaproxyBalancers, and through a bare HAProxy on the same rendered
# config, in the same run; then target registration → healthy and target death → last routed
# request (see crates/balancer/examples/bench_loadbalancer.rs). Needs root, ip, haproxy, curl;
# installs wrk if missing. Appends its section to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
cargo build -q -p balancer --example bench_loadbalancer
{
  echo
  echo "## load balancer — $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); kernel $(uname -r); $(haproxy -v | head -1 | cut -d' ' -f1-3); wrk, the balancer and the targets share the cores."
  echo
  target/debug/examples/bench_loadbalancer
} | tee -a bench/RESULTS.md
