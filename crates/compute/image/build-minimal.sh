#!/usr/bin/env bash
# Builds the nimbus-minimal image from Debian packages only:
#   $OUT/vmlinux      the Debian cloud kernel, uncompressed for PVH boot (or its bzImage)
#   $OUT/initrd.img   busybox + virtio modules; mounts /dev/vda and switches to it
#   $OUT/rootfs.img   ext4 root volume: busybox, bash, curl, iperf3, dropbear, the nimbus
#                     guest init and heartbeat agent (nimbus-heartbeat.sh beside this script)
# Usage: build-minimal.sh OUT_DIR   (prints "step N/T name" lines for progress)
# Boot time matters (docs/images.md): the guest path from /init to the user data is kept
# short, and every step it takes was measured.
set -euo pipefail
OUT=$1
HEARTBEAT_AGENT=$(dirname "$0")/nimbus-heartbeat.sh
KERNEL=$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -1)
[ -n "$KERNEL" ] || { echo "no Debian cloud kernel in /boot (install linux-image-cloud-amd64)" >&2; exit 1; }
VERSION=${KERNEL#/boot/vmlinuz-}
# The root disk's drivers load first: the root is mounted while the others load.
DISK_MODULES=(virtio_pci virtio_blk)
OTHER_MODULES=(virtio_net virtio_console button)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

# extract_vmlinux BZIMAGE OUT: the kernel ELF inside a bzImage, as the kernel's
# scripts/extract-vmlinux finds it, if it has a PVH entry point (Xen ELF note 18).
extract_vmlinux() {
  local pair magic tool offset
  for pair in '\x02\x21\x4c\x18:unlz4' '\x28\xb5\x2f\xfd:unzstd' '\xfd\x37\x7a\x58\x5a\x00:unxz' '\x1f\x8b\x08:gunzip'; do
    magic=${pair%%:*}
    tool=${pair#*:}
    command -v "$tool" > /dev/null || continue
    for offset in $(LC_ALL=C grep -obUaP "$magic" "$1" | cut -d: -f1); do
      # The compressed kernel is followed by other data: the decompressor's complaint about
      # it is expected, the ELF header says whether the kernel came out whole.
      tail -c +$((offset + 1)) "$1" | "$tool" > "$2" 2> /dev/null || true
      if readelf -h "$2" > /dev/null 2>&1; then
        readelf -n "$2" | grep -q 'Unknown note type: (0x00000012)' && return 0
        return 1
      fi
    done
  done
  return 1
}

echo "step 1/4 kernel"
# Booting the ELF through its PVH entry skips the firmware's real-mode setup and the
# decompression of the bzImage: half a second of a TCG boot (docs/images.md).
if ! extract_vmlinux "$KERNEL" "$OUT/vmlinux.tmp"; then
  echo "no PVH kernel inside $KERNEL: booting the bzImage" >&2
  cp "$KERNEL" "$OUT/vmlinux.tmp"
fi
mv "$OUT/vmlinux.tmp" "$OUT/vmlinux"

echo "step 2/4 initramfs"
INITRD=$WORK/initrd
mkdir -p "$INITRD"/{bin,dev,proc,sys,newroot} "$INITRD/lib/modules/$VERSION"
cp /usr/bin/busybox "$INITRD/bin/busybox"
# The modules with what they depend on, and a modules.dep: one modprobe loads a whole chain
# (every program started costs tens of milliseconds under TCG).
for module in $(modprobe -S "$VERSION" --show-depends "${DISK_MODULES[@]}" "${OTHER_MODULES[@]}" -a \
  | awk '$1 == "insmod" {print $2}' | sort -u); do
  cp "$module" "$INITRD/lib/modules/$VERSION/"
done
depmod -b "$INITRD" "$VERSION" 2> /dev/null
cat > "$INITRD/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
read -r cmdline < /proc/cmdline
case "\$cmdline" in *nimbus.probe*) echo nimbus-probe-ok > /dev/console; poweroff -f ;; esac
modprobe -a ${DISK_MODULES[*]}
# The network, console and power button drivers load while the root volume is mounted.
modprobe -a ${OTHER_MODULES[*]} &
tries=0
while [ ! -b /dev/vda ] && [ \$tries -lt 300 ]; do sleep 0.05; tries=\$((tries + 1)); done
if ! mount -t ext4 -o rw /dev/vda /newroot; then
  echo "nimbus initramfs: cannot mount the root volume /dev/vda" > /dev/console
  poweroff -f
fi
wait
# The root's init finds /proc, /sys and /dev mounted (a root without the directories
# mounts its own).
for fs in /proc /sys /dev; do mount --move \$fs /newroot\$fs 2>/dev/null || umount \$fs; done
exec switch_root /newroot /sbin/init
EOF
chmod +x "$INITRD/init"
(cd "$INITRD" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/initrd.img.tmp"
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"

echo "step 3/4 root filesystem"
ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,etc/dropbear,etc/init.d,etc/ssl/certs,proc,sys,dev,run,tmp,root/.ssh,var/log,mnt}
# copy_with_libraries SOURCE TARGET: a dynamically linked program and the libraries it needs.
copy_with_libraries() {
  mkdir -p "$ROOT$(dirname "$2")"
  cp -L "$1" "$ROOT$2"
  local library
  for library in $(ldd "$1" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
    mkdir -p "$ROOT$(dirname "$library")"
    cp -L "$library" "$ROOT$library"
  done
}
copy_with_libraries /usr/bin/bash /bin/bash
copy_with_libraries /usr/bin/curl /usr/bin/curl
copy_with_libraries /usr/bin/iperf3 /usr/bin/iperf3
copy_with_libraries /usr/sbin/dropbear /usr/sbin/dropbear
copy_with_libraries /usr/bin/dropbearkey /usr/bin/dropbearkey
mkdir -p "$ROOT/lib64" && cp -L /lib64/ld-linux-x86-64.so.2 "$ROOT/lib64/"
cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/" 2>/dev/null || true
# busybox provides everything else, nc and httpd included.
cp /usr/bin/busybox "$ROOT/bin/busybox"
for applet in $(/usr/bin/busybox --list); do
  [ -e "$ROOT/bin/$applet" ] || ln -s busybox "$ROOT/bin/$applet"
done
ln -sf /bin/busybox "$ROOT/sbin/init"
install -m 755 "$HEARTBEAT_AGENT" "$ROOT/usr/sbin/nimbus-heartbeat"
echo "root:x:0:0:root:/root:/bin/sh" > "$ROOT/etc/passwd"
echo "root:*:19000:0:99999:7:::" > "$ROOT/etc/shadow"
echo "root:x:0:" > "$ROOT/etc/group"
printf '/bin/sh\n/bin/bash\n' > "$ROOT/etc/shells"
printf '127.0.0.1 localhost\n' > "$ROOT/etc/hosts"
printf 'hosts: files dns\n' > "$ROOT/etc/nsswitch.conf"
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
# The boot path speaks to IMDS with busybox (static, so it starts fast under TCG): nc for the
# token's PUT, which busybox wget cannot send, and wget for the rest. curl is for users.
# Under TCG every program started costs tens of milliseconds, so the path from init to the
# user data starts as few as it can, and uses shell builtins for the rest.
cat > "$ROOT/usr/bin/imds-token" <<'EOF'
#!/bin/sh
# Prints an IMDSv2 session token: the last line of the response, after its headers.
printf 'PUT /latest/api/token HTTP/1.0\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: %s\r\n\r\n' "${1:-21600}" \
  | nc 169.254.169.254 80 | { while IFS= read -r line || [ -n "$line" ]; do token=$line; done; echo "$token"; }
EOF
cat > "$ROOT/usr/bin/imds-get" <<'EOF'
#!/bin/sh
# imds-get PATH: fetches /latest/PATH from the instance metadata service, with the session
# token of $IMDS_TOKEN or a new one.
token=${IMDS_TOKEN:-$(imds-token 300)}
exec wget -q -O - --header "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/$1"
EOF
# Any DHCP server will do (dnsmasq on a VPC, slirp): the primary interface takes the
# default route, DNS servers, search domain and hostname (option 12); others only addresses.
# A renewal (every half lease, or `kill -USR1` of udhcpc) rewrites resolv.conf, so a new DHCP
# options set reaches a running guest; the address is only replaced if it changed, so
# connections survive a renewal.
cat > "$ROOT/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
  bound|renew)
    if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/"; then
      ip addr flush dev "$interface"
      ip addr add "$ip/${mask:-24}" dev "$interface"
    fi
    if [ "$interface" != eth0 ]; then
      # Said on the console, where a hot-plugged card's address can be seen.
      [ "$1" = bound ] && echo "nimbus-minimal: $interface has $ip" > /dev/console
      exit 0
    fi
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    {
      [ -n "$domain" ] && echo "search $domain"
      for server in $dns; do echo "nameserver $server"; done
    } > /etc/resolv.conf
    if [ -n "$hostname" ]; then
      echo "$hostname" > /proc/sys/kernel/hostname
      grep -v "^$ip " /etc/hosts > /run/hosts.new 2> /dev/null
      echo "$ip $hostname${domain:+ $hostname.${domain%% *}}" >> /run/hosts.new
      cat /run/hosts.new > /etc/hosts
      rm -f /run/hosts.new
    fi
    ;;
esac
EOF
# Every card but eth0, at boot or hot-plugged later (AttachNetworkInterface on a running
# instance), gets a DHCP client that sets only its address; the client of a card that was
# unplugged is stopped. A card is known by its ifindex, so a new card that takes the name of
# one just unplugged still gets a client.
cat > "$ROOT/usr/sbin/nimbus-nics" <<'EOF'
#!/bin/sh
mkdir -p /run/nics
# The second between passes is a read from a FIFO no one writes: a `sleep` would fork and
# exec every second, which an emulated guest feels (the heartbeat agent waits the same way).
[ -p /run/nics.wait ] || mkfifo /run/nics.wait
exec 4<> /run/nics.wait
while :; do
  for path in /sys/class/net/eth*; do
    interface=${path##*/}
    [ -e "$path" ] && [ "$interface" != eth0 ] || continue
    read -r index < "$path/ifindex" 2> /dev/null || continue
    if [ -e "/run/nics/$interface" ]; then
      read -r pid known < "/run/nics/$interface"
      [ "$known" = "$index" ] && continue
      kill "$pid" 2> /dev/null
    fi
    ip link set "$interface" up
    udhcpc -i "$interface" -f -t 20 -T 1 -s /etc/udhcpc.script > /dev/null 2>&1 &
    echo "$! $index" > "/run/nics/$interface"
  done
  for record in /run/nics/*; do
    interface=${record##*/}
    [ -e "$record" ] && [ ! -e "/sys/class/net/$interface" ] || continue
    read -r pid known < "$record"
    kill "$pid" 2> /dev/null
    rm -f "$record"
    echo "nimbus-minimal: $interface removed" > /dev/console
  done
  read -t 1 _ <&4
done
EOF
cat > "$ROOT/etc/init.d/rcS" <<'EOF'
#!/bin/sh
# The nimbus guest init: network, user data, key, SSH — as cloud-init would, in busybox.
# The user data starts as soon as the network is up; SSH is set up while it runs.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/class ] || mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
log() { echo "nimbus-minimal: $*" > /dev/console; }
read -r release < /proc/sys/kernel/osrelease
log "booted kernel $release"
nimbus-heartbeat < /dev/null > /dev/null 2>&1 &
ip link set eth0 up
# Not -q: once it has a lease the client stays, in the background, and renews it.
udhcpc -i eth0 -n -t 20 -T 1 -s /etc/udhcpc.script > /dev/null 2>&1 || log "no DHCP lease"
IMDS_TOKEN=$(imds-token 21600)
export IMDS_TOKEN
wget -q -O /run/user-data --header "X-aws-ec2-metadata-token: $IMDS_TOKEN" \
  http://169.254.169.254/latest/user-data 2> /dev/null
{ read -r -n 2 interpreter < /run/user-data; } 2> /dev/null
if [ "$interpreter" = '#!' ]; then
  chmod +x /run/user-data
  log "running user data"
  ( unset IMDS_TOKEN; /run/user-data > /var/log/user-data.log 2>&1; log "user data exited with $?" ) &
fi
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
ip link set lo up
# Extra interfaces (secondary ENIs), now and hot-plugged later, get leases in the background.
nimbus-nics < /dev/null > /dev/null 2>&1 &
log "instance $(imds-get meta-data/instance-id 2> /dev/null)"
read -r hostname < /proc/sys/kernel/hostname
[ "$hostname" != "(none)" ] || imds-get meta-data/local-hostname > /proc/sys/kernel/hostname 2> /dev/null
KEY=$(imds-get meta-data/public-keys/0/openssh-key 2> /dev/null)
if [ -n "$KEY" ]; then
  echo "$KEY" > /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
fi
# -R: host keys are made at the first connection, not at boot.
dropbear -R -E -p 22 2> /var/log/dropbear.log && log "ssh ready"
log "ready"
EOF
chmod +x "$ROOT/usr/bin/imds-token" "$ROOT/usr/bin/imds-get" "$ROOT/etc/udhcpc.script" "$ROOT/etc/init.d/rcS" \
  "$ROOT/usr/sbin/nimbus-nics"
rm -f "$OUT/rootfs.img.tmp"
mkfs.ext4 -q -F -L nimbus-root -d "$ROOT" "$OUT/rootfs.img.tmp" 256M
mv "$OUT/rootfs.img.tmp" "$OUT/rootfs.img"

echo "step 4/4 done"
# cryptomgr.notests: the crypto self-tests take a third of a second of a TCG boot.
# pcie_ports=compat: the root ports' native services (AER, PME, native hot-plug) are not
# probed, a few tenths of a second on nimbus's 16 ports; QEMU's q35 hot-plugs through ACPI.
echo "console=ttyS0 root=/dev/vda rw panic=-1 quiet cryptomgr.notests pcie_ports=compat" > "$OUT/cmdline"
