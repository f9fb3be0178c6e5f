"""Walking skeleton, end to end: VirtualMachineTargets reconciled by the real operator
against real systemd VMs over OpenSSH, state in the real API server."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from testbed import VM, apply, eventually, fleet_ctl, kubectl, ssh_secret

pytestmark = pytest.mark.e2e


def target(
    namespace: str,
    name: str,
    vm: VM,
    *,
    secret: str = "fleet-ssh",
    host_keys: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "vmgitops.io/v1alpha1",
        "kind": "VirtualMachineTarget",
        "metadata": {"name": name, "namespace": namespace, "labels": {"env": "test"}},
        "spec": {
            "address": vm.address,
            "port": vm.port,
            "user": vm.user,
            "credentials": {"secretRef": {"name": secret}},
            "hostKey": {
                "policy": "Pinned",
                "publicKeys": host_keys if host_keys is not None else [vm.host_public_key],
            },
        },
    }


def get(namespace: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        kubectl("-n", namespace, "get", "virtualmachinetarget", name, "-o", "json")
    )
    return out


def reachable(namespace: str, name: str) -> dict[str, Any] | None:
    obj = get(namespace, name)
    for c in obj.get("status", {}).get("conditions", []):
        if (
            c["type"] == "Reachable"
            and c.get("observedGeneration") == obj["metadata"]["generation"]
        ):
            return c
    return None


def reachable_with(namespace: str, name: str, status: str) -> dict[str, Any]:
    return eventually(
        lambda: c if (c := reachable(namespace, name)) and c["status"] == status else None,
        timeout=90,
        what=f"{name} Reachable={status}",
    )


def other_key() -> str:
    """A well-formed ed25519 host key that no VM has."""
    out = subprocess.run(
        [
            "bash",
            "-c",
            "d=$(mktemp -d) && ssh-keygen -q -t ed25519 -N '' -f $d/k && "
            "cut -d' ' -f1,2 $d/k.pub && rm -rf $d",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def journal_cursor(vm: VM) -> str:
    out = vm.ssh("journalctl -u ssh.service -n 0 --show-cursor --no-pager").stdout.decode()
    m = re.search(r"-- cursor: (\S+)", out)
    assert m, out
    return m.group(1)


AUTH_WORDS = re.compile(
    r"publickey|password|keyboard-interactive|Accepted|Failed|Invalid user|authenticating user"
)


def sshd_lines_by_connection(vm: VM, cursor: str) -> dict[str, list[str]]:
    out = vm.ssh(
        f"journalctl -u ssh.service --after-cursor='{cursor}' --no-pager -o short"
    ).stdout.decode()
    by_pid: dict[str, list[str]] = {}
    for line in out.splitlines():
        m = re.search(r"sshd\[(\d+)\]: (.*)", line)
        if m:
            by_pid.setdefault(m.group(1), []).append(m.group(2))
    return by_pid


def test_targets_become_reachable_with_facts(
    namespace: str, operator: object, fleet: list[VM]
) -> None:
    vms = fleet[:3]
    apply(ssh_secret(namespace, "fleet-ssh", vms[0].private_key))
    for vm in vms:
        apply(target(namespace, vm.name, vm))
    for vm in vms:
        cond = reachable_with(namespace, vm.name, "True")
        assert cond["reason"] == "Connected"
        status = get(namespace, vm.name)["status"]
        assert status["facts"]["hostname"] == vm.name
        assert status["facts"]["os"]["id"] == "debian"
        assert status["facts"]["os"]["versionId"] == "12"
        assert status["hostKeyFingerprint"].startswith("SHA256:")
        assert status["observedGeneration"] == get(namespace, vm.name)["metadata"]["generation"]
    # The printer columns and the category work with the real API server.
    table = kubectl("-n", namespace, "get", "vmgitops")
    assert all(vm.name in table for vm in vms)
    assert "True" in kubectl("-n", namespace, "get", "vmt")


def test_wrong_host_key_is_refused_before_authentication(
    namespace: str, operator: object, fleet: list[VM]
) -> None:
    vm = fleet[3]  # used by no other test in this module while it runs
    cursor = journal_cursor(vm)
    apply(ssh_secret(namespace, "fleet-ssh", vm.private_key))
    apply(target(namespace, "impostor", vm, host_keys=[other_key()]))
    cond = reachable_with(namespace, "impostor", "False")
    assert cond["reason"] == "HostKeyMismatch", cond
    assert "SHA256:" in cond["message"]
    # The operator's connections reached sshd but never tried to authenticate. The only
    # authentication in the log is our own OpenSSH client reading it.
    by_pid = sshd_lines_by_connection(vm, cursor)
    ours = [pid for pid, lines in by_pid.items() if any("Accepted publickey" in x for x in lines)]
    assert len(ours) == 1, by_pid
    operator_conns = {pid: lines for pid, lines in by_pid.items() if pid not in ours}
    assert any(any("Connection from" in x for x in lines) for lines in operator_conns.values()), (
        f"the operator never reached sshd: {by_pid}"
    )
    for pid, lines in operator_conns.items():
        assert not [x for x in lines if AUTH_WORDS.search(x)], (pid, lines)
    # Never retried into success.
    kubectl("-n", namespace, "annotate", "vmt", "impostor", "test/poke=1")
    cond = reachable_with(namespace, "impostor", "False")
    assert cond["reason"] == "HostKeyMismatch"


def test_missing_secret_and_wrong_user_key(
    namespace: str, operator: object, fleet: list[VM]
) -> None:
    vm = fleet[0]
    apply(target(namespace, "no-secret", vm, secret="absent"))
    cond = reachable_with(namespace, "no-secret", "False")
    assert cond["reason"] == "CredentialsMissing"
    assert "absent" in cond["message"]

    stranger = subprocess.run(
        [
            "bash",
            "-c",
            "d=$(mktemp -d) && ssh-keygen -q -t ed25519 -N '' -f $d/k && cat $d/k && rm -rf $d",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    apply(ssh_secret(namespace, "stranger-ssh", stranger))
    apply(target(namespace, "stranger", vm, secret="stranger-ssh"))
    cond = reachable_with(namespace, "stranger", "False")
    assert cond["reason"] == "AuthenticationFailed"
    assert "PRIVATE KEY" not in json.dumps(get(namespace, "stranger"))


def test_stopped_vm_is_connection_refused(
    namespace: str, operator: object, fleet: list[VM]
) -> None:
    vm = fleet[3]
    apply(ssh_secret(namespace, "fleet-ssh", vm.private_key))
    apply(target(namespace, vm.name, vm))
    reachable_with(namespace, vm.name, "True")
    fleet_ctl("stop", vm.name)
    try:
        cond = reachable_with(namespace, vm.name, "False")
        assert cond["reason"] in ("ConnectionRefused", "Timeout", "ConnectionLost"), cond
        # Once the pooled connection is gone the next probe says why precisely.
        cond = eventually(
            lambda: (
                c
                if (c := reachable(namespace, vm.name))
                and c["reason"] in ("ConnectionRefused", "Timeout")
                else None
            ),
            timeout=60,
            what="ConnectionRefused or Timeout",
        )
    finally:
        fleet_ctl("start", vm.name)
    reachable_with(namespace, vm.name, "True")
