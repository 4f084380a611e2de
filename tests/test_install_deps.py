"""scripts/install-deps.sh decides from the commands it finds, not from package names, and stops
with a clear message when a command is still missing after installing. Run against a PATH that
hides some commands and an `apt-get` that only records what it was asked, so the machine is
left as it is."""

import os
import subprocess

import pytest

from conftest import ROOT

SCRIPT = os.path.join(ROOT, "scripts", "install-deps.sh")


def fake_path(tmp_path, hidden):
    """A PATH with every command of the real one except `hidden`, and a recording apt-get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            target = bin_dir / name
            if name not in hidden and not os.path.lexists(target):
                target.symlink_to(os.path.join(directory, name))
    for name in ("apt-get", "sudo"):
        if os.path.lexists(bin_dir / name):
            (bin_dir / name).unlink()
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/apt-get.log\n')
    (bin_dir / "apt-get").chmod(0o755)
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "sudo").chmod(0o755)
    return str(bin_dir)


@pytest.mark.parametrize("hidden", [{"qemu-img", "qemu-io", "qemu-nbd"}, {"qemu-system-x86_64"}])
def test_qemu_comes_from_one_release_and_a_missing_command_stops_the_install(tmp_path, hidden):
    env = dict(os.environ, PATH=fake_path(tmp_path, hidden))
    result = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    installs = [line for line in (tmp_path / "apt-get.log").read_text().splitlines() if " install " in f" {line} "]
    assert len(installs) == 1
    requested = installs[0].split()
    assert {"qemu-system-x86/bookworm", "qemu-utils/bookworm"} <= set(requested)
    assert "qemu-utils" not in requested and "qemu-system-x86" not in requested
    for command in hidden:
        assert f"command not found: {command}" in result.stderr
    assert "still missing after installing" in result.stderr
