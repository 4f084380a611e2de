#!/usr/bin/env bash
# Builds the nimbus-minimal image from Debian packages only:
#   $OUT/vmlinuz      the Debian cloud kernel
#   $OUT/initrd.img   busybox + virtio modules; mounts /dev/vda and switches to it
#   $OUT/rootfs.img   ext4 root volume: busybox, dropbear, the nimbus guest init
# Usage: build-minimal.sh OUT_DIR   (prints "step N/T name" lines for progress)
set -euo pipefail
OUT=$1
KERNEL=$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -1)
[ -n "$KERNEL" ] || { echo "no Debian cloud kernel in /boot (install linux-image-cloud-amd64)" >&2; exit 1; }
VERSION=${KERNEL#/boot/vmlinuz-}
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk failover net_failover virtio_net button)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

echo "step 1/4 kernel"
cp "$KERNEL" "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"

echo "step 2/4 initramfs"
INITRD=$WORK/initrd
mkdir -p "$INITRD"/{bin,dev,proc,sys,newroot,modules}
cp /usr/bin/busybox "$INITRD/bin/busybox"
for module in "${MODULES[@]}"; do
  path=$(modinfo -k "$VERSION" -n "$module")
  cp "$path" "$INITRD/modules/$module.ko"
done
cat > "$INITRD/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
if grep -q nimbus.probe /proc/cmdline; then echo nimbus-probe-ok > /dev/console; poweroff -f; fi
for module in ${MODULES[*]}; do insmod /modules/\$module.ko 2>/dev/null; done
tries=0
while [ ! -b /dev/vda ] && [ \$tries -lt 300 ]; do sleep 0.05; tries=\$((tries + 1)); done
if ! mount -t ext4 -o rw /dev/vda /newroot; then
  echo "nimbus initramfs: cannot mount the root volume /dev/vda" > /dev/console
  poweroff -f
fi
mkdir -p /newroot/lib/modules
cp /modules/*.ko /newroot/lib/modules/ 2>/dev/null
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
EOF
chmod +x "$INITRD/init"
(cd "$INITRD" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/initrd.img.tmp"
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"

echo "step 3/4 root filesystem"
ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,etc/dropbear,etc/init.d,proc,sys,dev,run,tmp,root/.ssh,var/log,lib/modules,mnt}
cp /usr/bin/busybox "$ROOT/bin/busybox"
for applet in $(/usr/bin/busybox --list); do
  [ -e "$ROOT/bin/$applet" ] || ln -s busybox "$ROOT/bin/$applet"
done
ln -sf /bin/busybox "$ROOT/sbin/init"
cp /usr/sbin/dropbear "$ROOT/usr/sbin/"
cp /usr/bin/dropbearkey "$ROOT/usr/bin/"
for library in $(ldd /usr/sbin/dropbear /usr/bin/dropbearkey | awk '/=>/ {print $3} /ld-linux/ {print $1}' | sort -u); do
  mkdir -p "$ROOT$(dirname "$library")"
  cp -L "$library" "$ROOT$library"
done
mkdir -p "$ROOT/lib64" && cp -L /lib64/ld-linux-x86-64.so.2 "$ROOT/lib64/"
echo "root:x:0:0:root:/root:/bin/sh" > "$ROOT/etc/passwd"
echo "root:*:19000:0:99999:7:::" > "$ROOT/etc/shadow"
echo "root:x:0:" > "$ROOT/etc/group"
echo "/bin/sh" > "$ROOT/etc/shells"
chmod 700 "$ROOT/root" "$ROOT/root/.ssh"
cat > "$ROOT/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
::respawn:/bin/acpid -f -c /etc/acpi
::shutdown:/bin/sh -c 'echo "nimbus-minimal: shutting down" > /dev/console'
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
EOF
mkdir -p "$ROOT/etc/acpi/PWRF"
printf '#!/bin/sh\n/bin/poweroff\n' > "$ROOT/etc/acpi/PWRF/00-poweroff"
chmod +x "$ROOT/etc/acpi/PWRF/00-poweroff"
printf 'PWRF PWRF/00-poweroff\n' > "$ROOT/etc/acpid.conf"
cat > "$ROOT/usr/bin/imds-token" <<'EOF'
#!/bin/sh
# Prints an IMDSv2 session token (busybox wget cannot PUT, so speak HTTP with nc).
printf 'PUT /latest/api/token HTTP/1.0\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: %s\r\n\r\n' "${1:-21600}" \
  | nc 169.254.169.254 80 | sed '1,/^\r*$/d'
EOF
cat > "$ROOT/usr/bin/imds-get" <<'EOF'
#!/bin/sh
# imds-get PATH: fetches /latest/PATH from the instance metadata service with an IMDSv2 token.
token=$(imds-token 300)
wget -q -O - --header "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/$1"
EOF
cat > "$ROOT/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    : > /etc/resolv.conf
    for server in $dns; do echo "nameserver $server" >> /etc/resolv.conf; done
    ;;
esac
EOF
cat > "$ROOT/etc/init.d/rcS" <<'EOF'
#!/bin/sh
# The nimbus guest init: network, key, SSH, user data — as cloud-init would, in busybox.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -o remount,rw /
for module in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk failover net_failover virtio_net button; do
  insmod /lib/modules/$module.ko 2>/dev/null
done
log() { echo "nimbus-minimal: $*" > /dev/console; }
log "booted kernel $(uname -r)"
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -q -n -t 20 -T 1 -s /etc/udhcpc.script > /dev/null 2>&1 || log "no DHCP lease"
ID=$(imds-get meta-data/instance-id)
hostname "$(imds-get meta-data/local-hostname || echo nimbus)"
log "instance $ID"
KEY=$(imds-get meta-data/public-keys/0/openssh-key 2>/dev/null)
if [ -n "$KEY" ]; then
  echo "$KEY" > /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
fi
dropbear -R -E -p 22 2> /var/log/dropbear.log && log "ssh ready"
imds-get user-data > /run/user-data 2>/dev/null
if [ "$(head -c 2 /run/user-data)" = '#!' ]; then
  chmod +x /run/user-data
  log "running user data"
  ( /run/user-data > /var/log/user-data.log 2>&1; log "user data exited with $?" ) &
fi
log "ready"
EOF
chmod +x "$ROOT/usr/bin/imds-token" "$ROOT/usr/bin/imds-get" "$ROOT/etc/udhcpc.script" "$ROOT/etc/init.d/rcS"
cp "$INITRD"/modules/*.ko "$ROOT/lib/modules/"
rm -f "$OUT/rootfs.img.tmp"
mkfs.ext4 -q -F -L nimbus-root -d "$ROOT" "$OUT/rootfs.img.tmp" 256M
mv "$OUT/rootfs.img.tmp" "$OUT/rootfs.img"

echo "step 4/4 done"
echo "console=ttyS0 root=/dev/vda rw panic=-1 quiet" > "$OUT/cmdline"
