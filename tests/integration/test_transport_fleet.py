"""The SSH transport against the real fleet (OpenSSH servers in systemd VMs), without the
operator: connection reuse over probe cycles, what one probe cycle costs, and sudo with
a password that never appears in argv, the process table or the journal.

Uses dedicated VMs (vm31, vm35..vm38, started on demand) for everything it counts or
changes, so other tests sharing vm1..vm4 cannot disturb the counts.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import asyncssh
import pytest

from testbed import ROOT, VM
from vmgitops.facts.system import parse_system_facts, system_probe_argv
from vmgitops.transport import (
    Become,
    ConnectionConfig,
    ConnectionPool,
    Pinned,
    PoolLimits,
    SudoPasswordRejected,
    SudoPasswordRequired,
)

pytestmark = pytest.mark.integration

FLEET_PY = ROOT / "hack/fleet/fleet.py"
REUSE_VMS = ("vm35", "vm36", "vm37", "vm38")
SUDO_VM = "vm31"
CYCLES = 5


def dedicated(*names: str) -> list[VM]:
    """Boot these VMs if needed (outside fleet.json: `fleet.py up N` never touches them)."""
    for name in names:
        subprocess.run(["python3", str(FLEET_PY), "start", name], check=True, timeout=300)
    out = subprocess.run(
        ["python3", str(FLEET_PY), "info", *names],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [
        VM(
            d["name"],
            d["address"],
            int(d["port"]),
            d["user"],
            ROOT / d["privateKeyFile"],
            d["hostPublicKey"],
        )
        for d in json.loads(out)
    ]


def journal_cursor(vm: VM) -> str:
    out = vm.ssh("journalctl -u ssh.service -n 0 --show-cursor --no-pager").stdout.decode()
    m = re.search(r"-- cursor: (\S+)", out)
    assert m, out
    return m.group(1)


def sshd_since(vm: VM, cursor: str) -> list[str]:
    return (
        vm.ssh(f"journalctl -u ssh.service --after-cursor='{cursor}' --no-pager -o cat")
        .stdout.decode()
        .splitlines()
    )


def port_of(line: str) -> str:
    m = re.search(r" port (\d+)", line)
    assert m, line
    return m.group(1)


def config(vm: VM, **kw: Any) -> ConnectionConfig:
    return ConnectionConfig(
        target=f"it/{vm.name}",
        address=vm.address,
        port=vm.port,
        user=kw.pop("user", vm.user),
        key=asyncssh.read_private_key(vm.private_key_file),
        host_key_policy=Pinned.from_strings([vm.host_public_key]),
        **kw,
    )


@pytest.fixture(scope="module")
def reuse_vms(fleet: list[VM]) -> list[VM]:
    return dedicated(*REUSE_VMS)


async def probe_all(pool: ConnectionPool, configs: list[ConnectionConfig]) -> list[float]:
    """One probe cycle: the facts command on every VM at once; per-probe seconds."""

    async def one(cfg: ConnectionConfig) -> float:
        started = time.monotonic()
        result = await pool.runner(cfg).run(system_probe_argv(), timeout=30)
        assert result.ok, result
        assert parse_system_facts(result.stdout).hostname
        return time.monotonic() - started

    return list(await asyncio.gather(*(one(c) for c in configs)))


async def test_probe_cycles_reuse_one_connection_per_vm(
    fleet: list[VM], reuse_vms: list[VM], capsys: pytest.CaptureFixture[str]
) -> None:
    vms = [*fleet[:4], *reuse_vms]
    cursors = {vm.name: journal_cursor(vm) for vm in reuse_vms}
    configs = [config(vm) for vm in vms]
    rows: list[tuple[str, int, float, float, float]] = []
    async with ConnectionPool(PoolLimits()) as pool:
        for cycle in range(1 + CYCLES):
            opened = pool.stats.connections_opened
            connect_total = pool.stats.connect_seconds_total
            started = time.monotonic()
            seconds = await probe_all(pool, configs)
            wall = time.monotonic() - started
            rows.append(
                (
                    "cold" if cycle == 0 else f"warm {cycle}",
                    pool.stats.connections_opened - opened,
                    wall,
                    max(seconds),
                    pool.stats.connect_seconds_total - connect_total,
                )
            )
        assert pool.stats.connections_opened == len(vms)
        assert pool.open_connections == len(vms)
    assert rows[0][1] == len(vms)
    assert all(row[1] == 0 for row in rows[1:]), rows
    # What sshd saw: one login per VM, then one session channel per probe on it.
    for vm in reuse_vms:
        lines = sshd_since(vm, cursors[vm.name])
        accepted = [port_of(x) for x in lines if "Accepted publickey" in x]
        sessions = Counter(port_of(x) for x in lines if x.startswith("Starting session: command"))
        pool_ports = [port for port, count in sessions.items() if count >= 1 + CYCLES]
        assert len(pool_ports) == 1, (vm.name, lines)
        assert sessions[pool_ports[0]] == 1 + CYCLES, (vm.name, lines)
        assert accepted.count(pool_ports[0]) == 1, (vm.name, lines)
        # The only other login is the OpenSSH client reading this very journal.
        assert len(accepted) == 2, (vm.name, lines)
    with capsys.disabled():
        print(f"\n[probe cycle cost] {len(vms)} VMs, facts probe (1 command), one pool:")
        print("  cycle     connections  wall ms  slowest ms  connect ms (sum)")
        for name, opened, wall, slowest, connect in rows:
            print(
                f"  {name:8}  {opened:11d}  {wall * 1000:7.1f}  {slowest * 1000:10.1f}"
                f"  {connect * 1000:16.1f}"
            )


SUDO_SETUP = """
set -e
id deploy >/dev/null 2>&1 || useradd -m -s /bin/bash deploy
echo 'deploy:{password}' | chpasswd
install -d -m 700 -o deploy -g deploy /home/deploy/.ssh
install -m 600 -o deploy -g deploy /root/.ssh/authorized_keys /home/deploy/.ssh/authorized_keys
echo 'deploy ALL=(ALL:ALL) ALL' > /etc/sudoers.d/deploy
chmod 440 /etc/sudoers.d/deploy
visudo -cq
"""


def setup_sudo_user(vm: VM, password: str) -> None:
    """A login user `deploy` whose sudo asks for its password (no NOPASSWD)."""
    vm.ssh("bash -s", input=SUDO_SETUP.format(password=password).encode())


@pytest.fixture(scope="module")
def sudo_vm(fleet: list[VM]) -> Iterator[tuple[VM, str]]:
    (vm,) = dedicated(SUDO_VM)
    password = "pw-" + secrets.token_hex(12)
    setup_sudo_user(vm, password)
    yield vm, password


async def test_sudo_without_password_is_sudo_password_required_at_once(
    sudo_vm: tuple[VM, str],
) -> None:
    vm, _ = sudo_vm
    async with ConnectionPool() as pool:
        runner = pool.runner(config(vm, user="deploy", become=Become()))
        started = time.monotonic()
        with pytest.raises(SudoPasswordRequired):
            await runner.run(["id", "-u"], timeout=20)
        assert time.monotonic() - started < 10
        # The login itself works: only sudo wanted a password.
        plain = pool.runner(config(vm, user="deploy"))
        assert (await plain.run(["id", "-un"])).stdout == b"deploy\n"


async def test_wrong_sudo_password_is_rejected(sudo_vm: tuple[VM, str]) -> None:
    vm, _ = sudo_vm
    async with ConnectionPool() as pool:
        runner = pool.runner(config(vm, user="deploy", become=Become(password=b"wrong-one")))
        with pytest.raises(SudoPasswordRejected) as caught:
            await runner.run(["id", "-u"], timeout=30)
        assert "wrong-one" not in str(caught.value)


async def test_sudo_password_goes_to_stdin_never_to_argv(sudo_vm: tuple[VM, str]) -> None:
    vm, password = sudo_vm
    cursor = vm.ssh("journalctl -n 0 --show-cursor --no-pager").stdout.decode()
    all_cursor = re.search(r"-- cursor: (\S+)", cursor).group(1)  # type: ignore[union-attr]
    async with ConnectionPool() as pool:
        runner = pool.runner(config(vm, user="deploy", become=Become(password=password.encode())))
        assert (await runner.run(["id", "-u"])).stdout == b"0\n"
        seconds = 6
        long = asyncio.create_task(runner.run(["sleep", str(seconds)], timeout=30))
        tables: list[str] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not long.done():
            table = (
                await asyncio.to_thread(vm.ssh, "ps -eo user,pid,ppid,args --no-headers")
            ).stdout.decode()
            tables.append(table)
            if f"sleep {seconds}" in table:
                break
            await asyncio.sleep(0.2)
        result = await long
        assert result.ok
    seen = "\n".join(tables)
    assert f"sleep {seconds}" in seen, "never saw the long command running"
    assert password not in seen
    sudo_lines = [
        line.split(None, 3)[3]
        for line in seen.splitlines()
        if line.split(None, 3)[3:] and line.split(None, 3)[3].startswith("sudo ")
    ]
    # `-p ''` shows as two spaces: the argv is exactly ours, with no secret in it.
    assert f"sudo -k -S -p  -u root -- sleep {seconds}" in sudo_lines, seen
    journal = vm.ssh(f"journalctl --after-cursor='{all_cursor}' --no-pager -o cat").stdout
    assert b"COMMAND=/usr/bin/sleep" in journal or b"COMMAND=/bin/sleep" in journal
    assert password.encode() not in journal
