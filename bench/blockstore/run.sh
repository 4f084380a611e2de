#!/usr/bin/env bash
# blockstore benchmark: fio through our NBD server vs qemu-nbd (raw file, qcow2 overlay)
# vs the raw file itself, all on the same disk in one run; then snapshot latencies.
# Appends a dated section to bench/RESULTS.md. Env: RUNTIME (s per job, default 10),
# SIZE_MIB (default 1024), BENCH_DIR (work dir parent, default /var/tmp).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNTIME=${RUNTIME:-10}
SIZE_MIB=${SIZE_MIB:-1024}
WORK=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}" nimbus-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --quiet --release -p blockstore --bins --examples --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release"

ENGINE=io_uring
if ! fio --name=probe --ioengine=io_uring --filename="$WORK/probe" --size=1M --rw=read \
        --direct=1 --output=/dev/null >/dev/null 2>&1; then
    ENGINE=libaio
fi

wait_socket() { for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }

# run_fio RW BS TARGET_ARGS... -> prints "iops bw_bytes" (the nbd engine prints a line before the JSON)
run_fio() {
    local rw=$1 bs=$2; shift 2
    # Every job starts with no dirty pages of earlier jobs left to write back.
    sync
    fio --name=bench --rw="$rw" --bs="$bs" --iodepth=16 --time_based --runtime="$RUNTIME" \
        --size="${SIZE_MIB}M" --output-format=json "$@" 2>/dev/null |
        python3 -c 'import json,sys; s=sys.stdin.read(); j=json.loads(s[s.index("{"):])["jobs"][0]; d=j["read"] if j["read"]["io_bytes"] else j["write"]; print(round(d["iops"]), d["bw_bytes"])'
}

prefill() { fio --name=fill --rw=write --bs=1M --iodepth=16 --size="${SIZE_MIB}M" "$@" --output=/dev/null >/dev/null; }

declare -A RESULT
WORKLOADS=("randread 4k" "randwrite 4k" "read 1M" "write 1M")
measure() {
    local name=$1; shift
    prefill "$@"
    for w in "${WORKLOADS[@]}"; do
        RESULT["$name/$w"]=$(run_fio $w "$@")
    done
}

# 1. the raw file itself
truncate -s "${SIZE_MIB}M" "$WORK/raw.img"
measure raw --ioengine="$ENGINE" --direct=1 --filename="$WORK/raw.img"

# 2. qemu-nbd serving a raw file
truncate -s "${SIZE_MIB}M" "$WORK/qemu.img"
qemu-nbd -f raw --socket="$WORK/qemu.sock" -x vol --persistent "$WORK/qemu.img" &
PIDS+=($!)
wait_socket "$WORK/qemu.sock"
measure qemu-nbd-raw --ioengine=nbd --uri="nbd+unix:///vol?socket=$WORK/qemu.sock"

# 3. qemu-nbd serving a qcow2 overlay over a filled raw base
truncate -s "${SIZE_MIB}M" "$WORK/base.img"
prefill --ioengine=psync --filename="$WORK/base.img"
qemu-img create -q -f qcow2 -b "$WORK/base.img" -F raw "$WORK/overlay.qcow2"
qemu-nbd -f qcow2 --socket="$WORK/qcow.sock" -x vol --persistent "$WORK/overlay.qcow2" &
PIDS+=($!)
wait_socket "$WORK/qcow.sock"
for w in "${WORKLOADS[@]}"; do
    RESULT["qemu-nbd-qcow2/$w"]=$(run_fio $w --ioengine=nbd --uri="nbd+unix:///vol?socket=$WORK/qcow.sock")
done

# 4. nimbus blockstore
"$BIN/blockstore-nbd-server" "$WORK/nimbus" "$WORK/nimbus.sock" vol-bench $((SIZE_MIB << 20)) >/dev/null &
PIDS+=($!)
wait_socket "$WORK/nimbus.sock"
measure nimbus --ioengine=nbd --uri="nbd+unix:///vol-bench?socket=$WORK/nimbus.sock"

# 5. snapshots
SNAP=$("$BIN/examples/snapshot_bench" "$WORK/snap" "$SIZE_MIB")
get() { awk -v k="$1" '$1 == k { print $2 }' <<<"$SNAP"; }
QCOW_START=$(date +%s%N)
qemu-img create -q -f qcow2 -b "$WORK/raw.img" -F raw "$WORK/snap-overlay.qcow2"
QCOW_MS=$(python3 -c "print(round(($(date +%s%N) - $QCOW_START) / 1e6, 3))")

ratio() { python3 -c "a,b=$1,$2; print(f'{a/b:.2f}' if b else 'n/a')"; }
{
    echo
    echo "## blockstore — $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); disk: $(df -h "$WORK" | awk 'NR==2{print $1}'); ${SIZE_MIB} MiB target, ${RUNTIME} s per job, QD16, one fio job; raw file via $ENGINE --direct=1, servers via fio's nbd engine over a unix socket."
    echo
    echo "| workload | raw file | qemu-nbd raw | qemu-nbd qcow2 | nimbus | nimbus / qemu-nbd raw | nimbus / qcow2 | nimbus / raw file |"
    echo "|---|---|---|---|---|---|---|---|"
    for w in "${WORKLOADS[@]}"; do
        read -r raw_iops raw_bw <<<"${RESULT[raw/$w]}"
        read -r q_iops q_bw <<<"${RESULT[qemu-nbd-raw/$w]}"
        read -r c_iops c_bw <<<"${RESULT[qemu-nbd-qcow2/$w]}"
        read -r n_iops n_bw <<<"${RESULT[nimbus/$w]}"
        fmt() { if [[ $w == *4k ]]; then echo "$1 IOPS"; else echo "$(($2 >> 20)) MiB/s"; fi; }
        echo "| $w | $(fmt "$raw_iops" "$raw_bw") | $(fmt "$q_iops" "$q_bw") | $(fmt "$c_iops" "$c_bw") | $(fmt "$n_iops" "$n_bw") | $(ratio "$n_iops" "$q_iops") | $(ratio "$n_iops" "$c_iops") | $(ratio "$n_iops" "$raw_iops") |"
    done
    echo
    echo "Snapshots of a ${SIZE_MIB} MiB volume of incompressible data, 1% rewritten (whole 512 KiB chunks at random places) after a first full snapshot:"
    echo
    echo "| measure | nimbus | peer |"
    echo "|---|---|---|"
    echo "| snapshot create (returns) | $(get snapshot_create_ms) ms | qemu-img create qcow2 overlay: $QCOW_MS ms |"
    echo "| incremental upload in background | $(get incremental_upload_ms) ms | full snapshot upload: $(get full_snapshot_upload_ms) ms |"
    echo "| bytes stored by the incremental snapshot | $(get incremental_stored_bytes) | changed bytes: $(get changed_bytes) (ratio $(ratio "$(get incremental_stored_bytes)" "$(get changed_bytes)")) |"
    echo "| new volume from snapshot: create + first 4 KiB read | $(get restore_first_read_ms) ms | |"
} | tee -a "$ROOT/bench/RESULTS.md"
