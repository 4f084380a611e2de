"""API benchmark: nimbus against moto's server, same machine, same signed requests.

For each request shape, both servers get identical SigV4-signed requests (signed once per
server, since the Host header differs) replayed by wrk; we report requests/s and p50/p99
latency and the nimbus/moto ratios, and append them to bench/RESULTS.md.
"""

import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DURATION = os.environ.get("BENCH_DURATION", "10s")
CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "8")
KEY_PAIRS = int(os.environ.get("BENCH_KEY_PAIRS", "1000"))
PUBLIC_KEY = None


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, process, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {url}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"not ready: {url}")


def client(endpoint):
    return boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def seed(endpoint):
    ec2 = client(endpoint)
    for i in range(KEY_PAIRS):
        team = "blue" if i % 10 == 0 else "red"
        ec2.import_key_pair(
            KeyName=f"bench-{i:04d}", PublicKeyMaterial=PUBLIC_KEY,
            TagSpecifications=[{"ResourceType": "key-pair",
                                "Tags": [{"Key": "team", "Value": team}, {"Key": "index", "Value": str(i)}]}])


# label -> (SigV4 service, Query form)
REQUESTS = {
    "DescribeRegions": ("ec2", {"Action": "DescribeRegions", "Version": "2016-11-15"}),
    "DescribeTags (filter, 1000 tagged)": ("ec2", {
        "Action": "DescribeTags", "Version": "2016-11-15",
        "Filter.1.Name": "value", "Filter.1.Value.1": "blue"}),
    "DescribeKeyPairs (tag filter, 1000)": ("ec2", {
        "Action": "DescribeKeyPairs", "Version": "2016-11-15",
        "Filter.1.Name": "tag:team", "Filter.1.Value.1": "blue"}),
    "STS GetCallerIdentity (AWS Query)": ("sts", {"Action": "GetCallerIdentity", "Version": "2011-06-15"}),
}


def wrk_script(endpoint, service, form, path):
    body = urllib.parse.urlencode(form)
    request = AWSRequest(method="POST", url=endpoint + "/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials("test", "test"), service, "us-east-1").add_auth(request)
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(body)}"]
    for name, value in request.headers.items():
        if name.lower() != "host":
            lines.append(f"wrk.headers[{lua_string(name)}] = {lua_string(value)}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def lua_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(endpoint, script):
    out = subprocess.run(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency", "-s", script,
                          endpoint + "/"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {p: to_ms(v, u) for p, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", out)}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise RuntimeError(f"{endpoint}: {non_2xx.group(1)} error responses\n{out}")
    return rps, latency["50"], latency["99"]


def main():
    global PUBLIC_KEY
    workdir = tempfile.mkdtemp(prefix="nimbus-bench-")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{workdir}/key"], check=True)
    PUBLIC_KEY = open(f"{workdir}/key.pub", "rb").read()
    nimbus_port, moto_port = free_port(), free_port()
    nimbus = subprocess.Popen([os.path.join(ROOT, "target/release/nimbus"), "serve", "--listen",
                               f"127.0.0.1:{nimbus_port}", "--data-dir", f"{workdir}/data"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "RUST_LOG": "warn"})
    moto = subprocess.Popen(["moto_server", "-p", str(moto_port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    servers = {"nimbus": f"http://127.0.0.1:{nimbus_port}", "moto": f"http://127.0.0.1:{moto_port}"}
    try:
        wait_ready(servers["nimbus"] + "/_nimbus/health", nimbus)
        wait_ready(servers["moto"] + "/", moto)
        for endpoint in servers.values():
            seed(endpoint)
        results = {}
        for label, (service, form) in REQUESTS.items():
            for name, endpoint in servers.items():
                script = f"{workdir}/{name}.lua"
                wrk_script(endpoint, service, form, script)
                results[(label, name)] = run_wrk(endpoint, script)
        report(results)
    finally:
        for process in (nimbus, moto):
            process.terminate()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def report(results):
    cpu = "unknown CPU"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        f"## API vs moto — {datetime.date.today().isoformat()}",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), {platform.platform()}. wrk -t1 -c{CONNECTIONS} "
        f"-d{DURATION}, same SigV4-signed requests to both, {KEY_PAIRS} tagged key pairs in each.",
        "",
        "| request | nimbus req/s | moto req/s | throughput ratio | nimbus p50 / p99 ms | moto p50 / p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for label in REQUESTS:
        n_rps, n50, n99 = results[(label, "nimbus")]
        m_rps, m50, m99 = results[(label, "moto")]
        # A request moto cannot answer leaves it no rate: no ratio then.
        ratio = f"{n_rps / m_rps:.1f}x" if m_rps else "n/a (moto failed)"
        lines.append(f"| {label} | {n_rps:.0f} | {m_rps:.0f} | {ratio} | "
                     f"{n50:.2f} / {n99:.2f} | {m50:.2f} / {m99:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(ROOT, "bench", "RESULTS.md"), "a") as f:
        f.write("\n" + text)


if __name__ == "__main__":
    sys.exit(main())
