#!/bin/sh
# The nimbus guest heartbeat: writes "alive <uptime-seconds>" once a second to the
# virtio-serial port named org.nimbus.heartbeat, which the host reads as the guest making
# progress (the instance status check). POSIX sh, for busybox ash and Debian's dash alike.
# Without that port it exits quietly: a guest must boot the same with or without it.
NAME=org.nimbus.heartbeat

find_port() {
  for name_file in /sys/class/virtio-ports/*/name; do
    [ -r "$name_file" ] || continue
    read -r name < "$name_file"
    if [ "$name" = "$NAME" ]; then
      port=${name_file%/name}
      echo "/dev/${port##*/}"
      return 0
    fi
  done
  return 1
}

# The virtio console driver may still be probing when the agent starts.
for _ in 1 2 3 4 5; do
  port=$(find_port) && break
  sleep 1
done
[ -n "$port" ] || exit 0
# A write blocks while no one on the host listens, which only pauses this loop.
exec 3> "$port" || exit 0
while read -r uptime _ < /proc/uptime; do
  echo "alive ${uptime%%.*}" >&3 || exec 3> "$port" || exit 0
  sleep 1
done
