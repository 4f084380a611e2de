#!/usr/bin/env bash
# Builds the debian-12 root filesystem: debootstrap (bookworm) with systemd, cloud-init using
# its real EC2 datasource, openssh-server and python3. It boots with the nimbus-minimal kernel
# and initramfs, and runs the nimbus heartbeat agent (nimbus-heartbeat.sh beside this script).
# Usage: build-debian12.sh OUT_DIR [MIRROR]   (prints "step N/T name" lines)
set -euo pipefail
OUT=$1
HEARTBEAT_AGENT=$(dirname "$0")/nimbus-heartbeat.sh
MIRROR=${2:-http://deb.debian.org/debian}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
mkdir -p "$OUT"

echo "step 1/3 debootstrap"
debootstrap --variant=minbase \
  --include=systemd-sysv,udev,kmod,python3-cffi-backend,cloud-init,openssh-server,python3,ifupdown,isc-dhcp-client,iproute2,netbase,curl \
  bookworm "$ROOT" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }

echo "step 2/3 configure"
echo "/dev/vda / ext4 defaults,discard 0 1" > "$ROOT/etc/fstab"
echo "debian" > "$ROOT/etc/hostname"
cat > "$ROOT/etc/cloud/cloud.cfg.d/99-nimbus.cfg" <<'EOF'
# nimbus serves the EC2 instance metadata service at the usual address.
datasource_list: [ Ec2, None ]
datasource:
  Ec2:
    metadata_urls: [ "http://169.254.169.254" ]
    strict_id: false
    timeout: 5
    max_wait: 60
EOF
# ds-identify cannot recognise the platform from DMI: let cloud-init run regardless.
echo "policy: enabled" > "$ROOT/etc/cloud/ds-identify.cfg"
printf 'auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n' > "$ROOT/etc/network/interfaces"
install -m 755 "$HEARTBEAT_AGENT" "$ROOT/usr/local/sbin/nimbus-heartbeat"
cat > "$ROOT/etc/systemd/system/nimbus-heartbeat.service" <<'EOF'
[Unit]
Description=nimbus heartbeat on the virtio-serial port org.nimbus.heartbeat
# Early in boot, ordered after nothing, so it neither waits for nor delays other units.
DefaultDependencies=no

[Service]
ExecStart=/usr/local/sbin/nimbus-heartbeat
Restart=on-failure

[Install]
WantedBy=sysinit.target
EOF
mkdir -p "$ROOT/etc/systemd/system/sysinit.target.wants"
ln -s /etc/systemd/system/nimbus-heartbeat.service "$ROOT/etc/systemd/system/sysinit.target.wants/nimbus-heartbeat.service"
rm -f "$ROOT"/etc/ssh/ssh_host_*
rm -rf "$ROOT/var/cache/apt/archives"/*.deb "$ROOT/var/lib/apt/lists"/*

echo "step 3/3 filesystem"
rm -f "$OUT/rootfs.img.tmp"
mkfs.ext4 -q -F -L debian-root -d "$ROOT" "$OUT/rootfs.img.tmp" 2G
mv "$OUT/rootfs.img.tmp" "$OUT/rootfs.img"
# The boot options of nimbus-minimal (build-minimal.sh says why).
echo "console=ttyS0 root=/dev/vda rw net.ifnames=0 panic=-1 cryptomgr.notests pcie_ports=compat" > "$OUT/cmdline"
