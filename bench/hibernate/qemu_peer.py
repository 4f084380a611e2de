"""The peer of the hibernation benchmark: QEMU's own `migrate` of a bare guest to a file and
back, with nothing of nimbus. A q35 guest of the given memory boots the image's kernel with
its root file system served by qemu-nbd over a unix socket (as nimbus's guests reach their
volumes over NBD); once it runs, it is stopped, its state migrated to a file through a
descriptor passed with `getfd` (`migrate fd:`), QEMU quits, and a new QEMU started with
`-incoming defer` takes the state back (`migrate-incoming fd:`) and continues. The migration
bandwidth is nimbus's (`max-bandwidth` 8 GiB/s).

Usable alone (`python3 qemu_peer.py KERNEL INITRD ROOTFS`) or imported by bench.py."""

import array
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


# As nimbus sets it (compute/src/hibernation.rs): a stopped guest written to a local file.
MAX_BANDWIDTH = 8 << 30


class Qmp:
    def __init__(self, path):
        deadline = time.time() + 30
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.reader = self.sock.makefile("r")
        json.loads(self.reader.readline())
        self.execute("qmp_capabilities")

    def execute(self, command, fd=None, **arguments):
        message = json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n"
        if fd is None:
            self.sock.sendall(message)
        else:
            self.sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        while True:
            reply = json.loads(self.reader.readline())
            if "event" in reply:
                continue
            if "error" in reply:
                raise RuntimeError(f"{command}: {reply['error']}")
            return reply["return"]

    def wait_migration(self, incoming=False):
        while True:
            if incoming:
                status = self.execute("query-status")["status"]
                if status not in ("inmigrate",):
                    return status
            else:
                status = self.execute("query-migrate").get("status")
                if status == "completed":
                    return status
                if status in ("failed", "cancelled"):
                    raise RuntimeError(f"migration {status}")
            time.sleep(0.01)


def qemu(work, kernel, initrd, cmdline, memory_mib, vcpus, extra=()):
    args = ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max", "-smp", str(vcpus),
            "-m", f"{memory_mib}M", "-nodefaults", "-no-user-config", "-display", "none",
            "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
            "-qmp", f"unix:{work}/qmp.sock,server=on,wait=off",
            "-chardev", f"file,id=console,path={work}/console.log,append=on",
            "-serial", "chardev:console",
            "-device", "pcie-root-port,id=rp0,chassis=1,slot=1",
            "-blockdev", json.dumps({"driver": "nbd", "node-name": "nbd0", "export": "",
                                     "server": {"type": "unix", "path": f"{work}/nbd.sock"}}),
            "-blockdev", json.dumps({"driver": "raw", "node-name": "disk0", "file": "nbd0"}),
            "-device", "virtio-blk-pci,drive=disk0,bus=rp0",
            "-pidfile", f"{work}/qemu.pid", "-daemonize", *extra]
    if os.path.exists("/usr/share/qemu/qboot.rom"):
        args += ["-bios", "/usr/share/qemu/qboot.rom"]
    subprocess.run(args, check=True)
    qmp = Qmp(f"{work}/qmp.sock")
    qmp.pid = int(open(f"{work}/qemu.pid").read())
    return qmp


def wait_console(work, marker, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(f"{work}/console.log", "rb") as f:
                if marker in f.read():
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{marker!r} not on the console")


def wait_gone(pid):
    """Until QEMU has exited: a zombie has (the daemonized QEMU waits for init to reap it,
    which can take seconds in a container; nimbus counts a zombie as gone too)."""
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.01)


def run(kernel, initrd, rootfs, cmdline, memory_mib=1024, vcpus=2, boot_marker=b"login", settle=0, work=None):
    """Boots until `boot_marker` is on the console and `settle` seconds more, migrates to a
    file and back; returns (save seconds, bytes, resume seconds)."""
    work = work or tempfile.mkdtemp(prefix="hibernate-peer-")
    disk = f"{work}/root.img"
    shutil.copyfile(rootfs, disk)
    nbd = subprocess.Popen(["qemu-nbd", "--persistent", "--shared=4", "-f", "raw",
                            "--socket", f"{work}/nbd.sock", disk])
    try:
        while not os.path.exists(f"{work}/nbd.sock"):
            time.sleep(0.01)
        qmp = qemu(work, kernel, initrd, cmdline, memory_mib, vcpus)
        wait_console(work, boot_marker)
        time.sleep(settle)
        state = f"{work}/memory.state"
        started = time.time()
        fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        qmp.execute("stop")
        qmp.execute("migrate-set-parameters", **{"max-bandwidth": MAX_BANDWIDTH})
        qmp.execute("getfd", fd=fd, fdname="state")
        qmp.execute("migrate", uri="fd:state")
        qmp.wait_migration()
        os.fsync(fd)
        os.close(fd)
        qmp.execute("quit")
        wait_gone(qmp.pid)
        saved = time.time() - started
        size = os.path.getsize(state)
        started = time.time()
        qmp = qemu(work, kernel, initrd, cmdline, memory_mib, vcpus, extra=["-incoming", "defer"])
        fd = os.open(state, os.O_RDONLY)
        qmp.execute("getfd", fd=fd, fdname="state")
        qmp.execute("migrate-incoming", uri="fd:state")
        qmp.wait_migration(incoming=True)
        qmp.execute("cont")
        os.close(fd)
        resumed = time.time() - started
        status = qmp.execute("query-status")["status"]
        qmp.execute("quit")
        wait_gone(qmp.pid)
        assert status == "running", status
        return saved, size, resumed
    finally:
        nbd.terminate()
        nbd.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    kernel, initrd, rootfs = sys.argv[1:4]
    cmdline = "console=ttyS0 root=/dev/vda rw panic=-1 quiet pcie_ports=compat"
    print(run(kernel, initrd, rootfs, cmdline, boot_marker=b"booted kernel"))
