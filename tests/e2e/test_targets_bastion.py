"""The bastion path, for real: a VM inside a network namespace that only the bastion VM
can reach (hack/fleet/fleet.py up-private), reached by the operator through the bastion
with the same host key rules for both hops."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_targets_reasons import reason_is, vmt
from test_targets_walking_skeleton import (
    AUTH_WORDS,
    apply,
    get,
    other_key,
    reachable_with,
    ssh_secret,
)

from testbed import ROOT, VM

pytestmark = pytest.mark.e2e

os.environ.setdefault("VMGITOPS_METRICS_ADDRESS", "127.0.0.1")
os.environ.setdefault("VMGITOPS_METRICS_PORT", "0")

FLEET_PY = ROOT / "hack/fleet/fleet.py"
BASTION, PRIVATE = "e2e-jump", "e2e-private"


def fleet_py(*args: str) -> str:
    return subprocess.run(
        ["python3", str(FLEET_PY), *args], check=True, capture_output=True, text=True, timeout=300
    ).stdout


def as_vm(d: dict[str, Any]) -> VM:
    return VM(
        d["name"],
        d["address"],
        int(d["port"]),
        d["user"],
        ROOT / d["privateKeyFile"],
        d["hostPublicKey"],
    )


@pytest.fixture(scope="module")
def private_net(fleet: list[VM]) -> Iterator[tuple[VM, VM, str]]:
    """(bastion, private VM, the bastion's address on the private VM's link)."""
    entries = json.loads(fleet_py("up-private", PRIVATE, "--via", BASTION))
    bastion, private = (as_vm(e) for e in entries)
    try:
        yield bastion, private, entries[1]["linkAddress"]
    finally:
        fleet_py("remove", BASTION)


def private_sshd_lines(name: str) -> dict[str, list[str]]:
    """sshd's journal inside a VM the host cannot reach, read through its namespaces."""
    out = fleet_py(
        "exec", name, "--", "journalctl", "-u", "ssh.service", "--no-pager", "-o", "short"
    )
    by_pid: dict[str, list[str]] = {}
    for line in out.splitlines():
        m = re.search(r"sshd\[(\d+)\]: (.*)", line)
        if m:
            by_pid.setdefault(m.group(1), []).append(m.group(2))
    return by_pid


def test_host_cannot_reach_the_private_vm(private_net: tuple[VM, VM, str]) -> None:
    bastion, private, _ = private_net
    with socket.create_connection((bastion.address, 22), timeout=5) as s:
        assert s.recv(4).startswith(b"SSH-")
    with pytest.raises(OSError), socket.create_connection((private.address, 22), timeout=5):
        pass


def test_private_vm_is_reachable_through_its_bastion_only(
    namespace: str, operator: Path, private_net: tuple[VM, VM, str]
) -> None:
    bastion, private, link_address = private_net
    apply(ssh_secret(namespace, "fleet-ssh", bastion.private_key))
    apply(vmt(namespace, "jump", bastion))
    apply(vmt(namespace, "private", private, bastion={"targetRef": {"name": "jump"}}))
    reachable_with(namespace, "jump", "True")
    reachable_with(namespace, "private", "True")
    facts = get(namespace, "private")["status"]["facts"]
    assert facts["hostname"] == PRIVATE

    # The private VM only ever saw connections from the bastion's address.
    by_pid = private_sshd_lines(PRIVATE)
    froms = [x for lines in by_pid.values() for x in lines if x.startswith("Connection from ")]
    assert froms, by_pid
    assert all(x.startswith(f"Connection from {link_address} ") for x in froms), froms
    accepted = [x for lines in by_pid.values() for x in lines if "Accepted publickey" in x]
    assert any(f"from {link_address} " in x for x in accepted), accepted

    # A wrong host key for the private hop: refused before authentication, through the
    # bastion as well.
    before = set(by_pid)
    apply(
        vmt(
            namespace,
            "private-impostor",
            private,
            host_key={"policy": "Pinned", "publicKeys": [other_key()]},
            bastion={"targetRef": {"name": "jump"}},
        )
    )
    cond = reason_is(namespace, "private-impostor", "HostKeyMismatch")
    assert private.address in cond["message"]
    new = {pid: lines for pid, lines in private_sshd_lines(PRIVATE).items() if pid not in before}
    assert new, "the impostor check never reached the private VM"
    for pid, lines in new.items():
        assert not [x for x in lines if AUTH_WORDS.search(x)], (pid, lines)


def test_bastion_failures_reach_the_targets_behind_it(
    namespace: str, operator: Path, private_net: tuple[VM, VM, str]
) -> None:
    bastion, private, _ = private_net
    apply(ssh_secret(namespace, "fleet-ssh", bastion.private_key))
    apply(
        vmt(
            namespace,
            "jump-impostor",
            bastion,
            host_key={"policy": "Pinned", "publicKeys": [other_key()]},
        )
    )
    apply(vmt(namespace, "behind", private, bastion={"targetRef": {"name": "jump-impostor"}}))
    cond = reason_is(namespace, "behind", "HostKeyMismatch")
    assert "via bastion" in cond["message"] and "jump-impostor" in cond["message"]
    reason_is(namespace, "jump-impostor", "HostKeyMismatch")

    apply(vmt(namespace, "orphan", private, bastion={"targetRef": {"name": "nowhere"}}))
    cond = reason_is(namespace, "orphan", "BastionUnreachable")
    assert "nowhere" in cond["message"]
