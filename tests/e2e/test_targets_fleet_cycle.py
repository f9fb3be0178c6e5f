"""The operator's probe cycles over a fleet reuse one SSH connection per VM, and what a
cycle costs, read from the operator's own /metrics and from sshd's journals."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from test_targets_reasons import dedicated, metrics_text, vmt
from test_targets_walking_skeleton import apply, get, journal_cursor, reachable_with, ssh_secret

from testbed import VM, eventually, kubectl

pytestmark = pytest.mark.e2e

os.environ.setdefault("VMGITOPS_METRICS_ADDRESS", "127.0.0.1")
os.environ.setdefault("VMGITOPS_METRICS_PORT", "0")

DEDICATED = ("vm35", "vm36", "vm37", "vm38")
CYCLES = 3


def samples(operator_log: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in metrics_text(operator_log).splitlines():
        if line.startswith("vmgitops_"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


def total(s: dict[str, float], prefix: str) -> float:
    """Sum over every label set of one metric."""
    return sum(v for k, v in s.items() if k == prefix or k.startswith(prefix + "{"))


def port_of(line: str) -> str:
    m = re.search(r" port (\d+)", line)
    assert m, line
    return m.group(1)


def operator_lines(operator_log: Path, namespace: str) -> list[str]:
    """The operator's debug lines about this namespace's targets."""
    marker = "[vmgitops."
    return [
        line.split("] ", 1)[1]
        for line in operator_log.read_text(errors="replace").splitlines()
        if marker in line and f"] {namespace}/" in line
    ]


def per_target(lines: list[str], pattern: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for line in lines:
        m = re.match(rf"(\S+?): {pattern}", line)
        if m:
            found.setdefault(m.group(1).split("/", 1)[1], []).append(float(m.group(2)))
    return found


def test_probe_cycles_reuse_connections_and_cost(
    namespace: str, operator: Path, fleet: list[VM], capsys: pytest.CaptureFixture[str]
) -> None:
    extra = dedicated(*DEDICATED)
    vms = [*fleet[:4], *extra]
    names = {vm.name for vm in vms}
    cursors = {vm.name: journal_cursor(vm) for vm in extra}
    before = samples(operator)
    apply(ssh_secret(namespace, "fleet-ssh", vms[0].private_key))
    started = time.monotonic()
    for vm in vms:
        apply(vmt(namespace, vm.name, vm))
    for vm in vms:
        reachable_with(namespace, vm.name, "True")
    first_reachable = time.monotonic() - started
    versions = {vm.name: get(namespace, vm.name)["metadata"]["resourceVersion"] for vm in extra}

    # Several probe cycles: every target probed CYCLES more times after its first probe.
    def cycles_done() -> dict[str, list[float]] | None:
        probes = per_target(operator_lines(operator, namespace), r"probed in ([0-9.]+) ms: (\w+)")
        done = set(probes) == names and all(len(p) >= 1 + CYCLES for p in probes.values())
        return probes if done else None

    probes = eventually(cycles_done, timeout=60, interval=1, what=f"{CYCLES} probe cycles")
    lines = operator_lines(operator, namespace)
    opened = per_target(lines, r"SSH connection opened in ([0-9.]+) ms")
    # One connection per VM, whatever the number of probes.
    assert sorted(opened) == sorted(names), opened
    assert all(len(times) == 1 for times in opened.values()), opened
    assert not [x for x in lines if "SSH connection closed" in x or "connect failed" in x]

    # The operator's metrics agree (other namespaces may add to them).
    after = samples(operator)
    connects = total(after, "vmgitops_ssh_connect_seconds_count") - total(
        before, "vmgitops_ssh_connect_seconds_count"
    )
    assert connects >= len(vms)
    assert after['vmgitops_targets{reason="Connected"}'] >= len(vms)
    assert after["vmgitops_ssh_open_connections"] >= len(vms)
    assert total(after, "vmgitops_probes_total") - total(before, "vmgitops_probes_total") >= len(
        vms
    ) * (1 + CYCLES)

    # sshd's view on the dedicated VMs: the operator's connection logged in once and
    # then ran one session per probe. (Each test session's operator watches only its own
    # namespaces, so no other operator on this machine connects to these VMs.)
    for vm in extra:
        journal = vm.ssh(
            f"journalctl -u ssh.service --after-cursor='{cursors[vm.name]}' --no-pager -o cat"
        ).stdout.decode()
        sessions = Counter(
            port_of(x) for x in journal.splitlines() if x.startswith("Starting session: command")
        )
        accepted = [port_of(x) for x in journal.splitlines() if "Accepted publickey" in x]
        operator_ports = [p for p, n in sessions.items() if n >= 1 + CYCLES]
        assert len(operator_ports) == 1, (vm.name, journal)
        assert accepted.count(operator_ports[0]) == 1, (vm.name, journal)

    # Probes that find the same state write nothing and post no Event.
    for vm in extra:
        assert get(namespace, vm.name)["metadata"]["resourceVersion"] == versions[vm.name]
        events = json.loads(
            kubectl(
                "-n",
                namespace,
                "get",
                "events",
                "--field-selector",
                f"involvedObject.name={vm.name}",
                "-o",
                "json",
            )
        )["items"]
        connected = [e for e in events if e["reason"] == "Connected"]
        assert len(connected) == 1, events

    cold = sum(times[0] for times in probes.values())
    warm_cycles = [sum(times[i] for times in probes.values()) for i in range(1, 1 + CYCLES)]
    with capsys.disabled():
        print(
            f"\n[operator probe cycles] {len(vms)} targets, probe interval 5s: all Reachable "
            f"{first_reachable:.1f}s after creation; connections opened: {len(vms)} in all "
            f"(connect {sum(t[0] for t in opened.values()) / len(opened):.0f} ms each on "
            f"average), 0 per later cycle"
        )
        print(
            f"  probe time summed over the fleet: first cycle {cold:.0f} ms (with connects), "
            + ", ".join(f"cycle {i + 2} {t:.0f} ms" for i, t in enumerate(warm_cycles))
            + f" (0 connections each; mean probe {sum(warm_cycles) / CYCLES / len(vms):.0f} ms)"
        )
