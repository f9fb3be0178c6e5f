#!/usr/bin/env bash
# Builds the shared, read-only root file system every fleet VM boots from (the lower
# layer of each VM's overlay), once, and caches it outside the repository.
# Bump ROOTFS_REV when the package list or the tweaks below change.
set -euo pipefail
ROOTFS_REV=3
CACHE="${VMGITOPS_CACHE:-$HOME/.cache/vmgitops}"
ROOTFS="$CACHE/rootfs-bookworm-r$ROOTFS_REV"
if [[ -f "$ROOTFS/.vmgitops-ready" ]]; then echo "$ROOTFS"; exit 0; fi
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >&2; }
rm -rf "$ROOTFS.tmp"; mkdir -p "$CACHE"
echo "[fleet] debootstrap into $ROOTFS (about a minute)" >&2
# sudo: become tests; python3 + curl: the example service and HTTP checks, as on most real VMs.
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,openssh-server,dbus,iproute2,sudo,curl,python3,procps,ca-certificates \
  bookworm "$ROOTFS.tmp" >&2
R="$ROOTFS.tmp"
# No terminal inside these machines: the gettys would fail and make the system "degraded".
for u in console-getty.service getty@tty1.service getty.target systemd-logind.service \
         systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
         fstrim.timer systemd-tmpfiles-clean.timer dpkg-db-backup.timer; do
  ln -sf /dev/null "$R/etc/systemd/system/$u"
done
rm -f "$R"/etc/ssh/ssh_host_*
# sshd logs to the journal; keep it small and keep it in memory.
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\n' > "$R/etc/systemd/journald.conf.d/vmgitops.conf"
mkdir -p "$R/etc/ssh/sshd_config.d"
# VERBOSE logs each auth attempt and key fingerprint, which the tests read.
printf 'LogLevel VERBOSE\nUseDNS no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n' \
  > "$R/etc/ssh/sshd_config.d/10-vmgitops.conf"
echo 'deb http://deb.debian.org/debian bookworm main' > "$R/etc/apt/sources.list"
rm -rf "$R/var/cache/apt/archives/"*.deb "$R/var/lib/apt/lists/"* 2>/dev/null || true
touch "$R/.vmgitops-ready"
mv "$R" "$ROOTFS"
echo "$ROOTFS"
