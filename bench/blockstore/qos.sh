#!/usr/bin/env bash
# Volume-type performance on the data path: fio (nbd engine) against a default gp3 volume
# (3,000 IOPS / 125 MiB/s) and an io2 volume provisioned with 6,000 IOPS, through nimbus.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x target/release/nimbus ] || cargo build --release --bin nimbus
DATA=$(mktemp -d); PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn target/release/nimbus serve --listen 127.0.0.1:$PORT --data-dir "$DATA" & SERVER=$!
trap 'kill $SERVER; rm -rf "$DATA"' EXIT
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
sleep 1
run() { # volume-args... ; prints IOPS and MiB/s for 4k randread QD16 and 1M read
  local vol; vol=$(aws ec2 create-volume --availability-zone us-east-1a "$@" --query VolumeId --output text)
  aws ec2 wait volume-available --volume-ids "$vol"
  local uri="nbd+unix:///$vol?socket=$DATA/nbd.sock"
  local iops; iops=$(fio --name=r --ioengine=nbd --uri="$uri" --rw=randread --bs=4k --iodepth=16 --size=1G --time_based --runtime=8 --output-format=json --output="$DATA/r.json" >/dev/null && python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["jobs"][0]["read"]["iops"]))' "$DATA/r.json")
  local mbs; mbs=$(fio --name=s --ioengine=nbd --uri="$uri" --rw=read --bs=1M --iodepth=8 --size=1G --time_based --runtime=8 --output-format=json --output="$DATA/s.json" >/dev/null && python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["jobs"][0]["read"]["bw"]/1024))' "$DATA/s.json")
  echo "$iops $mbs"
}
read -r GP3_IOPS GP3_MBS < <(run --size 8 --volume-type gp3)
read -r IO2_IOPS IO2_MBS < <(run --size 8 --volume-type io2 --iops 6000)
cat <<REPORT | tee -a bench/RESULTS.md

## Volume types on the data path — $(date -u +%Y-%m-%d)

Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); fio nbd engine through nimbus, 8 s each.

| volume | provisioned | 4k randread QD16 | 1M read QD8 |
|---|---|---|---|
| gp3 default | 3,000 IOPS, 125 MiB/s | $GP3_IOPS IOPS | $GP3_MBS MiB/s |
| io2 | 6,000 IOPS (throughput 1,500 MiB/s) | $IO2_IOPS IOPS | $IO2_MBS MiB/s |
REPORT
