#!/usr/bin/env python3
"""The local fleet: real systemd machines reached over OpenSSH on loopback addresses.

Each VM is the cached Debian root file system (hack/fleet/rootfs.sh) under a private
overlay, booted with systemd as PID 1 in its own PID, mount and UTS namespaces, with sshd
on its own 127.0.X.Y:22. Only the standard library is used so that this runs before the
project's virtualenv exists.

    fleet.py up N        start vm1..vmN (those already running are kept), write .dev/fleet.json
    fleet.py down        stop every VM and remove its overlay
    fleet.py stop NAME   stop one VM (its files are kept; `start` boots it again)
    fleet.py start NAME  boot one stopped VM
    fleet.py status      one line per VM
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV = Path(os.environ.get("VMGITOPS_DEV", ROOT / ".dev"))
FLEET_DIR = DEV / "fleet"
KEYS = DEV / "keys"
USER_KEY = KEYS / "fleet_ed25519"
FLEET_JSON = DEV / "fleet.json"
HERE = Path(__file__).resolve().parent
BOOT_TIMEOUT = float(os.environ.get("FLEET_BOOT_TIMEOUT", "180"))
#: Third octet of the first VM's address; a second checkout (a CI run beside a developer's
#: environment) picks another so the two fleets never share an address.
FLEET_BASE = int(os.environ.get("FLEET_BASE", "10"))


def log(msg: str) -> None:
    print(f"[fleet] {msg}", file=sys.stderr, flush=True)


def address_of(index: int) -> str:
    """vm1 -> 127.0.10.1; 250 VMs per /24 so thousands fit in 127.0.0.0/8."""
    i = index - 1
    return f"127.0.{FLEET_BASE + i // 250}.{i % 250 + 1}"


def rootfs() -> Path:
    out = subprocess.run(
        ["bash", str(HERE / "rootfs.sh")], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def raise_limits() -> None:
    # systemd takes several inotify instances per VM; the defaults stop at about 20 VMs.
    for key, value in (("fs/inotify/max_user_instances", 8192),
                       ("fs/inotify/max_user_watches", 1048576)):
        path = Path("/proc/sys") / key
        try:
            if int(path.read_text()) < value:
                path.write_text(str(value))
        except OSError as exc:
            log(f"cannot raise {key}: {exc}")


def ensure_user_key() -> None:
    KEYS.mkdir(parents=True, exist_ok=True)
    if not USER_KEY.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vmgitops-fleet",
                        "-f", str(USER_KEY)], check=True)
    USER_KEY.chmod(0o600)


def vm_dir(name: str) -> Path:
    return FLEET_DIR / name


def prepare(name: str, address: str) -> None:
    """Writes the VM's identity into its overlay's upper layer (done once per VM)."""
    d = vm_dir(name)
    upper = d / "upper"
    if (d / "prepared").exists():
        return
    for sub in ("upper", "work", "root"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    etc = upper / "etc"
    (etc / "ssh" / "sshd_config.d").mkdir(parents=True, exist_ok=True)
    (etc / "hostname").write_text(f"{name}\n")
    (etc / "hosts").write_text(f"127.0.0.1 localhost\n{address} {name}\n")
    (etc / "machine-id").write_text(uuid.uuid4().hex + "\n")
    key = etc / "ssh" / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}",
                    "-f", str(key)], check=True)
    (etc / "ssh" / "sshd_config.d" / "20-listen.conf").write_text(
        f"ListenAddress {address}\nPort 22\nHostKey /etc/ssh/ssh_host_ed25519_key\n"
    )
    ssh = upper / "root" / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    ssh.chmod(0o700)
    shutil.copy(USER_KEY.with_suffix(".pub"), ssh / "authorized_keys")
    (ssh / "authorized_keys").chmod(0o600)
    # Under a boot storm these time out and mark the VM "degraded"; the journal is volatile
    # anyway and nothing reads utmp here. systemd-sysctl would write the host's kernel
    # settings (most sysctls are not namespaced), which a VM must never do.
    units = etc / "systemd" / "system"
    units.mkdir(parents=True, exist_ok=True)
    for unit in ("systemd-journal-flush.service", "systemd-update-utmp-runlevel.service",
                 "systemd-update-utmp.service", "systemd-sysctl.service"):
        (units / unit).unlink(missing_ok=True)
        (units / unit).symlink_to("/dev/null")
    (d / "address").write_text(address)
    (d / "prepared").write_text("")


def pid_of(name: str) -> int | None:
    """Host PID of the VM's systemd (the unshare child), if it is running."""
    f = vm_dir(name) / "pid"
    if not f.exists():
        return None
    try:
        pid = int(f.read_text())
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return None
    return pid


def boot(name: str, base: Path) -> int:
    d = vm_dir(name)
    console = open(d / "console.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount", "--uts", "--kill-child",
         "sh", str(HERE / "boot-vm.sh"), str(base), str(d), name],
        stdin=subprocess.DEVNULL, stdout=console, stderr=console, start_new_session=True,
    )
    console.close()
    (d / "unshare.pid").write_text(str(proc.pid))
    # The VM's PID 1 is unshare's only child; record its host PID so that stop can kill it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            kids = []
        if kids:
            (d / "pid").write_text(kids[0])
            return int(kids[0])
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{name}: boot failed, see {d / 'console.log'}")


def wait_ssh(address: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, 22), timeout=2) as s:
                s.settimeout(5)
                if s.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def entry(name: str) -> dict[str, object]:
    d = vm_dir(name)
    pub = (d / "upper/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    return {
        "name": name,
        "address": (d / "address").read_text().strip(),
        "port": 22,
        "user": "root",
        "privateKeyFile": str(USER_KEY.relative_to(ROOT)) if USER_KEY.is_relative_to(ROOT)
        else str(USER_KEY),
        "hostPublicKey": f"{pub[0]} {pub[1]}",
    }


def known_names() -> list[str]:
    if not FLEET_DIR.exists():
        return []
    names = [p.name for p in FLEET_DIR.iterdir() if (p / "prepared").exists()]
    return sorted(names, key=lambda n: (len(n), n))


def write_fleet_json(names: list[str]) -> None:
    DEV.mkdir(parents=True, exist_ok=True)
    tmp = FLEET_JSON.with_suffix(".tmp")
    tmp.write_text(json.dumps([entry(n) for n in names], indent=2) + "\n")
    tmp.replace(FLEET_JSON)


def start(names: list[str]) -> None:
    base = rootfs()
    raise_limits()
    ensure_user_key()
    t0 = time.monotonic()
    to_wait = []
    for name in names:
        index = int(name.removeprefix("vm"))
        prepare(name, address_of(index))
        if pid_of(name) is None:
            boot(name, base)
        to_wait.append(name)
    deadline = time.monotonic() + BOOT_TIMEOUT
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(64, len(to_wait) or 1)) as ex:
        answers = ex.map(
            lambda n: wait_ssh((vm_dir(n) / "address").read_text().strip(), deadline), to_wait)
        results = dict(zip(to_wait, answers, strict=True))
    failed = [n for n, ok in results.items() if not ok]
    if failed:
        raise SystemExit(f"[fleet] sshd did not answer within {BOOT_TIMEOUT:.0f}s on: "
                         f"{', '.join(failed)} (see .dev/fleet/<vm>/console.log)")
    log(f"{len(names)} VM(s) answer SSH after {time.monotonic() - t0:.1f}s")


def stop(name: str, *, remove: bool) -> None:
    d = vm_dir(name)
    for f in ("pid", "unshare.pid"):
        p = d / f
        if p.exists():
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(p.read_text()), signal.SIGKILL)
            p.unlink()
    # PID 1 dying takes the whole namespace (and its mounts) with it; wait for that.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _mounted(d / "root"):
        time.sleep(0.1)
    if remove:
        if _mounted(d / "root"):
            subprocess.run(["umount", "-l", str(d / "root")], check=False)
        shutil.rmtree(d, ignore_errors=True)


def _mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up")
    up.add_argument("n", type=int)
    sub.add_parser("down")
    sub.add_parser("status")
    for c in ("stop", "start"):
        sub.add_parser(c).add_argument("name")
    args = ap.parse_args()
    if args.cmd == "up":
        names = [f"vm{i}" for i in range(1, args.n + 1)]
        start(names)
        write_fleet_json(names)
    elif args.cmd == "down":
        names = known_names()
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
            list(ex.map(lambda n: stop(n, remove=True), names))
        FLEET_JSON.unlink(missing_ok=True)
        log(f"stopped and removed {len(names)} VM(s)")
    elif args.cmd == "stop":
        stop(args.name, remove=False)
    elif args.cmd == "start":
        start([args.name])
    elif args.cmd == "status":
        for n in known_names():
            pid = pid_of(n)
            print(f"{n}\t{(vm_dir(n) / 'address').read_text().strip()}\t"
                  f"{'running pid ' + str(pid) if pid else 'stopped'}")


if __name__ == "__main__":
    main()
