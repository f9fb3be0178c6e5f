"""Every Reachable reason produced for real by the operator against real VMs: a malformed
key, sudo that wants a password (and the password from a Secret), trust on first use then
a re-keyed VM, CA-signed host certificates (and an unsigned or revoked key), pausing,
and the printer columns.

VMs that a test changes are dedicated to it (vm31..vm33, started on demand and absent
from fleet.json), so that the shared vm1..vm4 stay as every other test expects them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from test_targets_walking_skeleton import (
    AUTH_WORDS,
    apply,
    get,
    journal_cursor,
    reachable,
    reachable_with,
    ssh_secret,
    sshd_lines_by_connection,
)

from testbed import ROOT, VM, eventually, kubectl

pytestmark = pytest.mark.e2e

# The session operator serves /metrics on a free loopback port (read from its log), so
# that it never collides with another operator on this machine. Set before it starts.
os.environ.setdefault("VMGITOPS_METRICS_ADDRESS", "127.0.0.1")
os.environ.setdefault("VMGITOPS_METRICS_PORT", "0")

FLEET_PY = ROOT / "hack/fleet/fleet.py"


def dedicated(*names: str) -> list[VM]:
    """Boot these VMs if needed and return them as they are now (host keys included)."""
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


def metrics_text(operator_log: Path) -> str:
    """Scrape the session operator's /metrics (its address is in its log)."""
    found = eventually(
        lambda: re.search(
            r"metrics at http://([0-9.]+):(\d+)/metrics", operator_log.read_text(errors="replace")
        ),
        timeout=30,
        what="the operator's metrics address in its log",
    )
    host = "127.0.0.1" if found.group(1) == "0.0.0.0" else found.group(1)
    url = f"http://{host}:{found.group(2)}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def metric(operator_log: Path, name: str, **labels: str) -> float | None:
    """One sample's value, or None when absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = f"{name}{{{want}}}" if want else name
    for line in metrics_text(operator_log).splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def fingerprint(public_line: str) -> str:
    return str(asyncssh.import_public_key(public_line).get_fingerprint("sha256"))


def vmt(
    namespace: str,
    name: str,
    vm: VM,
    *,
    host_key: dict[str, Any] | None = None,
    secret: str = "fleet-ssh",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "vmgitops.io/v1alpha1",
        "kind": "VirtualMachineTarget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "address": vm.address,
            "port": vm.port,
            "user": vm.user,
            "credentials": {"secretRef": {"name": secret}},
            "hostKey": host_key or {"policy": "Pinned", "publicKeys": [vm.host_public_key]},
            **spec,
        },
    }


def condition(namespace: str, name: str, type_: str) -> dict[str, Any] | None:
    obj = get(namespace, name)
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return dict(c)
    return None


def reason_is(namespace: str, name: str, reason: str, timeout: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        c = reachable(namespace, name)
        return c if c and c["reason"] == reason else None

    return eventually(check, timeout=timeout, what=f"{name} Reachable reason {reason}")


def everything_about(namespace: str) -> str:
    """Targets, Events and Secrets-free text the operator wrote, for leak checks."""
    targets = kubectl("-n", namespace, "get", "vmt", "-o", "json")
    events = kubectl("-n", namespace, "get", "events", "-o", "json")
    return targets + events


def operator_auth_lines(vm: VM, cursor: str) -> dict[str, list[str]]:
    """sshd's lines per connection since the cursor, for connections that did not log
    in (ours, the test's OpenSSH client, always do): the operator's."""
    by_pid = sshd_lines_by_connection(vm, cursor)
    return {
        pid: lines
        for pid, lines in by_pid.items()
        if not any("Accepted publickey" in x for x in lines)
    }


def assert_no_credentials_sent(vm: VM, cursor: str) -> None:
    theirs = operator_auth_lines(vm, cursor)
    assert any(any("Connection from" in x for x in lines) for lines in theirs.values()), (
        f"the operator never reached sshd: {theirs}"
    )
    for pid, lines in theirs.items():
        assert not [x for x in lines if AUTH_WORDS.search(x)], (pid, lines)


# -- credentials ----------------------------------------------------------------------


def test_malformed_key_is_credentials_missing_without_key_material(
    namespace: str, operator: Path, fleet: list[VM]
) -> None:
    vm = fleet[0]
    garbage = "-----BEGIN OPENSSH PRIVATE KEY-----\nZ2FyYmFnZS1ub3Qta2V5LW1hdGVyaWFs\n"
    apply(ssh_secret(namespace, "broken-ssh", garbage))
    apply(vmt(namespace, "broken", vm, secret="broken-ssh"))
    cond = reason_is(namespace, "broken", "CredentialsMissing")
    assert "broken-ssh" in cond["message"]
    assert "not a private key" in cond["message"]
    seen = everything_about(namespace)
    assert "Z2FyYmFnZS1ub3Qta2V5LW1hdGVyaWFs" not in seen
    assert "BEGIN OPENSSH" not in seen
    # A Secret of the wrong type says so, too.
    apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": "opaque-ssh", "namespace": namespace},
            "data": {"ssh-privatekey": base64.b64encode(vm.private_key.encode()).decode()},
        }
    )
    apply(vmt(namespace, "opaque", vm, secret="opaque-ssh"))
    cond = reason_is(namespace, "opaque", "CredentialsMissing")
    assert "kubernetes.io/ssh-auth" in cond["message"]
    assert "PRIVATE KEY" not in everything_about(namespace)


def test_pinned_without_keys_is_host_key_not_configured(
    namespace: str, operator: Path, fleet: list[VM]
) -> None:
    vm = fleet[0]
    apply(ssh_secret(namespace, "fleet-ssh", vm.private_key))
    apply(vmt(namespace, "unpinned", vm, host_key={"policy": "Pinned"}))
    cond = reason_is(namespace, "unpinned", "HostKeyNotConfigured")
    assert "TrustOnFirstUse" in cond["message"]


def test_sshd_that_never_answers_is_timeout(
    namespace: str, operator: Path, fleet: list[VM]
) -> None:
    # The kernel still accepts the TCP connection; the stopped sshd never sends a banner.
    (vm,) = dedicated("vm34")
    pid = vm.ssh("systemctl show -p MainPID --value ssh.service").stdout.decode().strip()
    assert pid.isdigit() and pid != "0", pid
    subprocess.run(
        ["python3", str(FLEET_PY), "exec", vm.name, "--", "kill", "-STOP", pid], check=True
    )
    try:
        apply(ssh_secret(namespace, "fleet-ssh", vm.private_key))
        apply(vmt(namespace, "silent", vm))
        cond = reason_is(namespace, "silent", "Timeout", timeout=90)
        assert "connect timeout" in cond["message"], cond
    finally:
        subprocess.run(
            ["python3", str(FLEET_PY), "exec", vm.name, "--", "kill", "-CONT", pid], check=True
        )
    reachable_with(namespace, "silent", "True")


# -- sudo -------------------------------------------------------------------------------

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


@pytest.fixture(scope="module")
def sudo_vm(fleet: list[VM]) -> tuple[VM, str]:
    """vm31 with a login user `deploy` whose sudo wants its password."""
    (vm,) = dedicated("vm31")
    password = "pw-" + secrets.token_hex(12)
    vm.ssh("bash -s", input=SUDO_SETUP.format(password=password).encode())
    return vm, password


def opaque_secret(namespace: str, name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def test_sudo_needing_a_password_then_the_password_from_a_secret(
    namespace: str, operator: Path, sudo_vm: tuple[VM, str]
) -> None:
    vm, password = sudo_vm
    become = {"method": "sudo", "user": "root"}
    apply(ssh_secret(namespace, "fleet-ssh", vm.private_key))

    started = time.monotonic()
    apply(vmt(namespace, "no-password", vm, user="deploy", become=become))
    cond = reason_is(namespace, "no-password", "SudoPasswordRequired", timeout=60)
    took = time.monotonic() - started
    assert took < 30, f"SudoPasswordRequired took {took:.1f}s"  # the command timeout
    assert "deploy@" in cond["message"]

    # A wrong password first: rejected; then the right one, picked up from the Secret's
    # change at once rather than at the next timer.
    apply(opaque_secret(namespace, "sudo-pw", password="not-" + password))
    apply(
        vmt(
            namespace,
            "with-password",
            vm,
            user="deploy",
            become={**become, "passwordSecretRef": {"name": "sudo-pw"}},
        )
    )
    reason_is(namespace, "with-password", "SudoPasswordRejected", timeout=60)
    changed_at = time.monotonic()
    apply(opaque_secret(namespace, "sudo-pw", password=password))
    reachable_with(namespace, "with-password", "True")
    print(f"\n[secret change] Reachable {time.monotonic() - changed_at:.1f}s after the update")
    log = operator.read_text(errors="replace")
    assert f"Secret {namespace}/sudo-pw changed: re-probing" in log
    status = get(namespace, "with-password")["status"]
    # The facts were read through sudo, as root, over deploy's login.
    assert status["facts"]["hostname"] == vm.name
    assert status["facts"]["os"]["id"] == "debian"
    # The password is nowhere the operator writes.
    encoded = base64.b64encode(password.encode()).decode()
    for text in (everything_about(namespace), log):
        assert password not in text
        assert encoded not in text


# -- trust on first use ---------------------------------------------------------------

REKEY = """
set -e
rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub
ssh-keygen -q -t ed25519 -N '' -C root@rekeyed -f /etc/ssh/ssh_host_ed25519_key
systemctl restart ssh
# End every established session (the operator's pooled one) once this one has returned.
setsid sh -c 'sleep 1; pkill -f "^sshd: root"' >/dev/null 2>&1 </dev/null &
"""


def test_trust_on_first_use_then_a_rekeyed_vm_then_a_reset(
    namespace: str, operator: Path, fleet: list[VM]
) -> None:
    (vm,) = dedicated("vm32")
    apply(ssh_secret(namespace, "fleet-ssh", vm.private_key))
    apply(vmt(namespace, "tofu", vm, host_key={"policy": "TrustOnFirstUse"}))
    reachable_with(namespace, "tofu", "True")
    first = fingerprint(vm.host_public_key)
    assert get(namespace, "tofu")["status"]["hostKeyFingerprint"] == first

    cursor = journal_cursor(vm)
    vm.ssh("bash -s", input=REKEY.encode())
    (vm,) = dedicated("vm32")  # the new host key, for our own OpenSSH client
    second = fingerprint(vm.host_public_key)
    assert second != first
    cond = reason_is(namespace, "tofu", "HostKeyMismatch", timeout=60)
    assert second in cond["message"] and first in cond["message"]
    assert get(namespace, "tofu")["status"]["hostKeyFingerprint"] == first
    assert_no_credentials_sent(vm, cursor)
    # Never retried into success, whatever the timer does.
    time.sleep(12)
    assert reason_is(namespace, "tofu", "HostKeyMismatch", timeout=5)

    # The admin checked the new key and clears the fingerprint: trusted on first use again.
    kubectl(
        "-n",
        namespace,
        "patch",
        "vmt",
        "tofu",
        "--subresource=status",
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/status/hostKeyFingerprint"}]',
    )
    eventually(
        lambda: (
            (c := reachable(namespace, "tofu"))
            and c["status"] == "True"
            and get(namespace, "tofu")["status"].get("hostKeyFingerprint") == second
        ),
        timeout=60,
        what="tofu Reachable with the new fingerprint",
    )


# -- certificate authority --------------------------------------------------------------


@pytest.fixture
def ca_vm(fleet: list[VM], tmp_path: Path) -> Iterator[tuple[VM, Path]]:
    """vm33 and a fresh host CA; the VM's certificate settings are undone afterwards."""
    (vm,) = dedicated("vm33")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test-ca", "-f", tmp_path / "ca"],
        check=True,
    )
    yield vm, tmp_path
    vm.ssh(
        "rm -f /etc/ssh/sshd_config.d/30-test-cert.conf /etc/ssh/ssh_host_ed25519_key-cert.pub"
        " && systemctl restart ssh"
    )


def sign_host_key(vm: VM, ca_dir: Path, principal: str) -> None:
    host_pub = ca_dir / "host.pub"
    host_pub.write_text(vm.host_public_key + "\n")
    subprocess.run(
        [
            *("ssh-keygen", "-q", "-s", ca_dir / "ca", "-h", "-I", f"{vm.name}-test"),
            *("-n", principal, "-V", "-5m:+1h", host_pub),
        ],
        check=True,
    )
    cert = (ca_dir / "host-cert.pub").read_bytes()
    vm.ssh(
        "cat > /etc/ssh/ssh_host_ed25519_key-cert.pub && printf 'HostCertificate "
        "/etc/ssh/ssh_host_ed25519_key-cert.pub\\n' > /etc/ssh/sshd_config.d/30-test-cert.conf"
        " && sshd -t && systemctl restart ssh",
        input=cert,
    )


def test_ca_signed_host_certificate_accepted_unsigned_and_revoked_refused(
    namespace: str, operator: Path, ca_vm: tuple[VM, Path]
) -> None:
    vm, ca_dir = ca_vm
    ca_line = " ".join((ca_dir / "ca.pub").read_text().split()[:2])
    policy = {"policy": "CertificateAuthority", "caPublicKeys": [ca_line]}
    apply(ssh_secret(namespace, "fleet-ssh", vm.private_key))

    # No certificate yet: the plain host key is refused before any login.
    cursor = journal_cursor(vm)
    apply(vmt(namespace, "ca", vm, host_key=policy))
    cond = reason_is(namespace, "ca", "HostKeyMismatch")
    assert "accepts only host certificates" in cond["message"], cond
    assert_no_credentials_sent(vm, cursor)

    sign_host_key(vm, ca_dir, vm.address)
    # The mismatch is not retried by the timer; the user's edit is the retry.
    time.sleep(8)
    assert reason_is(namespace, "ca", "HostKeyMismatch", timeout=5)
    generation = get(namespace, "ca")["metadata"]["generation"]
    kubectl(
        "-n",
        namespace,
        "patch",
        "vmt",
        "ca",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"hostKey": {**policy, "revokedPublicKeys": []}}}),
    )
    assert get(namespace, "ca")["metadata"]["generation"] == generation + 1
    reachable_with(namespace, "ca", "True")
    assert get(namespace, "ca")["status"]["hostKeyFingerprint"] == fingerprint(vm.host_public_key)

    # The same certificate, but its key revoked.
    revoked = {**policy, "revokedPublicKeys": [vm.host_public_key]}
    apply(vmt(namespace, "ca-revoked", vm, host_key=revoked))
    cond = reason_is(namespace, "ca-revoked", "HostKeyMismatch")
    assert "revoked" in cond["message"], cond

    # A CA we do not trust.
    other = ca_dir / "other-ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other], check=True)
    other_line = " ".join(Path(f"{other}.pub").read_text().split()[:2])
    apply(
        vmt(
            namespace,
            "ca-other",
            vm,
            host_key={"policy": "CertificateAuthority", "caPublicKeys": [other_line]},
        )
    )
    cond = reason_is(namespace, "ca-other", "HostKeyMismatch")
    assert "not trusted" in cond["message"], cond


# -- pausing and columns --------------------------------------------------------------


def test_paused_target_is_not_ready_and_columns_show_it(
    namespace: str, operator: Path, fleet: list[VM]
) -> None:
    vm = fleet[1]
    apply(ssh_secret(namespace, "fleet-ssh", vm.private_key))
    apply(vmt(namespace, "web", vm))
    reachable_with(namespace, "web", "True")
    table = kubectl("-n", namespace, "get", "vmt")
    header, row = table.splitlines()[:2]
    assert re.split(r"\s{2,}", header.strip()) == [
        "NAME",
        "ADDRESS",
        "USER",
        "REACHABLE",
        "REASON",
        "OS",
        "AGE",
    ]
    assert vm.address in row and "root" in row and "True" in row
    assert "Debian GNU/Linux 12 (bookworm)" in row
    print(f"\n{table}")

    kubectl(
        "-n", namespace, "patch", "vmt", "web", "--type=merge", "-p", '{"spec":{"paused":true}}'
    )
    ready = eventually(
        lambda: (c := condition(namespace, "web", "Ready")) and c["reason"] == "Paused" and c,
        timeout=30,
        what="Ready=False reason Paused",
    )
    assert ready["status"] == "False"
    paused = metric(operator, "vmgitops_targets", reason="Paused")
    assert paused is not None and paused >= 1
    kubectl(
        "-n", namespace, "patch", "vmt", "web", "--type=merge", "-p", '{"spec":{"paused":false}}'
    )
    eventually(
        lambda: (c := condition(namespace, "web", "Ready")) and c["status"] == "True",
        timeout=30,
        what="Ready=True after unpausing",
    )
