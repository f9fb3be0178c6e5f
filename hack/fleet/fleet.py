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

VMs inside their own network namespaces (for bastion tests), addresses in 10.213.0.0/16:

    fleet.py up-private NAME --via BASTION
                         boot BASTION (if needed) in its own network namespace, linked to
                         the host by a veth pair (host 10.213.B.1, BASTION 10.213.B.2), and
                         NAME in another one linked only to BASTION's (BASTION 10.213.P.5,
                         NAME 10.213.P.6). BASTION does not forward, and the host routes
                         10.213.0.0/16 nowhere (an "unreachable" route), so NAME is
                         reachable from BASTION only and no packet leaves the machine.
                         Prints both VMs as JSON (the entries of fleet.json, plus "netns",
                         "via", "linkAddress": BASTION's address on NAME's link).
    fleet.py info NAME...   the fleet.json entries of these VMs, as JSON
    fleet.py exec NAME -- CMD...
                         run CMD inside the VM (its namespaces and root), from the host
    fleet.py remove NAME    stop a VM and delete it, with its network namespace and links
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
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
    net = net_config(name)
    enter = ["nsenter", f"--net=/run/netns/{net['netns']}", "--"] if net else []
    proc = subprocess.Popen(
        [*enter, "unshare", "--pid", "--fork", "--mount", "--uts", "--kill-child",
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
        if not (vm_dir(name) / "prepared").exists():
            index = int(name.removeprefix("vm"))
            prepare(name, address_of(index))
        if pid_of(name) is None:
            boot(name, base)
        to_wait.append(name)
    deadline = time.monotonic() + BOOT_TIMEOUT
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(64, len(to_wait) or 1)) as ex:
        answers = ex.map(lambda n: wait_vm(n, deadline), to_wait)
        results = dict(zip(to_wait, answers, strict=True))
    failed = [n for n, ok in results.items() if not ok]
    if failed:
        raise SystemExit(f"[fleet] no login within {BOOT_TIMEOUT:.0f}s (sshd silent, or "
                         f"/run/nologin left by systemd-user-sessions) on: {', '.join(failed)} "
                         "(see .dev/fleet/<vm>/console.log)")
    log(f"{len(names)} VM(s) answer SSH and allow logins after {time.monotonic() - t0:.1f}s")


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


# -- VMs in their own network namespaces ----------------------------------------------

NET_PREFIX = "10.213"
NETNS_PREFIX = "vmgitops-"
NET_FILE = "net.json"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["ip", *args], check=check, capture_output=True)


def net_config(name: str) -> dict[str, object] | None:
    """The network of a VM booted in its own namespace; None for the host's VMs."""
    f = vm_dir(name) / NET_FILE
    if not f.exists():
        return None
    data: dict[str, object] = json.loads(f.read_text())
    return data


#: Tells this checkout's namespaces and links from another checkout's (a CI clone).
DEV_TAG = hashlib.sha256(str(DEV.resolve()).encode()).hexdigest()[:4]


def _netns(name: str) -> str:
    return f"{NETNS_PREFIX}{name}-{DEV_TAG}"


def _free_index() -> int:
    used = {int(str(c["index"])) for n in known_names() if (c := net_config(n))}
    # Another checkout's bastions have their host links here too: never share a subnet.
    host_addrs = ip("-o", "-4", "addr", "show", check=False).stdout.decode()
    for i in range(1, 251):
        if i not in used and f" {NET_PREFIX}.{i}." not in host_addrs:
            return i
    raise SystemExit("[fleet] no free 10.213.x.0/24 left")


def _drop_route_if_unused() -> None:
    """The guard route goes only when no checkout has a namespace VM left."""
    netns_dir = Path("/run/netns")
    if netns_dir.exists() and any(p.name.startswith(NETNS_PREFIX) for p in netns_dir.iterdir()):
        return
    ip("route", "del", "unreachable", f"{NET_PREFIX}.0.0/16", check=False)


def _ensure_host_route() -> None:
    # More specific than the default route: nothing for 10.213/16 ever leaves the machine.
    # The connected /30 of each bastion's host link is more specific still.
    ip("route", "replace", "unreachable", f"{NET_PREFIX}.0.0/16")


def _netns_up(ns: str) -> None:
    if not Path(f"/run/netns/{ns}").exists():
        ip("netns", "add", ns)
    ip("-n", ns, "link", "set", "lo", "up")
    # New namespaces do not forward; say so explicitly, it is what the tests rely on.
    subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "sh", "-c",
                    "echo 0 > /proc/sys/net/ipv4/ip_forward"], check=True)


def _check_name(name: str) -> None:
    if not name.replace("-", "").isalnum() or not name[:1].isalpha() or len(name) > 20:
        raise SystemExit(f"[fleet] {name!r}: use letters, digits and '-', at most 20")


def _prepare_bastion(name: str) -> None:
    """A VM in its own namespace, reachable from the host through one veth pair."""
    _check_name(name)
    if (vm_dir(name) / "prepared").exists():
        if net_config(name) is None:
            raise SystemExit(f"[fleet] {name} runs in the host's network namespace, so everything "
                             "it reaches the host reaches too; pick a new name for the bastion")
        return
    i = _free_index()
    ns, host_if = _netns(name), f"vmg{DEV_TAG}b{i}"
    address = f"{NET_PREFIX}.{i}.2"
    _ensure_host_route()
    _netns_up(ns)
    ip("link", "del", host_if, check=False)
    ip("link", "add", host_if, "type", "veth", "peer", "name", "host0", "netns", ns)
    ip("addr", "add", f"{NET_PREFIX}.{i}.1/30", "dev", host_if)
    ip("link", "set", host_if, "up")
    ip("-n", ns, "addr", "add", f"{address}/30", "dev", "host0")
    ip("-n", ns, "link", "set", "host0", "up")
    prepare(name, address)
    (vm_dir(name) / NET_FILE).write_text(json.dumps(
        {"index": i, "netns": ns, "via": None, "hostInterface": host_if}) + "\n")


def _prepare_private(name: str, via: str) -> None:
    """A VM in its own namespace whose only link goes to the bastion's namespace."""
    _check_name(name)
    bastion = net_config(via)
    if bastion is None:
        raise SystemExit(f"[fleet] {via} is not a bastion in its own network namespace")
    if (vm_dir(name) / "prepared").exists():
        mine = net_config(name)
        if mine is None or mine.get("via") != via:
            raise SystemExit(f"[fleet] {name} exists and is not behind {via}")
        return
    i = _free_index()
    ns, bns = _netns(name), str(bastion["netns"])
    address, link_address = f"{NET_PREFIX}.{i}.6", f"{NET_PREFIX}.{i}.5"
    _netns_up(ns)
    ip("-n", bns, "link", "del", f"p{i}", check=False)
    ip("-n", bns, "link", "add", f"p{i}", "type", "veth", "peer", "name", "uplink0", "netns", ns)
    ip("-n", bns, "addr", "add", f"{link_address}/30", "dev", f"p{i}")
    ip("-n", bns, "link", "set", f"p{i}", "up")
    ip("-n", ns, "addr", "add", f"{address}/30", "dev", "uplink0")
    ip("-n", ns, "link", "set", "uplink0", "up")
    prepare(name, address)
    (vm_dir(name) / NET_FILE).write_text(json.dumps(
        {"index": i, "netns": ns, "via": via, "linkAddress": link_address}) + "\n")


#: Run inside a VM: succeeds once logins are allowed. systemd-tmpfiles writes /run/nologin
#: early in boot and systemd-user-sessions.service removes it; in a boot storm that unit
#: can time out or fail, and then pam_nologin refuses every login but root's for good,
#: although sshd answers. Starting the unit is a no-op when it is already active, and
#: waits for it (or starts it again) otherwise.
ALLOW_LOGINS = ("timeout 60 systemctl start systemd-user-sessions.service >/dev/null 2>&1; "
                "test ! -e /run/nologin && test ! -e /etc/nologin")


def allow_logins(name: str, deadline: float) -> bool:
    """Whether the VM lets users log in (see ALLOW_LOGINS), retried until `deadline`."""
    while time.monotonic() < deadline:
        pid = pid_of(name)
        if pid is None:
            return False
        cmd = ["nsenter", "-t", str(pid), "-m", "-u", "-p", "-n", "-r", "-w",
               "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "sh", "-c", ALLOW_LOGINS]
        try:
            if subprocess.run(cmd, capture_output=True, timeout=90, check=False).returncode == 0:
                return True
        except subprocess.TimeoutExpired:
            pass
        time.sleep(1)
    return False


def wait_vm(name: str, deadline: float) -> bool:
    """Whether the VM accepts logins: sshd answers, asked from where it is reachable, and
    systemd-user-sessions has let users in."""
    return _wait_sshd(name, deadline) and allow_logins(name, deadline)


def _wait_sshd(name: str, deadline: float) -> bool:
    address = (vm_dir(name) / "address").read_text().strip()
    net = net_config(name)
    if net is None or not net.get("via"):
        return wait_ssh(address, deadline)
    via = net_config(str(net["via"]))
    assert via is not None
    seconds = max(1.0, deadline - time.monotonic())
    done = subprocess.run(["nsenter", f"--net=/run/netns/{via['netns']}", sys.executable,
                           str(Path(__file__).resolve()), "_wait-ssh", address, str(seconds)],
                          check=False)
    return done.returncode == 0


def info(name: str) -> dict[str, object]:
    if not (vm_dir(name) / "prepared").exists():
        raise SystemExit(f"[fleet] no VM {name}")
    data = entry(name)
    net = net_config(name)
    if net is not None:
        data["netns"] = net["netns"]
        data["via"] = net.get("via")
        if net.get("linkAddress"):
            data["linkAddress"] = net["linkAddress"]
    data["running"] = pid_of(name) is not None
    return data


def up_private(name: str, via: str) -> list[dict[str, object]]:
    raise_limits()
    ensure_user_key()
    _prepare_bastion(via)
    start([via])
    _prepare_private(name, via)
    start([name])
    return [info(via), info(name)]


def exec_in(name: str, argv: list[str]) -> int:
    """Run argv inside the VM: its mount, UTS, PID and network namespaces, its root."""
    pid = pid_of(name)
    if pid is None:
        raise SystemExit(f"[fleet] {name} is not running")
    if not argv:
        raise SystemExit("[fleet] exec: no command")
    cmd = ["nsenter", "-t", str(pid), "-m", "-u", "-p", "-n", "-r", "-w",
           "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", *argv]
    return subprocess.run(cmd, check=False).returncode


def _drop_network(name: str) -> None:
    net = net_config(name)
    if net is None:
        return
    if net.get("hostInterface"):
        ip("link", "del", str(net["hostInterface"]), check=False)
    via = net_config(str(net["via"])) if net.get("via") else None
    if via is not None:
        ip("-n", str(via["netns"]), "link", "del", f"p{net['index']}", check=False)
    ip("netns", "del", str(net["netns"]), check=False)


def remove(name: str) -> None:
    """Stop a VM and delete its overlay, network namespace and links."""
    dependents = [n for n in known_names() if (c := net_config(n)) and c.get("via") == name]
    for n in dependents:
        remove(n)
    stop(name, remove=False)
    _drop_network(name)
    stop(name, remove=True)
    _drop_route_if_unused()


def remove_networks() -> None:
    """For `down`: this checkout's namespaces and links (by their tag), then the route."""
    netns_dir = Path("/run/netns")
    if netns_dir.exists():
        for ns in netns_dir.iterdir():
            if ns.name.startswith(NETNS_PREFIX) and ns.name.endswith(f"-{DEV_TAG}"):
                ip("netns", "del", ns.name, check=False)
    links = ip("-o", "link", "show", check=False).stdout.decode()
    for line in links.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            ifname = parts[1].strip().split("@")[0]
            if ifname.startswith(f"vmg{DEV_TAG}b"):
                ip("link", "del", ifname, check=False)
    _drop_route_if_unused()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up")
    up.add_argument("n", type=int)
    sub.add_parser("down")
    sub.add_parser("status")
    for c in ("stop", "start"):
        sub.add_parser(c).add_argument("name")
    private = sub.add_parser("up-private")
    private.add_argument("name")
    private.add_argument("--via", required=True, metavar="BASTION")
    sub.add_parser("info").add_argument("names", nargs="+")
    ex_p = sub.add_parser("exec")
    ex_p.add_argument("name")
    ex_p.add_argument("argv", nargs=argparse.REMAINDER)
    sub.add_parser("remove").add_argument("name")
    waiter = sub.add_parser("_wait-ssh")  # internal: run inside a network namespace
    waiter.add_argument("address")
    waiter.add_argument("seconds", type=float)
    args = ap.parse_args()
    if args.cmd == "up":
        names = [f"vm{i}" for i in range(1, args.n + 1)]
        start(names)
        write_fleet_json(names)
    elif args.cmd == "down":
        names = known_names()
        for n in names:  # their namespaces first, while their net.json still exists
            if net_config(n) is not None:
                stop(n, remove=False)
                _drop_network(n)
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
            list(ex.map(lambda n: stop(n, remove=True), names))
        remove_networks()
        FLEET_JSON.unlink(missing_ok=True)
        log(f"stopped and removed {len(names)} VM(s)")
    elif args.cmd == "stop":
        stop(args.name, remove=False)
    elif args.cmd == "start":
        start([args.name])
    elif args.cmd == "up-private":
        entries = up_private(args.name, args.via)
        print(json.dumps(entries, indent=2))
    elif args.cmd == "info":
        print(json.dumps([info(n) for n in args.names], indent=2))
    elif args.cmd == "exec":
        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        raise SystemExit(exec_in(args.name, argv))
    elif args.cmd == "remove":
        remove(args.name)
    elif args.cmd == "_wait-ssh":
        ok = wait_ssh(args.address, time.monotonic() + args.seconds)
        raise SystemExit(0 if ok else 1)
    elif args.cmd == "status":
        for n in known_names():
            pid = pid_of(n)
            print(f"{n}\t{(vm_dir(n) / 'address').read_text().strip()}\t"
                  f"{'running pid ' + str(pid) if pid else 'stopped'}")


if __name__ == "__main__":
    main()
