"""`vmgitops import ansible-inventory --apply`, end to end: an INI inventory and a
known_hosts file for real VMs become VirtualMachineTargets in the real API server, and the
real operator reaches the VMs through them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from testbed import KUBECONFIG, ROOT, VM, eventually, kubectl

pytestmark = pytest.mark.e2e

CLI = ROOT / ".venv/bin/vmgitops"


def inventory(vms: list[VM], env: str) -> str:
    web1, web2, db1 = vms
    return f"""\
# Shop fleet, as the Ansible playbooks know it.
[web]
{web1.name} ansible_host={web1.address} ansible_port={web1.port}
{web2.name} ansible_host={web2.address} ansible_port={web2.port}

[db]
{db1.name} ansible_host={db1.address} ansible_port={db1.port} ansible_become=true

[shop:children]
web
db

[shop:vars]
env={env}
region=local

[all:vars]
ansible_user={web1.user}
ansible_connection=ssh
"""


def known_hosts(vms: list[VM]) -> str:
    return "".join(f"{vm.address} {vm.host_public_key}\n" for vm in vms)


def import_inventory(
    path: Path, known: Path, namespace: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(CLI),
            "import",
            "ansible-inventory",
            str(path),
            "--secret",
            "fleet-ssh",
            "--known-hosts",
            str(known),
            "--label-vars",
            "env,region",
            "-n",
            namespace,
            "--apply",
            *extra,
        ],
        env={**os.environ, "KUBECONFIG": str(KUBECONFIG)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


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
            and c["status"] == "True"
            and c.get("observedGeneration") == obj["metadata"]["generation"]
        ):
            found: dict[str, Any] = c
            return found
    return None


def eventually_reachable(namespace: str, name: str) -> dict[str, Any]:
    return eventually(lambda: reachable(namespace, name), timeout=90, what=f"{name} Reachable=True")


def test_imported_inventory_targets_become_reachable(
    namespace: str, operator: object, fleet: list[VM], tmp_path: Path
) -> None:
    vms = fleet[:3]
    inv = tmp_path / "hosts.ini"
    inv.write_text(inventory(vms, "staging"))
    known = tmp_path / "known_hosts"
    known.write_text(known_hosts(vms))

    done = import_inventory(inv, known, namespace)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"virtualmachinetarget.vmgitops.io/{vm.name} created" for vm in vms
    ]
    assert "applied 3 target(s): 3 created, 0 updated, 0 unchanged" in done.stderr

    # The credentials Secret, as a user creates it from the key Ansible used.
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/ssh-auth",
        "metadata": {"name": "fleet-ssh", "namespace": namespace},
        "data": {"ssh-privatekey": base64.b64encode(vms[0].private_key.encode()).decode()},
    }
    kubectl("apply", "-f", "-", input=json.dumps(secret))

    groups = {vms[0].name: "web", vms[1].name: "web", vms[2].name: "db"}
    for vm in vms:
        cond = eventually_reachable(namespace, vm.name)
        assert cond["reason"] == "Connected"
        obj = get(namespace, vm.name)
        assert obj["metadata"]["labels"] == {
            "env": "staging",
            "region": "local",
            "vmgitops.io/group-shop": "true",
            f"vmgitops.io/group-{groups[vm.name]}": "true",
        }
        assert obj["metadata"]["annotations"]["vmgitops.io/ansible-inventory-hostname"] == vm.name
        spec = obj["spec"]
        assert (spec["address"], spec["port"], spec["user"]) == (vm.address, vm.port, vm.user)
        assert spec["hostKey"] == {"policy": "Pinned", "publicKeys": [vm.host_public_key]}
        assert obj["status"]["facts"]["hostname"] == vm.name
    assert get(namespace, vms[2].name)["spec"]["become"] == {"method": "sudo", "user": "root"}
    # Selecting by group label works as an application's destination selector would.
    web = kubectl("-n", namespace, "get", "vmt", "-l", "vmgitops.io/group-web=true", "-o", "name")
    assert sorted(web.split()) == sorted(
        f"virtualmachinetarget.vmgitops.io/{vm.name}" for vm in vms[:2]
    )

    # Importing the same inventory again changes nothing; a changed variable updates.
    again = import_inventory(inv, known, namespace)
    assert again.returncode == 0, again.stderr
    assert "3 created" not in again.stderr
    assert "0 created, 0 updated, 3 unchanged" in again.stderr
    inv.write_text(inventory(vms, "production"))
    changed = import_inventory(inv, known, namespace)
    assert changed.returncode == 0, changed.stderr
    assert "0 created, 3 updated, 0 unchanged" in changed.stderr
    assert get(namespace, vms[0].name)["metadata"]["labels"]["env"] == "production"


def test_import_reports_what_did_not_map_and_applies_the_rest(
    namespace: str, fleet: list[VM], tmp_path: Path
) -> None:
    vm = fleet[0]
    inv = tmp_path / "hosts.ini"
    inv.write_text(
        f"[app]\n{vm.name} ansible_host={vm.address} ansible_user={vm.user} "
        "ansible_password=hunter2 ansible_python_interpreter=/usr/bin/python3\n"
        "winbox ansible_host=127.0.0.1 ansible_connection=winrm\n"
    )
    known = tmp_path / "known_hosts"
    known.write_text(known_hosts([vm]))
    done = import_inventory(inv, known, namespace)
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == [f"virtualmachinetarget.vmgitops.io/{vm.name} created"]
    assert "winbox: ansible_connection (host variable): connection 'winrm' is not SSH" in (
        done.stderr
    )
    assert "ansible_password (host variable): the login credentials come from the Secret " in (
        done.stderr
    )
    assert "hunter2" not in done.stderr + done.stdout
    assert "hunter2" not in kubectl("-n", namespace, "get", "vmt", "-o", "json")
