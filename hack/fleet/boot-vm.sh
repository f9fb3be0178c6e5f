#!/bin/sh
# Runs as PID 1's parent inside fresh PID, mount and UTS namespaces (see fleet.py) and
# becomes the VM's systemd. Everything mounted here lives in the VM's own mount namespace,
# so it disappears with the VM's PID 1: nothing to unmount on stop.
set -eu
ROOTFS="$1"; VMDIR="$2"; NAME="$3"
R="$VMDIR/root"
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$VMDIR/upper,workdir=$VMDIR/work" "$R"
hostname "$NAME"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t tmpfs -o mode=755 tmpfs "$R/sys/fs/cgroup"
mkdir -p "$R/sys/fs/cgroup/unified" "$R/sys/fs/cgroup/systemd"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup/unified"
mount -t cgroup -o none,name=systemd cgroup "$R/sys/fs/cgroup/systemd"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mount --rbind /dev "$R/dev"
cd "$R"
exec chroot . env -i container=other PATH=/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd --system --log-target=console
