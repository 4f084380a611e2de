"""End-to-end fixtures: the real nimbus binary on a free port with a temporary data dir,
driven by real AWS clients (boto3, the aws CLI)."""

import os
import random
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("NIMBUS_BIN", os.path.join(ROOT, "target", "debug", "nimbus"))


# Every data dir a test server ran on, so that the session's end can check what is left.
DATA_DIRS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nimbus:
    """One nimbus server process; can be killed and restarted on the same data dir."""

    def __init__(self, data_dir, extra_args=(), config_text=None, listen_host="127.0.0.1"):
        self.data_dir = data_dir
        DATA_DIRS.append(data_dir)
        self.port = free_port()
        # Clients always connect over loopback, whatever address nimbus listens on.
        self.listen = f"{listen_host}:{self.port}"
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.extra_args = list(extra_args)
        # Each server gets its own block of public IPs: the host routes them, and a test may
        # run two servers at once.
        config_text = config_text or ""
        if "public_ip_pool" not in config_text:
            config_text = f'public_ip_pool = "198.19.{random.randrange(256)}.0/24"\n' + config_text
        self.config_path = os.path.join(data_dir, "nimbus.toml")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.process = None
        self.log_path = os.path.join(data_dir, "nimbus.log")

    def start(self, timeout=60):
        args = [BINARY, "serve", "--listen", self.listen, "--data-dir", self.data_dir]
        if self.config_path:
            args += ["--config", self.config_path]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(args + self.extra_args, stdout=log, stderr=log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nimbus exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/_nimbus/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nimbus did not become healthy:\n{self.log()}")

    def kill9(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-5000:]
        except OSError:
            return ""

    def client(self, service="ec2", key="test", secret="test", **kwargs):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}, read_timeout=120),
            **kwargs,
        )

    def cli_env(self):
        env = dict(os.environ)
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_DEFAULT_REGION="us-east-1",
        )
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        return env


@pytest.fixture(scope="module")
def nimbus():
    with tempfile.TemporaryDirectory(prefix="nimbus-test-") as data_dir:
        server = Nimbus(data_dir).start()
        yield server
        server.stop()


@pytest.fixture
def fresh_nimbus():
    """A server of one's own, for tests that kill or restart it."""
    with tempfile.TemporaryDirectory(prefix="nimbus-test-") as data_dir:
        server = Nimbus(data_dir)
        yield server
        server.stop()


@pytest.fixture(scope="module")
def ec2(nimbus):
    return nimbus.client()


def leftovers_of(data_dirs):
    """What test servers on `data_dirs` left on the host: VPC namespaces and host tables (by
    their owner markers; routes and uplinks go with the namespaces) and QEMU processes."""
    owners_dir = "/run/nimbus/vpc-owners"
    left = []
    for name in os.listdir(owners_dir) if os.path.isdir(owners_dir) else []:
        if name.endswith(".pid") or name.startswith("."):
            continue
        with open(os.path.join(owners_dir, name)) as f:
            owner = f.read()
        if not any(owner.startswith(d.rstrip("/") + "/") for d in data_dirs):
            continue
        table = subprocess.run(["nft", "list", "table", "inet", name], capture_output=True).returncode == 0
        if os.path.exists(f"/run/netns/{name}") or table:
            left.append(f"{name} of {owner}")
    for data_dir in data_dirs:
        qemu = subprocess.run(["pgrep", "-f", f"qemu-system.*{data_dir}"], capture_output=True, text=True)
        left += [f"QEMU {pid} of {data_dir}" for pid in qemu.stdout.split()]
    return left


def pytest_sessionfinish(session, exitstatus):
    """The suite leaves nothing on the host: once its servers have stopped, `nimbus sweep`
    removes their VPCs (their processes ended and no guest is left in them), and anything
    still there fails the session."""
    if os.geteuid() != 0 or not DATA_DIRS or not os.path.exists(BINARY):
        return
    subprocess.run([BINARY, "sweep"], capture_output=True, timeout=300)
    left = leftovers_of(DATA_DIRS)
    if left:
        print("\nthe suite left on the host:\n  " + "\n  ".join(left))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
