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
# The second between beats: where `read -t` exists (busybox ash), a read from a FIFO that
# no one writes waits without starting a process; `sleep` forks and execs every second,
# which costs an emulated guest a few percent of a core. dash has no `read -t`.
WAIT_FIFO=/run/nimbus-heartbeat.wait
if (read -t 0 _ < /dev/null) 2> /dev/null; [ $? -le 1 ] \
  && { [ -p "$WAIT_FIFO" ] || mkfifo "$WAIT_FIFO" 2> /dev/null; } \
  && exec 4<> "$WAIT_FIFO"; then
  pause() { read -t 1 _ <&4; }
else
  pause() { sleep 1; }
fi
# A write blocks while no one on the host listens, which only pauses this loop.
exec 3> "$port" || exit 0
while read -r uptime _ < /proc/uptime; do
  echo "alive ${uptime%%.*}" >&3 || exec 3> "$port" || exit 0
  pause
done
