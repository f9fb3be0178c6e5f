"""The bench fleet: its VMs, the SSH settings every tool must use, and the harness's own
view of the workload's state on each VM (reset, hand-made drift, verification).

Two kinds of fleet: the systemd VMs of hack/fleet/fleet.py ($BENCH_DEV/fleet.json) and
the light hosts of hack/fleet/light.py ($BENCH_DEV/light.json: sshd alone, no init
system), on which the light variant of the workload runs (bench/workload.py).

The harness's own SSH traffic (reset, drift, verify) always happens outside a measured
window, before the sshd log cursor is taken or after the counts are read.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from bench import workload

ROOT = Path(__file__).resolve().parents[1]

#: Every VM's sshd offers only these, so every tool negotiates the same key exchange
#: and cipher (paramiko calls the key exchange by its older alias, @libssh.org).
KEX = "curve25519-sha256"
KEX_ALIASES = ("curve25519-sha256", "curve25519-sha256@libssh.org")
CIPHER = "aes128-gcm@openssh.com"
SSHD_PIN = (
    f"KexAlgorithms {','.join(KEX_ALIASES)}\n"
    f"Ciphers {CIPHER}\n"
    "HostKeyAlgorithms ssh-ed25519\n"
    # Room for the floor's burst of fresh connections (one per VM, but be safe).
    "MaxStartups 100:30:200\n"
)
SSHD_PIN_FILE = "etc/ssh/sshd_config.d/30-bench-crypto.conf"


#: The bench's own environment, apart from the developers' (.dev, 127.0.10.x, 16443,
#: 12379, 9418): every hack/ script the bench calls gets these, never what the caller's
#: shell happens to export for the developers' environment.
BENCH_DEFAULTS = {
    "FLEET_BASE": "120",
    "APISERVER_PORT": "56443",
    "ETCD_PORT": "52379",
    "GIT_PORT": "49418",
}


def bench_setting(name: str) -> str:
    return os.environ.get(f"BENCH_{name}", BENCH_DEFAULTS[name])


def bench_env(dev: Path) -> dict[str, str]:
    """The environment for hack/ scripts acting on the bench's environment only."""
    if dev.resolve() == (ROOT / ".dev").resolve():
        raise SystemExit("the bench never uses the developers' .dev environment")
    env = {**os.environ, "VMGITOPS_DEV": str(dev), "KUBECONFIG": str(dev / "kubeconfig")}
    for name in BENCH_DEFAULTS:
        env[name] = bench_setting(name)
    return env


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: int
    user: str
    key_file: Path
    host_key: str
    #: Host PID of the VM's systemd (its sshd journal and processes are found through it),
    #: or of a light host's sshd (its processes share that sshd's mount namespace).
    pid: int
    #: A light host (hack/fleet/light.py): no systemd, the light workload.
    light: bool = False


def load_fleet(dev: Path, light: bool = False) -> list[Host]:
    """The VMs of fleet.json, or with `light` the light hosts of light.json."""
    entries = json.loads((dev / ("light.json" if light else "fleet.json")).read_text())
    folder = dev / ("light" if light else "fleet")
    hosts = []
    for e in entries:
        key = Path(e["privateKeyFile"])
        if not key.is_absolute():
            key = ROOT / key
        pid = int((folder / e["name"] / "pid").read_text())
        hosts.append(
            Host(
                e["name"], e["address"], int(e["port"]), e["user"], key, e["hostPublicKey"],
                pid, light,
            )
        )  # fmt: skip
    return hosts


def is_light(hosts: Sequence[Host]) -> bool:
    return bool(hosts) and hosts[0].light


def sshd_log_file(dev: Path, h: Host) -> Path:
    """A light host's sshd log (it has no journal), read from its overlay's upper layer."""
    return dev / "light" / h.name / "upper/var/log/sshd.log"


def fleet_up(dev: Path, size: int) -> list[Host]:
    fleet = str(ROOT / "hack/fleet/fleet.py")
    subprocess.run(["python3", fleet, "up", str(size)], check=True, env=bench_env(dev))
    return load_fleet(dev)[:size]


def fleet_exec(dev: Path, name: str, *argv: str) -> None:
    subprocess.run(
        ["python3", str(ROOT / "hack/fleet/fleet.py"), "exec", name, "--", *argv],
        check=True,
        env=bench_env(dev),
        capture_output=True,
    )


def pin_crypto(dev: Path, hosts: Sequence[Host], timeout: float = 120) -> None:
    """Writes the sshd drop-in into each host (through its root) and reloads sshd.

    A light host's sshd is reloaded by SIGHUP (it re-executes itself, same PID, and
    listens again a moment later: waited for, bounded).
    """
    reloaded = []
    for h in hosts:
        path = Path(f"/proc/{h.pid}/root") / SSHD_PIN_FILE
        if path.exists() and path.read_text() == SSHD_PIN:
            continue
        path.write_text(SSHD_PIN)
        if h.light:
            os.kill(h.pid, signal.SIGHUP)
            reloaded.append(h)
        else:
            fleet_exec(dev, h.name, "systemctl", "reload", "ssh.service")
    deadline = time.monotonic() + timeout
    for h in reloaded:
        while not _banner(h):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{h.name}: sshd did not listen again after SIGHUP")
            time.sleep(0.1)


def _banner(h: Host) -> bool:
    try:
        with socket.create_connection((h.address, h.port), timeout=2) as s:
            s.settimeout(5)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def known_hosts_text(hosts: Iterable[Host]) -> str:
    return "".join(f"{h.address} {h.host_key}\n" for h in hosts)


# -- the harness's own SSH ---------------------------------------------------------------


async def _connect(h: Host, kex: Sequence[str] = (KEX,)) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        h.address,
        h.port,
        username=h.user,
        client_keys=[str(h.key_file)],
        known_hosts=([asyncssh.import_public_key(h.host_key)], [], []),
        kex_algs=list(kex),
        encryption_algs=[CIPHER],
        config=None,
        agent_path=None,
        connect_timeout=20,
    )


async def _run_all(
    hosts: Sequence[Host], script_for: Mapping[str, str], limit: int = 32
) -> dict[str, tuple[int, str]]:
    sem = asyncio.Semaphore(limit)

    async def one(h: Host) -> tuple[str, tuple[int, str]]:
        async with sem:
            conn = await _connect(h)
            async with conn:
                r = await conn.run(script_for[h.name], check=False, timeout=120)
        return h.name, (int(r.exit_status or 0), str(r.stdout or ""))

    return dict(await asyncio.gather(*(one(h) for h in hosts)))


def run_all(hosts: Sequence[Host], script: str) -> dict[str, tuple[int, str]]:
    return asyncio.run(_run_all(hosts, {h.name: script for h in hosts}))


def check_pin(hosts: Sequence[Host]) -> str:
    """Proves the pin: the pinned key exchange connects, another one is refused."""

    async def go() -> str:
        h = hosts[0]
        async with await _connect(h):
            pass
        try:
            async with await _connect(h, kex=("ecdh-sha2-nistp256",)):
                pass
        except (asyncssh.Error, OSError):
            return f"{KEX} only (a client offering ecdh-sha2-nistp256 is refused)"
        raise RuntimeError("sshd accepted a key exchange other than the pinned one")

    return asyncio.run(go())


def reset(hosts: Sequence[Host]) -> None:
    script = workload.reset_script(is_light(hosts))
    bad = {n: r for n, r in run_all(hosts, script).items() if r[0] != 0}
    if bad:
        raise RuntimeError(f"reset failed on {sorted(bad)}")


def drift_hosts(hosts: Sequence[Host], percent: float = 1.0) -> list[Host]:
    """The first ceil(percent %) of the hosts, at least one."""
    n = max(1, math.ceil(len(hosts) * percent / 100))
    return list(hosts[:n])


def drift(hosts: Sequence[Host]) -> None:
    run_all(hosts, workload.DRIFT_SCRIPT)


@dataclass(frozen=True)
class VmState:
    conf_sha: str
    loaded_sha: str
    active: str
    entered: str


def state(hosts: Sequence[Host]) -> dict[str, VmState]:
    out = {}
    for name, (_rc, text) in run_all(hosts, workload.state_script(is_light(hosts))).items():
        lines = [*text.splitlines(), "", "", "", ""][:4]
        out[name] = VmState(*(line.strip() for line in lines))
    return out


def verify(
    hosts: Sequence[Host],
    version: str,
    before: Mapping[str, VmState] | None,
    restarted: set[str] | None,
    may_restart: Collection[str] = (),
) -> tuple[dict[str, VmState], list[str]]:
    """Checks the workload's result on every VM; returns the state and the problems.

    `restarted`: the hosts whose service must have (re)started since `before`; every
    other host's service must not have, except those in `may_restart`. None: not checked.
    """
    now = state(hosts)
    problems = []
    light = is_light(hosts)
    for h in hosts:
        s = now[h.name]
        want = workload.expected_sha(h.name, version)
        if s.conf_sha != want:
            problems.append(f"{h.name}: config sha256 {s.conf_sha[:12]} != {want[:12]}")
        if s.loaded_sha != want:
            problems.append(f"{h.name}: the service runs with config {s.loaded_sha[:12]}")
        if s.active != "active":
            problems.append(
                f"{h.name}: the health command {workload.LIGHT_HEALTH_SHELL!r} fails"
                if light
                else f"{h.name}: {workload.UNIT} is {s.active or 'unknown'}"
            )
        if before is not None and restarted is not None:
            did = before.get(h.name) is None or before[h.name].entered != s.entered
            if did and h.name not in restarted and h.name not in may_restart:
                problems.append(f"{h.name}: restarted although its config did not change")
            if not did and h.name in restarted:
                problems.append(f"{h.name}: not restarted although its config changed")
    return now, problems
