"""Instance-to-instance TCP throughput and round-trip latency with real VMs.

Three setups, rotated for ROUNDS rounds in one run, medians reported:

* nimbus: `nimbus serve` on a temporary data dir; a fresh VPC (no internet gateway) with a
  subnet and a security group that allows TCP 5201 and ICMP from itself only; two t3.nano
  instances of the nimbus-minimal AMI. B runs `iperf3 -s`, A (launched knowing B's private IP)
  runs the workload from its user data and prints the markers on /dev/console, read back
  from the instance's serial log.
* image: two qemu-system-x86_64 of the same shape (q35, TCG, -cpu max, 2 vCPUs, 512 MiB)
  booting the nimbus-minimal image itself, on a plain bridge where dnsmasq answers DHCP and a
  small metadata service hands out the same user data. Only nimbus's network and VM setup
  differ from the nimbus setup: this is the comparison the target is about.
* busybox: the same bare VMs booting the image's kernel with a busybox + iperf3 initramfs
  built here, which runs the workload from /init with a fixed address. It shows what the
  guest image itself costs (docs/network.md).

Bridge and taps live in a network namespace of their own, with no nftables rules (and bridge
netfilter off), so nothing filters and nothing reaches the host's networks.

The workload (the same shell in all): the client waits for the peer to answer ping, lets
both guests settle for 5 s, runs `iperf3 -c PEER -t 10` (retried until the server answers),
prints `BENCH-TCP <kbit/s>`, then `ping -c 50 -i 0.05 PEER` and prints `BENCH-RTT <avg ms>`,
then `BENCH-DONE`.

Appends a section to bench/RESULTS.md. Needs root, qemu-system-x86_64, iperf3, busybox, dnsmasq."""

import datetime
import glob
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("NIMBUS_BIN", os.path.join(ROOT, "target", "release", "nimbus"))

from conftest import Nimbus  # noqa: E402

IMAGE_CACHE = os.environ.get("NIMBUS_TEST_IMAGE_DIR", "/tmp/nimbus-test-images")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
IPERF_SECONDS = 10
PINGS = 50
SETTLE_SECONDS = 5
INSTANCE_TYPE = "t3.nano"  # 2 vCPUs, 512 MiB
VCPUS, MEMORY_MIB = 2, 512
ROUND_TIMEOUT = float(os.environ.get("BENCH_ROUND_TIMEOUT", "240"))
BARE_NET = "10.99.0"

# The client's workload, shared by both setups; PEER is substituted. Every line the host
# reads goes to /dev/console.
CLIENT_WORKLOAD = r"""
PEER=@PEER@
say() { echo "$*" > /dev/console; }
say "BENCH-CLIENT-START peer $PEER"
i=0
until ping -c 1 -W 1 "$PEER" > /dev/null 2>&1; do
  i=$((i + 1)); [ $i -ge 120 ] && { say "BENCH-ERROR peer $PEER does not answer ping"; exit 1; }
  sleep 0.5
done
# Both guests finish booting (the nimbus image's init goes on after starting the user data).
sleep @SETTLE@
i=0
until iperf3 -c "$PEER" -t @SECONDS@ -f k > /tmp/iperf.txt 2>&1; do
  i=$((i + 1))
  if [ $i -ge 60 ]; then
    say "BENCH-ERROR iperf3 client keeps failing:"; cat /tmp/iperf.txt > /dev/console; exit 1
  fi
  sleep 1
done
kbps=$(awk '/receiver/ {print $7}' /tmp/iperf.txt)
[ -n "$kbps" ] || { say "BENCH-ERROR no receiver line:"; cat /tmp/iperf.txt > /dev/console; exit 1; }
say "BENCH-TCP $kbps"
ping -c @PINGS@ -i 0.05 "$PEER" > /tmp/ping.txt 2>&1
rtt=$(awk -F/ '/round-trip/ {print $4}' /tmp/ping.txt)
[ -n "$rtt" ] || { say "BENCH-ERROR no round-trip line:"; cat /tmp/ping.txt > /dev/console; exit 1; }
say "BENCH-RTT $rtt $(grep 'packet loss' /tmp/ping.txt)"
say "BENCH-DONE"
"""

SERVER_WORKLOAD = r"""
iperf3 -s -D > /dev/null 2>&1 && echo "BENCH-SERVER-READY" > /dev/console \
  || echo "BENCH-ERROR iperf3 -s failed" > /dev/console
"""


def client_workload(peer):
    return (CLIENT_WORKLOAD.replace("@PEER@", peer).replace("@SECONDS@", str(IPERF_SECONDS))
            .replace("@PINGS@", str(PINGS)).replace("@SETTLE@", str(SETTLE_SECONDS)))


def run(*args, check=True, **kwargs):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kwargs)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


class BenchError(RuntimeError):
    pass


def wait_markers(logs, deadline_seconds, what, alive=None):
    """Waits until the client's log has BENCH-DONE; returns (kbit/s, rtt ms). `logs` maps a
    name to a function returning that console's text; the first one is the client's."""
    names = list(logs)
    deadline = time.time() + deadline_seconds
    while True:
        texts = {name: logs[name]() for name in names}
        client = texts[names[0]]
        errors = [f"{n}: {line}" for n, t in texts.items() for line in t.splitlines() if "BENCH-ERROR" in line]
        dead = alive() if alive else None
        if "BENCH-DONE" in client or errors or dead or time.time() > deadline:
            break
        time.sleep(0.5)
    tcp = re.search(r"BENCH-TCP ([0-9.]+)", client)
    rtt = re.search(r"BENCH-RTT ([0-9.]+)", client)
    if errors or dead or not (tcp and rtt and "BENCH-DONE" in client):
        reason = (f"errors {errors}" if errors else dead if dead else
                  f"no BENCH-DONE within {deadline_seconds:.0f} s")
        consoles = "\n".join(f"--- {n} console (tail) ---\n{tail(texts[n])}" for n in names)
        raise BenchError(f"{what}: {reason}\n{consoles}")
    return float(tcp.group(1)), float(rtt.group(1))


# ---------------------------------------------------------------- nimbus


class NimbusSetup:
    def __init__(self, workdir):
        self.data_dir = os.path.join(workdir, "nimbus-data")
        os.makedirs(self.data_dir)
        binary = os.environ["NIMBUS_BIN"]
        build = run(binary, "image", "build", "--data-dir", self.data_dir, "--cache-dir", IMAGE_CACHE, check=False)
        if build.returncode != 0:
            raise BenchError(f"nimbus image build failed:\n{build.stderr}")
        self.server = Nimbus(self.data_dir).start()
        self.ec2 = self.server.client()
        images = self.ec2.describe_images(Owners=["self"])["Images"]
        self.ami = next(i["ImageId"] for i in images if "minimal" in i.get("Name", ""))
        # A VPC of its own, with no internet gateway: the instances reach each other and IMDS.
        vpc = self.ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
        self.vpc = vpc
        self.subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
        self.group = self.ec2.create_security_group(GroupName="bench-net", Description="iperf3 and ping from itself",
                                                    VpcId=vpc)["GroupId"]
        self.ec2.authorize_security_group_ingress(GroupId=self.group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5201, "ToPort": 5201, "UserIdGroupPairs": [{"GroupId": self.group}]},
            {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "UserIdGroupPairs": [{"GroupId": self.group}]},
        ])

    def launch(self, user_data):
        instance = self.ec2.run_instances(ImageId=self.ami, InstanceType=INSTANCE_TYPE, MinCount=1, MaxCount=1,
                                          SubnetId=self.subnet, SecurityGroupIds=[self.group],
                                          UserData=user_data)["Instances"][0]
        return instance["InstanceId"], instance["PrivateIpAddress"]

    def serial(self, instance_id):
        return read(os.path.join(self.data_dir, "instances", instance_id, "serial.log"))

    def round(self):
        ids = []
        try:
            server_id, server_ip = self.launch("#!/bin/sh\n" + SERVER_WORKLOAD)
            ids.append(server_id)
            client_id, _ = self.launch("#!/bin/sh\n" + client_workload(server_ip))
            ids.append(client_id)

            def alive():
                for i in (i for r in self.ec2.describe_instances(InstanceIds=ids)["Reservations"] for i in r["Instances"]):
                    if i["State"]["Name"] in ("shutting-down", "terminated", "stopped", "stopping"):
                        return f"instance {i['InstanceId']} is {i['State']['Name']}"
                return None

            return wait_markers({f"A {client_id}": lambda: self.serial(client_id),
                                 f"B {server_id} ({server_ip})": lambda: self.serial(server_id)},
                                ROUND_TIMEOUT, "nimbus round", alive)
        finally:
            if ids:
                self.ec2.terminate_instances(InstanceIds=ids)
                deadline = time.time() + 120
                while time.time() < deadline:
                    states = [i["State"]["Name"] for r in self.ec2.describe_instances(InstanceIds=ids)["Reservations"]
                              for i in r["Instances"]]
                    if all(s == "terminated" for s in states):
                        break
                    time.sleep(0.5)

    def close(self):
        """Deletes the VPCs (nimbus tears their namespaces down; a stopped nimbus leaves them,
        for its VMs to survive a restart), then stops the server."""
        try:
            ec2 = self.ec2
            for vpc in ec2.describe_vpcs()["Vpcs"]:
                vpc_id = vpc["VpcId"]
                vpc_filter = [{"Name": "vpc-id", "Values": [vpc_id]}]
                for group in ec2.describe_security_groups(Filters=vpc_filter)["SecurityGroups"]:
                    if group["GroupName"] != "default":
                        ec2.delete_security_group(GroupId=group["GroupId"])
                for subnet in ec2.describe_subnets(Filters=vpc_filter)["Subnets"]:
                    ec2.delete_subnet(SubnetId=subnet["SubnetId"])
                for gateway in ec2.describe_internet_gateways(
                        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])["InternetGateways"]:
                    ec2.detach_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"], VpcId=vpc_id)
                    ec2.delete_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"])
                ec2.delete_vpc(VpcId=vpc_id)
        except Exception as error:  # noqa: BLE001 - cleanup is best effort, the server still stops
            print(f"warning: cleaning the VPCs up failed: {error}", file=sys.stderr)
        finally:
            self.server.stop()
        owners = "/run/nimbus/vpc-owners"
        left = [n for n in (os.listdir(owners) if os.path.isdir(owners) else [])
                if read(os.path.join(owners, n)).startswith(self.data_dir)]
        if left:
            print(f"warning: namespaces left behind (the next nimbus removes them as orphans): {left}",
                  file=sys.stderr)


# ---------------------------------------------------------------- bare VMs


def kernel_and_version():
    # The newest build (the one `nimbus image build` just made or found), by time.
    kernels = sorted((k for k in glob.glob(os.path.join(IMAGE_CACHE, "nimbus-minimal-*", "vmlinux"))
                      if os.path.exists(os.path.join(os.path.dirname(k), "done"))), key=os.path.getmtime)
    if not kernels:
        raise BenchError(f"no nimbus-minimal image in {IMAGE_CACHE}: run `nimbus image build` first")
    kernel = kernels[-1]
    with open(kernel, "rb") as f:
        found = re.search(rb"Linux version (\S+)", f.read())
    if not found:
        raise BenchError(f"no version string in {kernel}")
    return kernel, found.group(1).decode()


def bare_initramfs(workdir, version):
    """busybox, iperf3 and its libraries, the virtio-net modules; /init configures eth0 from
    the kernel command line and runs the server or client workload."""
    root = os.path.join(workdir, "bare-initramfs")
    for d in ("bin", "usr/bin", "dev", "proc", "sys", "tmp", "lib64", f"lib/modules/{version}"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy("/usr/bin/busybox", os.path.join(root, "bin", "busybox"))
    shutil.copy("/usr/bin/iperf3", os.path.join(root, "usr", "bin", "iperf3"))
    for line in run("ldd", "/usr/bin/iperf3").stdout.splitlines():
        parts = line.split()
        library = parts[2] if "=>" in parts and len(parts) > 2 and parts[2].startswith("/") else (
            parts[0] if parts and parts[0].startswith("/") else None)
        if library:
            target = os.path.join(root, library.lstrip("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy(library, target)  # follows symlinks
    shutil.copy("/lib64/ld-linux-x86-64.so.2", os.path.join(root, "lib64"))
    depends = run("modprobe", "-S", version, "--show-depends", "-a", "virtio_pci", "virtio_net").stdout
    modules = sorted({line.split()[1] for line in depends.splitlines() if line.startswith("insmod ")})
    if not any("virtio_net" in m for m in modules):
        raise BenchError(f"modprobe found no virtio_net for {version}:\n{depends}")
    for module in modules:
        shutil.copy(module, os.path.join(root, "lib", "modules", version))
    run("depmod", "-b", root, version)
    init = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
modprobe -a virtio_pci virtio_net
for word in $(cat /proc/cmdline); do
  case "$word" in
    bench.ip=*) IP=${{word#bench.ip=}} ;;
    bench.role=*) ROLE=${{word#bench.role=}} ;;
    bench.peer=*) PEER=${{word#bench.peer=}} ;;
  esac
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
ip link set lo up
ip addr add "$IP/24" dev eth0
ip link set eth0 up
echo "BENCH-BOOTED $ROLE $IP" > /dev/console
if [ "$ROLE" = server ]; then
{SERVER_WORKLOAD}
  exec sleep 100000
fi
cat > /tmp/client.sh <<'EOF'
{client_workload("$PEER")}
EOF
export PEER
sh /tmp/client.sh
exec sleep 100000
"""
    with open(os.path.join(root, "init"), "w") as f:
        f.write(init)
    os.chmod(os.path.join(root, "init"), 0o755)
    image = os.path.join(workdir, "bare-initramfs.img")
    listing = run("find", ".", cwd=root).stdout
    archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=listing.encode(),
                             capture_output=True, check=True).stdout
    with open(image, "wb") as f:
        f.write(subprocess.run(["gzip", "-1"], input=archive, capture_output=True, check=True).stdout)
    return image


class BridgeSetup:
    """A network namespace holding a plain bridge and two taps; the VMs run in it. Subclasses
    say what the VMs boot (`qemu_boot`) and how a round's workload reaches them."""

    label = "bare"

    def __init__(self, workdir):
        self.workdir = workdir
        self.kernel, self.version = kernel_and_version()
        suffix = f"{os.getpid() % 10000}{random.randrange(100)}"
        self.netns = f"nbench-{suffix}"
        self.bridge = "br0"
        self.taps = ["tap-a", "tap-b"]
        run("ip", "netns", "add", self.netns)
        self.ns("ip", "link", "set", "lo", "up")
        self.ns("ip", "link", "add", self.bridge, "type", "bridge")
        for tap in self.taps:
            self.ns("ip", "tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr")
            self.ns("ip", "link", "set", tap, "master", self.bridge)
            self.ns("ip", "link", "set", tap, "up")
        self.ns("ip", "link", "set", self.bridge, "up")
        # A plain bridge: no netfilter on bridged frames (the namespace has no rules anyway).
        for knob in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"):
            self.ns("sh", "-c", f"[ -w /proc/sys/net/bridge/{knob} ] && echo 0 > /proc/sys/net/bridge/{knob} || true")
        rules = self.ns("nft", "list", "ruleset", check=False).stdout.strip()
        if rules:
            raise BenchError(f"the bench namespace has nftables rules:\n{rules}")

    def ns(self, *args, check=True):
        return run("ip", "netns", "exec", self.netns, *args, check=check)

    def vm(self, name, tap, ip, role, peer):
        log = os.path.join(self.workdir, f"{self.label}-{name}.log")
        if os.path.exists(log):
            os.remove(log)
        process = subprocess.Popen([
            "ip", "netns", "exec", self.netns,
            "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max", "-smp", str(VCPUS),
            "-m", f"{MEMORY_MIB}M", "-nodefaults", "-no-user-config", "-display", "none",
            *self.qemu_boot(ip, role, peer),
            "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={mac_of(ip)},romfile=",
            "-chardev", f"file,id=console,path={log}", "-serial", "chardev:console",
        ], stdout=subprocess.DEVNULL, stderr=open(log + ".stderr", "w"))
        return process, log

    def round(self):
        server_ip, client_ip = f"{BARE_NET}.11", f"{BARE_NET}.10"
        processes = []
        try:
            server, server_log = self.vm("b", self.taps[1], server_ip, "server", client_ip)
            processes.append(server)
            client, client_log = self.vm("a", self.taps[0], client_ip, "client", server_ip)
            processes.append(client)

            def alive():
                for p, log in ((server, server_log), (client, client_log)):
                    if p.poll() is not None:
                        return f"qemu exited with {p.returncode}: {tail(read(log + '.stderr'), 10)}"
                return None

            return wait_markers({f"{self.label} A": lambda: read(client_log), f"{self.label} B": lambda: read(server_log)},
                                ROUND_TIMEOUT, f"{self.label} round", alive)
        finally:
            for p in processes:
                p.kill()
            for p in processes:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass

    def close(self):
        run("ip", "netns", "del", self.netns, check=False)


def mac_of(ip):
    return f"52:54:00:99:00:{int(ip.rsplit('.', 1)[1]):02x}"


class BusyboxSetup(BridgeSetup):
    """Bare VMs booting a busybox + iperf3 initramfs that runs the workload from /init."""

    label = "busybox"

    def __init__(self, workdir):
        super().__init__(workdir)
        self.initramfs = bare_initramfs(workdir, self.version)

    def qemu_boot(self, ip, role, peer):
        return ["-kernel", self.kernel, "-initrd", self.initramfs, "-append",
                f"console=ttyS0 quiet panic=-1 cryptomgr.notests bench.ip={ip} bench.role={role} bench.peer={peer}"]


# The instance metadata service of the bare image VMs: a token for the PUT, the user data of
# the asking VM (by its address) and an instance ID; anything else is 404.
METADATA_SERVER = r"""
import http.server, os, sys
directory = sys.argv[1]
class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, body):
        if body is None:
            self.send_response(404); self.end_headers(); return
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_PUT(self):
        self.answer(b"bench-token" if self.path == "/latest/api/token" else None)
    def do_GET(self):
        ip = self.client_address[0]
        if self.path == "/latest/user-data":
            path = os.path.join(directory, ip)
            self.answer(open(path, "rb").read() if os.path.exists(path) else None)
        elif self.path == "/latest/meta-data/instance-id":
            self.answer(f"i-bare-{ip}".encode())
        else:
            self.answer(None)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("169.254.169.254", 80), Handler).serve_forever()
"""


class ImageSetup(BridgeSetup):
    """Bare VMs booting the nimbus-minimal image itself (its kernel, initramfs, command line
    and root volume, discarded at exit) on the plain bridge: dnsmasq answers DHCP with fixed
    addresses, a small metadata service gives each its user data. The same guest as the
    nimbus instances, so only nimbus's network and VM setup differ."""

    label = "image"

    def __init__(self, workdir):
        super().__init__(workdir)
        image = os.path.dirname(self.kernel)
        self.initrd = os.path.join(image, "initrd.img")
        self.rootfs = os.path.join(image, "rootfs.img")
        self.cmdline = read(os.path.join(image, "cmdline")).strip()
        self.user_data = os.path.join(workdir, "image-user-data")
        os.makedirs(self.user_data)
        self.ns("ip", "addr", "add", f"{BARE_NET}.1/24", "dev", self.bridge)
        self.ns("ip", "addr", "add", "169.254.169.254/32", "dev", "lo")
        self.dnsmasq = subprocess.Popen([
            "ip", "netns", "exec", self.netns, "dnsmasq", "--keep-in-foreground", "--port=0",
            f"--interface={self.bridge}", "--bind-interfaces", "--no-resolv", "--no-hosts",
            f"--dhcp-range={BARE_NET}.0,static,255.255.255.0,infinite", "--leasefile-ro",
            *(f"--dhcp-host={mac_of(f'{BARE_NET}.{n}')},{BARE_NET}.{n},infinite" for n in (10, 11)),
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.metadata = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable, "-c", METADATA_SERVER, self.user_data],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def qemu_boot(self, ip, role, peer):
        workload = "#!/bin/sh\n" + (SERVER_WORKLOAD if role == "server" else client_workload(peer))
        with open(os.path.join(self.user_data, ip), "w") as f:
            f.write(workload)
        return ["-kernel", self.kernel, "-initrd", self.initrd, "-append", self.cmdline,
                "-drive", f"file={self.rootfs},format=raw,if=none,id=root,snapshot=on",
                "-device", "virtio-blk-pci,drive=root"]

    def close(self):
        for process in (self.dnsmasq, self.metadata):
            process.kill()
            process.wait()
        super().close()


# ---------------------------------------------------------------- report


def load():
    return os.getloadavg()[0]


SETUPS = (("nimbus", NimbusSetup), ("image", ImageSetup), ("busybox", BusyboxSetup))


def main():
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = load()
    workdir = tempfile.mkdtemp(prefix="nimbus-bench-netvm-")
    results = {name: [] for name, _ in SETUPS}
    setups = {}
    try:
        for name, kind in SETUPS:
            setups[name] = kind(workdir)
        names = list(setups)
        for r in range(ROUNDS):
            # Each round starts with the next setup, so none always runs first or last.
            for name in names[r % len(names):] + names[:r % len(names)]:
                t = time.time()
                kbps, rtt = setups[name].round()
                results[name].append((kbps, rtt))
                print(f"round {r + 1} {name}: {kbps / 1000:.0f} Mbit/s, RTT {rtt:.3f} ms ({time.time() - t:.0f} s,"
                      f" load {load():.1f})", flush=True)
    finally:
        for setup in setups.values():
            setup.close()
    load_end = load()
    shutil.rmtree(workdir, ignore_errors=True)

    def med(name, index):
        return statistics.median(x[index] for x in results[name])

    def each(name, index, fmt):
        return ", ".join(fmt(x[index]) for x in results[name])

    cpu = "unknown CPU"
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mbit = lambda v: f"{v / 1000:.0f}"  # noqa: E731
    ms = lambda v: f"{v:.3f}"  # noqa: E731
    tcp = {name: med(name, 0) / 1000 for name in results}
    rtt = {name: med(name, 1) for name in results}
    table = "\n".join([
        "| measure | nimbus VPC (enforced) | bare VMs, same image, on a bridge | ratio | bare VMs, busybox guest, on a bridge | ratio |",
        "|---|---|---|---|---|---|",
        f"| TCP throughput A→B, iperf3 -t {IPERF_SECONDS} (Mbit/s, higher is better) | {tcp['nimbus']:.0f} ({each('nimbus', 0, mbit)})"
        f" | {tcp['image']:.0f} ({each('image', 0, mbit)}) | **{tcp['nimbus'] / tcp['image']:.2f}x**"
        f" | {tcp['busybox']:.0f} ({each('busybox', 0, mbit)}) | {tcp['nimbus'] / tcp['busybox']:.2f}x |",
        f"| round-trip time, ping -c {PINGS} -i 0.05, average (ms, lower is better) | {rtt['nimbus']:.3f} ({each('nimbus', 1, ms)})"
        f" | {rtt['image']:.3f} ({each('image', 1, ms)}) | **{rtt['image'] / rtt['nimbus']:.2f}x**"
        f" | {rtt['busybox']:.3f} ({each('busybox', 1, ms)}) | {rtt['busybox'] / rtt['nimbus']:.2f}x |",
    ])
    section = f"""
## network with VMs — {started.strftime('%Y-%m-%dT%H:%MZ')}

Machine: {os.cpu_count()} cores ({cpu}), {platform.platform()}; accelerator tcg. Binary: {os.environ['NIMBUS_BIN']}. Two {INSTANCE_TYPE} instances (nimbus-minimal, {VCPUS} vCPU, {MEMORY_MIB} MiB) in a VPC with a security group allowing TCP 5201 and ICMP from itself, against two bare qemu-system-x86_64 of the same shape (q35, -cpu max) on virtio-net taps on a plain Linux bridge in a namespace without nftables rules, booting either the same nimbus-minimal image (kernel, initramfs, command line, root volume; dnsmasq for DHCP, a small metadata service for the user data) or the same kernel with a busybox + iperf3 initramfs. Ratios are nimbus against each (RTT: bare / nimbus). Median of {ROUNDS} rounds, rotating order, values of each round in brackets. Host load average {load_start:.1f} at the start, {load_end:.1f} at the end (`bench/network/vms.py`).

{table}
"""
    print(section)
    return section


if __name__ == "__main__":
    text = main()
    if os.environ.get("BENCH_NO_RESULTS") != "1":
        with open(os.path.join(ROOT, "bench", "RESULTS.md"), "a") as f:
            f.write(text)
