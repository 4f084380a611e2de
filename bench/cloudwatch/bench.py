"""CloudWatch benchmark: nimbus against moto's server, same machine, same requests.

- PutMetricData and GetMetricData throughput: identical SigV4-signed AWS Query requests
  replayed by wrk against both servers, each seeded with the same 24 hours of 1-minute data
  for METRICS metrics;
- GetMetricData latency over all of it: one request asking for every metric over the 24
  hours (5-minute periods, read from the rolled-up tier), its p50/p99 on nimbus (and moto).

Results are appended to bench/RESULTS.md.
"""

import datetime
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

import boto3
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# wrk, signing and server helpers are bench/api's.
_spec = importlib.util.spec_from_file_location("api_bench", os.path.join(ROOT, "bench", "api", "bench.py"))
api_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api_bench)

NIMBUS_BIN = os.environ.get("NIMBUS_BIN", os.path.join(ROOT, "target", "release", "nimbus"))
METRICS = int(os.environ.get("BENCH_METRICS", "100"))
MINUTES = 24 * 60
VERSION = "2010-08-01"
LATENCY_LABEL = f"GetMetricData ({METRICS} metrics, 24 h, 5-minute p99; one client)"


def cloudwatch(endpoint):
    # moto's server cannot read gzipped bodies (boto3 gzips those above 10 KiB).
    return boto3.client("cloudwatch", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(disable_request_compression=True))


def seed(endpoint, end):
    """24 hours of 1-minute datapoints for METRICS metrics, 1,000 datapoints a request."""
    client = cloudwatch(endpoint)
    batch = []
    for metric in range(METRICS):
        for minute in range(MINUTES):
            at = end - datetime.timedelta(minutes=MINUTES - minute)
            batch.append({"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": f"h{metric:03d}"}],
                          "Timestamp": at, "Value": float((metric * 7 + minute) % 100), "Unit": "Milliseconds"})
            if len(batch) == 1000:
                client.put_metric_data(Namespace="Bench", MetricData=batch)
                batch = []
    if batch:
        client.put_metric_data(Namespace="Bench", MetricData=batch)


def query_form(queries, start, end):
    form = {"Action": "GetMetricData", "Version": VERSION,
            "StartTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "EndTime": end.strftime("%Y-%m-%dT%H:%M:%SZ")}
    for i, (host, period, stat) in enumerate(queries, 1):
        prefix = f"MetricDataQueries.member.{i}"
        form.update({
            f"{prefix}.Id": f"m{i}",
            f"{prefix}.MetricStat.Metric.Namespace": "Bench",
            f"{prefix}.MetricStat.Metric.MetricName": "Latency",
            f"{prefix}.MetricStat.Metric.Dimensions.member.1.Name": "Host",
            f"{prefix}.MetricStat.Metric.Dimensions.member.1.Value": host,
            f"{prefix}.MetricStat.Period": str(period),
            f"{prefix}.MetricStat.Stat": stat,
        })
    return form


def put_form():
    form = {"Action": "PutMetricData", "Version": VERSION, "Namespace": "BenchPut"}
    for i in range(1, 21):
        prefix = f"MetricData.member.{i}"
        form.update({f"{prefix}.MetricName": "Requests", f"{prefix}.Dimensions.member.1.Name": "Host",
                     f"{prefix}.Dimensions.member.1.Value": f"h{i}", f"{prefix}.Value": str(i),
                     f"{prefix}.Unit": "Count"})
    return form


def main():
    workdir = tempfile.mkdtemp(prefix="nimbus-bench-cw-")
    nimbus_port, moto_port = api_bench.free_port(), api_bench.free_port()
    nimbus = subprocess.Popen([NIMBUS_BIN, "serve", "--listen", f"127.0.0.1:{nimbus_port}",
                               "--data-dir", f"{workdir}/data"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "RUST_LOG": "warn"})
    moto = subprocess.Popen(["moto_server", "-p", str(moto_port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    servers = {"nimbus": f"http://127.0.0.1:{nimbus_port}", "moto": f"http://127.0.0.1:{moto_port}"}
    end = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
    start = end - datetime.timedelta(hours=24)
    requests = {
        "PutMetricData (20 metrics, 1 value each)": put_form(),
        "GetMetricData (1 metric, last hour, 1-minute Average)":
            query_form([("h000", 60, "Average")], end - datetime.timedelta(hours=1), end),
        LATENCY_LABEL:
            query_form([(f"h{m:03d}", 300, "p99") for m in range(METRICS)], start, end),
    }
    try:
        api_bench.wait_ready(servers["nimbus"] + "/_nimbus/health", nimbus)
        api_bench.wait_ready(servers["moto"] + "/", moto)
        seeding = {}
        for name, endpoint in servers.items():
            began = time.time()
            seed(endpoint, end)
            seeding[name] = time.time() - began
        results = {}
        throughput_connections = api_bench.CONNECTIONS
        for label, form in requests.items():
            # The whole-day query measures one client's latency, not contention.
            api_bench.CONNECTIONS = "1" if label == LATENCY_LABEL else throughput_connections
            for name, endpoint in servers.items():
                script = f"{workdir}/{name}.lua"
                api_bench.wrk_script(endpoint, "monitoring", form, script)
                try:
                    results[(label, name)] = api_bench.run_wrk(endpoint, script)
                except (RuntimeError, AttributeError, subprocess.CalledProcessError) as error:
                    print(f"{name} {label}: {error}", file=sys.stderr)
                    results[(label, name)] = None
        report(requests, results, seeding)
    finally:
        for process in (nimbus, moto):
            process.terminate()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def report(requests, results, seeding):
    cpu = "unknown CPU"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        f"## CloudWatch vs moto — {datetime.date.today().isoformat()}",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), {platform.platform()}. Binary: "
        f"{os.path.relpath(NIMBUS_BIN, ROOT)}. wrk -t1 -c8 (-c1 for the whole-day query) -d{api_bench.DURATION}, "
        f"same SigV4-signed AWS Query requests to both, each seeded with 24 h of 1-minute data for "
        f"{METRICS} metrics ({METRICS * MINUTES} datapoints; seeding took nimbus {seeding['nimbus']:.1f} s, "
        f"moto {seeding['moto']:.1f} s).",
        "",
        "| request | nimbus req/s | moto req/s | throughput ratio | nimbus p50 / p99 ms | moto p50 / p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for label in requests:
        n = results[(label, "nimbus")]
        m = results[(label, "moto")]
        n_text = f"{n[0]:.0f}" if n else "failed"
        m_text = f"{m[0]:.0f}" if m else "failed"
        ratio = f"{n[0] / m[0]:.1f}x" if n and m and m[0] > 0 else "-"
        n_lat = f"{n[1]:.2f} / {n[2]:.2f}" if n else "-"
        m_lat = f"{m[1]:.2f} / {m[2]:.2f}" if m else "-"
        lines.append(f"| {label} | {n_text} | {m_text} | {ratio} | {n_lat} | {m_lat} |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(ROOT, "bench", "RESULTS.md"), "a") as f:
        f.write("\n" + text)


if __name__ == "__main__":
    sys.exit(main())
