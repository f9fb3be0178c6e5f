#!/usr/bin/env python3
"""Lighter hosts: OpenSSH's sshd alone (no systemd, no journal) in its own mount namespace.

Each light host is the cached Debian root file system (hack/fleet/rootfs.sh, the one the
systemd VMs boot from) under a private overlay, so it has its own /etc, /opt and /var,
with fresh tmpfs on /run and /tmp and a /dev holding a handful of device nodes. sshd is
chrooted into it and listens on its own 127.<LIGHT_BASE>.X.Y:22. It shares the host's
PID and network namespaces (a UTS namespace gives it its own hostname) and runs no init
system: that is what makes it light (under 2 MiB each, where a systemd VM costs tens),
and why it suits fleets in the hundreds or thousands.

Same layout as the VMs for the tools: user root, the fleet's user key
($VMGITOPS_DEV/keys/fleet_ed25519) in /root/.ssh/authorized_keys, a generated ed25519
host key. sshd logs (LogLevel VERBOSE, as on the VMs) to /var/log/sshd.log inside the
host, i.e. <dir>/upper/var/log/sshd.log from outside.

    light.py up N        start light1..lightN (those running are kept), write light.json
    light.py down        stop every light host, check that no process or mount is left,
                         remove their files
    light.py status      one line per light host
    light.py capacity    how many light hosts the free memory allows (see --help)

Files: $VMGITOPS_DEV/light/<name>/ per host, $VMGITOPS_DEV/light.json (the same shape as
fleet.json: name, address, port, user, privateKeyFile, hostPublicKey) and
$VMGITOPS_DEV/light/summary.json (boot time and memory of the last `up`).
Only the standard library is used, like fleet.py.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# The systemd fleet's helpers: the cached rootfs, the fleet's user key, the SSH banner
# wait. Importing reads VMGITOPS_DEV the same way, so both fleets share one environment.
from fleet import DEV, ROOT, USER_KEY, ensure_user_key, rootfs, wait_ssh  # noqa: E402

LIGHT_DIR = DEV / "light"
LIGHT_JSON = DEV / "light.json"
SUMMARY = LIGHT_DIR / "summary.json"
#: Second octet of the light hosts' addresses: 127.0.x.y is the developers' and the
#: bench's systemd VMs (FLEET_BASE 10-20 and 120), 127.1.x.y the scale run's simulated
#: hosts; 127.2.x.y is free. A second environment picks another (LIGHT_BASE=3, ...).
LIGHT_BASE = int(os.environ.get("LIGHT_BASE", "2"))
BOOT_TIMEOUT = float(os.environ.get("LIGHT_BOOT_TIMEOUT", "300"))
STOP_TIMEOUT = 30.0
#: What one light host costs, measured (see bench/README.md): sshd's PSS, its tmpfs,
#: overlay and namespace in the kernel. `capacity` divides free memory by this.
COST_BYTES = 4 * 2**20
#: Kept back from whatever the fleet may use: the tools, the operator, the control
#: plane and everything else on the machine need room too.
CAPACITY_SHARE = 0.25
CAPACITY_CAP = 1000

#: Runs in the new mount and UTS namespaces (unshare makes every mount in it private),
#: as the same process that finally becomes sshd, so its PID is the host's PID.
BOOT = r"""
set -eu
lower="$1"; d="$2"; name="$3"; r="$d/root"
hostname "$name"
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$d/upper,workdir=$d/work" "$r"
mount -t proc proc "$r/proc"
mount -t tmpfs -o mode=755,size=16m tmpfs "$r/run"
mount -t tmpfs -o mode=1777,size=64m tmpfs "$r/tmp"
# Not the host's /dev: the nodes a shell, Python and sshd's sessions use, nothing else.
mount -t tmpfs -o mode=755,size=64k tmpfs "$r/dev"
for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r name major minor <<EOF
$n
EOF
  mknod -m 666 "$r/dev/$name" c "$major" "$minor"
done
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"
ln -s /proc/self/fd/1 "$r/dev/stdout"
ln -s /proc/self/fd/2 "$r/dev/stderr"
mkdir -p "$r/run/sshd" "$r/var/log"
chmod 0755 "$r/run/sshd"
cd "$r"
exec chroot . /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  /usr/sbin/sshd -D -E /var/log/sshd.log
"""


def log(msg: str) -> None:
    print(f"[light] {msg}", file=sys.stderr, flush=True)


def address_of(index: int) -> str:
    """light1 -> 127.2.0.1; 250 hosts per /24."""
    i = index - 1
    return f"127.{LIGHT_BASE}.{i // 250}.{i % 250 + 1}"


def host_dir(name: str) -> Path:
    return LIGHT_DIR / name


def prepare(name: str, address: str) -> None:
    """The host's identity, in its overlay's upper layer (once per host)."""
    d = host_dir(name)
    if (d / "prepared").exists():
        return
    for sub in ("upper", "work", "root"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    etc = d / "upper" / "etc"
    (etc / "ssh" / "sshd_config.d").mkdir(parents=True, exist_ok=True)
    (etc / "hostname").write_text(f"{name}\n")
    (etc / "hosts").write_text(f"127.0.0.1 localhost\n{address} {name}\n")
    key = etc / "ssh" / "ssh_host_ed25519_key"
    key.unlink(missing_ok=True)
    key.with_suffix(".pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}", "-f", str(key)],
        check=True,
    )
    # No PAM: its session modules expect logind and a syslog; key authentication alone is
    # what every tool uses. Root's password field is "*", which sshd does not treat as a
    # locked account, so keys work without PAM.
    (etc / "ssh" / "sshd_config.d" / "20-light.conf").write_text(
        f"ListenAddress {address}\nPort 22\nHostKey /etc/ssh/ssh_host_ed25519_key\n"
        "UsePAM no\nPidFile none\n"
    )
    ssh = d / "upper" / "root" / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    ssh.chmod(0o700)
    shutil.copy(USER_KEY.with_suffix(".pub"), ssh / "authorized_keys")
    (ssh / "authorized_keys").chmod(0o600)
    (d / "address").write_text(address)
    (d / "prepared").write_text("")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def mnt_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


OWN_NS = mnt_ns(os.getpid())


def pid_of(name: str) -> int | None:
    """The host PID of the light host's sshd, if it still runs in the host's namespace."""
    d = host_dir(name)
    pid, ns = _read(d / "pid"), _read(d / "mntns")
    if not pid or not ns:
        return None
    return int(pid) if mnt_ns(int(pid)) == ns else None


def boot(name: str, lower: Path) -> None:
    d = host_dir(name)
    console = open(d / "console.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", BOOT,
         "light-boot", str(lower), str(d), name],
        stdin=subprocess.DEVNULL, stdout=console, stderr=console, start_new_session=True,
    )  # fmt: skip
    console.close()
    # unshare and the boot script exec each other, so this PID becomes sshd. Wait until it
    # is in its new namespace, then record both: `down` ends every process in it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ns = mnt_ns(proc.pid)
        if ns is not None and ns != OWN_NS:
            (d / "pid").write_text(str(proc.pid))
            (d / "mntns").write_text(ns)
            return
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    raise RuntimeError(f"{name}: boot failed, see {d / 'console.log'}")


def known_names() -> list[str]:
    if not LIGHT_DIR.exists():
        return []
    names = [p.name for p in LIGHT_DIR.iterdir() if (p / "prepared").exists()]
    return sorted(names, key=lambda n: (len(n), n))


def entry(name: str) -> dict[str, object]:
    d = host_dir(name)
    pub = (d / "upper/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    key = USER_KEY
    return {
        "name": name,
        "address": (d / "address").read_text().strip(),
        "port": 22,
        "user": "root",
        "privateKeyFile": str(key.relative_to(ROOT)) if key.is_relative_to(ROOT) else str(key),
        "hostPublicKey": f"{pub[0]} {pub[1]}",
    }


def write_json(names: list[str]) -> None:
    DEV.mkdir(parents=True, exist_ok=True)
    tmp = LIGHT_JSON.with_suffix(".tmp")
    tmp.write_text(json.dumps([entry(n) for n in names], indent=2) + "\n")
    tmp.replace(LIGHT_JSON)


# -- memory --------------------------------------------------------------------------------


def meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0]) * 1024
    return out


def pss(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def processes_by_ns(namespaces: set[str]) -> dict[int, str]:
    """Host PIDs of every process in one of these mount namespaces."""
    out = {}
    for e in os.scandir("/proc"):
        if e.name.isdigit():
            ns = mnt_ns(int(e.name))
            if ns in namespaces:
                out[int(e.name)] = ns
    return out


def measure_memory(names: list[str]) -> dict[str, float]:
    """PSS of every process of these hosts, and their tmpfs pages (Shmem is machine-wide,
    so the hosts' own share is read from their tmpfs mounts instead)."""
    ns = {n: _read(host_dir(n) / "mntns") or "" for n in names}
    procs = processes_by_ns(set(ns.values()))
    total_pss = sum(pss(p) for p in procs)
    tmpfs = 0
    for n in names:
        pid = pid_of(n)
        if pid is None:
            continue
        for sub in ("run", "tmp", "dev"):
            with contextlib.suppress(OSError):
                st = os.statvfs(f"/proc/{pid}/root/{sub}")
                tmpfs += (st.f_blocks - st.f_bfree) * st.f_frsize
    count = max(1, len(names))
    return {
        "processes": len(procs),
        "pss_per_host": total_pss / count,
        "tmpfs_per_host": tmpfs / count,
    }


# -- up / down -------------------------------------------------------------------------------


def up(n: int) -> dict[str, object]:
    if n < 1:
        raise SystemExit("[light] up: N must be at least 1")
    names = [f"light{i}" for i in range(1, n + 1)]
    lower = rootfs()
    ensure_user_key()
    before = meminfo()
    t0 = time.monotonic()
    to_prepare = [m for m in names if not (host_dir(m) / "prepared").exists()]
    # ssh-keygen per host: a few at a time (the machine has few cores).
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        list(ex.map(lambda m: prepare(m, address_of(int(m.removeprefix("light")))), to_prepare))
    t_prepared = time.monotonic()
    to_boot = [m for m in names if pid_of(m) is None]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        list(ex.map(lambda m: boot(m, lower), to_boot))
    deadline = time.monotonic() + BOOT_TIMEOUT
    addresses = {m: (host_dir(m) / "address").read_text().strip() for m in names}
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as ex:
        answers = dict(
            zip(names, ex.map(lambda m: wait_ssh(addresses[m], deadline), names), strict=True)
        )
    failed = [m for m, ok in answers.items() if not ok]
    if failed:
        raise SystemExit(
            f"[light] sshd did not answer within {BOOT_TIMEOUT:.0f}s on: {', '.join(failed[:20])}"
            f" (see {LIGHT_DIR}/<name>/console.log and upper/var/log/sshd.log)"
        )
    t_up = time.monotonic()
    write_json(names)
    time.sleep(1)  # let the hosts' first allocations settle before reading memory
    after = meminfo()
    mem = measure_memory(names)
    booted = max(1, len(to_boot))
    summary: dict[str, object] = {
        "hosts": n,
        "booted": len(to_boot),
        "prepare_seconds": round(t_prepared - t0, 2),
        "boot_seconds": round(t_up - t_prepared, 2),
        "total_seconds": round(t_up - t0, 2),
        **{k: round(v) for k, v in mem.items()},
        # Machine-wide, so other work on the machine shows up here too: a rough check
        # of the per-process figures above, which miss what the kernel holds per host.
        "memavailable_drop_per_host": round(
            (before["MemAvailable"] - after["MemAvailable"]) / booted
        ),
        "slab_growth_per_host": round((after["Slab"] - before["Slab"]) / booted),
    }
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n")
    log(
        f"{n} light host(s) answer SSH: {len(to_boot)} booted in {t_up - t_prepared:.1f}s "
        f"(+{t_prepared - t0:.1f}s host keys); per host: sshd PSS "
        f"{mem['pss_per_host'] / 2**20:.2f} MiB, tmpfs {mem['tmpfs_per_host'] / 1024:.0f} KiB,"
        f" MemAvailable drop {summary['memavailable_drop_per_host'] / 2**20:.2f} MiB"
        f" (machine-wide), slab {summary['slab_growth_per_host'] / 1024:.0f} KiB"
    )
    return summary


def _leftovers(namespaces: set[str]) -> tuple[dict[int, str], list[str]]:
    """Processes still in those namespaces, and mounts of the host's namespace under
    LIGHT_DIR (there should never be any: every mount is made inside the host's own)."""
    procs = processes_by_ns(namespaces) if namespaces else {}
    prefix = str(LIGHT_DIR) + "/"
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    return procs, mounts


def down() -> None:
    names = known_names()
    namespaces = {ns for n in names if (ns := _read(host_dir(n) / "mntns"))}
    namespaces.discard(OWN_NS or "")
    # sshd first (no new sessions), then whatever its sessions left behind: every process
    # in a host's mount namespace. The namespace, with its overlay and tmpfs mounts,
    # goes away with its last process.
    for n in names:
        pid = pid_of(n)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    sig = signal.SIGTERM
    procs: dict[int, str] = {}
    while time.monotonic() < deadline:
        procs, _ = _leftovers(namespaces)
        if not procs:
            break
        for pid in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(0.2)
        sig = signal.SIGKILL  # sessions get one polite signal
    procs, mounts = _leftovers(namespaces)
    for m in mounts:
        subprocess.run(["umount", "-l", m], check=False)
    if procs:
        raise SystemExit(f"[light] processes left after {STOP_TIMEOUT:.0f}s: {sorted(procs)[:20]}")
    # No process is left in any host's namespace, so the namespaces and their overlays
    # are gone (only a bind mount of /proc/PID/ns/mnt, which nothing here makes, would
    # keep one): their upper layers can go.
    for n in names:
        shutil.rmtree(host_dir(n), ignore_errors=True)
    with contextlib.suppress(OSError):
        SUMMARY.unlink()
    LIGHT_JSON.unlink(missing_ok=True)
    procs, mounts = _leftovers(namespaces)
    left = [n for n in names if host_dir(n).exists()]
    if procs or mounts or left:
        raise SystemExit(
            f"[light] left behind: processes {sorted(procs)[:20]}, mounts "
            f"{mounts[:5]}, folders {left[:5]}"
        )
    log(f"stopped and removed {len(names)} light host(s); no process or mount left")


def capacity(share: float, cap: int, cost: int) -> int:
    avail = meminfo()["MemAvailable"]
    return max(0, min(cap, int(avail * share / cost)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up").add_argument("n", type=int)
    sub.add_parser("down")
    sub.add_parser("status")
    c = sub.add_parser("capacity", help="how many hosts fit: MemAvailable x SHARE / COST, capped")
    c.add_argument("--share", type=float, default=CAPACITY_SHARE)
    c.add_argument("--cap", type=int, default=CAPACITY_CAP)
    c.add_argument("--cost", type=int, default=COST_BYTES, help="bytes per host")
    args = ap.parse_args()
    if args.cmd == "up":
        up(args.n)
    elif args.cmd == "down":
        down()
    elif args.cmd == "capacity":
        print(capacity(args.share, args.cap, args.cost))
    elif args.cmd == "status":
        for n in known_names():
            pid = pid_of(n)
            print(
                f"{n}\t{_read(host_dir(n) / 'address')}\t"
                f"{'running pid ' + str(pid) if pid else 'stopped'}"
            )


if __name__ == "__main__":
    main()
