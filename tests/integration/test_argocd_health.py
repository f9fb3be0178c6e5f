"""The Argo CD health checks (examples/argocd/health/*.lua, in Lua 5.1 through lupa) over
statuses the real operator wrote: targets reachable, refused and paused; applications
rolling out, healthy, selecting nothing and failing on Git; promotions waiting for
approval, succeeded and failed; pipelines. What the operator cannot be made to write
here is covered by the table cases in tests/unit/argocd."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apprepo import AppRepo
from testbed import ROOT, VM, eventually, kubectl

sys.path.insert(0, str(ROOT / "tests" / "unit" / "argocd"))

from luahealth import health

pytestmark = pytest.mark.integration


def apply(obj: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(obj))


def get(namespace: str, kind: str, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("-n", namespace, "get", kind, name, "-o", "json")))


def lua(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    return health(kind, obj)


def settled(
    namespace: str, kind: str, plural: str, name: str, want: str, timeout: float = 120
) -> tuple[str, str]:
    """Polls the live object until its Lua health is `want`; returns (status, message)."""

    def check() -> tuple[str, str] | None:
        result = lua(kind, get(namespace, plural, name))
        return result if result[0] == want else None

    return eventually(check, timeout=timeout, interval=1, what=f"{kind} {name} {want} per Lua")


def secret(namespace: str, vm: VM) -> None:
    apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/ssh-auth",
            "metadata": {"name": "fleet-ssh", "namespace": namespace},
            "data": {"ssh-privatekey": base64.b64encode(vm.private_key.encode()).decode()},
        }
    )


def target(namespace: str, vm: VM, name: str, env: str, **spec: Any) -> None:
    apply(
        {
            "apiVersion": "vmgitops.io/v1alpha1",
            "kind": "VirtualMachineTarget",
            "metadata": {"name": name, "namespace": namespace, "labels": {"env": env}},
            "spec": {
                "address": vm.address,
                "port": vm.port,
                "user": vm.user,
                "credentials": {"secretRef": {"name": "fleet-ssh"}},
                "hostKey": {"publicKeys": [vm.host_public_key]},
                **spec,
            },
        }
    )


def application(namespace: str, name: str, repo: AppRepo, env: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vmgitops.io/v1alpha1",
        "kind": "VMApplication",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"repoURL": repo.url, "targetRevision": "main", "path": f"apps/{repo.app}"},
            "destination": {"selector": {"matchLabels": {"env": env}}},
            "parameters": {"greeting": "hello"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            "refreshInterval": "5s",
            **spec,
        },
    }


@pytest.fixture
def repo(tmp_path: Path, fleet: list[VM]) -> Iterator[AppRepo]:
    r = AppRepo(tmp_path)
    yield r
    for vm in fleet[:2]:
        vm.ssh(r.cleanup_vm_command(), check=False)
    r.remove()


def test_targets_as_the_operator_reports_them(
    namespace: str, operator: object, fleet: list[VM]
) -> None:
    vm1, vm2 = fleet[0], fleet[1]
    secret(namespace, vm1)
    target(namespace, vm1, "ok", "x")
    # vm2's address with vm1's host key: the operator refuses before sending credentials.
    apply(
        {
            "apiVersion": "vmgitops.io/v1alpha1",
            "kind": "VirtualMachineTarget",
            "metadata": {"name": "impostor", "namespace": namespace},
            "spec": {
                "address": vm2.address,
                "port": vm2.port,
                "user": vm2.user,
                "credentials": {"secretRef": {"name": "fleet-ssh"}},
                "hostKey": {"publicKeys": [vm1.host_public_key]},
            },
        }
    )
    target(namespace, vm1, "resting", "x", paused=True)

    # Right after creation, before the first probe: Progressing.
    assert (
        lua("VirtualMachineTarget", {"metadata": {"name": "new", "generation": 1}, "spec": {}})[0]
        == "Progressing"
    )
    _, message = settled(namespace, "VirtualMachineTarget", "vmt", "ok", "Healthy")
    assert vm1.address in message
    _, message = settled(namespace, "VirtualMachineTarget", "vmt", "impostor", "Degraded")
    assert message.startswith("HostKeyMismatch: ")
    _, message = settled(namespace, "VirtualMachineTarget", "vmt", "resting", "Suspended")
    # The same paused target, as the operator wrote it (Ready=False, reason Paused).
    paused = get(namespace, "vmt", "resting")
    assert any(c["reason"] == "Paused" for c in paused["status"]["conditions"])


def test_applications_as_the_operator_reports_them(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    vm1 = fleet[0]
    secret(namespace, vm1)
    target(namespace, vm1, vm1.name, "a")
    settled(namespace, "VirtualMachineTarget", "vmt", vm1.name, "Healthy")
    repo.write_app(version="1")
    first = repo.commit("v1")
    apply(application(namespace, "web", repo, "a"))

    # Follow the rollout: every snapshot the operator writes gets a Lua verdict.
    seen: list[tuple[str, str | None]] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        obj = get(namespace, "vmapp", "web")
        verdict, message = lua("VMApplication", obj)
        phase = ((obj.get("status") or {}).get("operation") or {}).get("phase")
        seen.append((verdict, phase))
        if phase == "Running":
            assert verdict == "Progressing" and "rolling out" in message, message
        if verdict == "Healthy":
            break
        time.sleep(0.5)
    assert seen[0][0] == "Progressing", seen
    assert seen[-1] == ("Healthy", "Succeeded"), seen
    assert (get(namespace, "vmapp", "web")["status"]["sync"]["revision"]) == first

    # Nothing selected: the operator says Missing; for Argo CD that is Degraded.
    apply(application(namespace, "nobody", repo, "none"))
    _, message = settled(namespace, "VMApplication", "vmapp", "nobody", "Degraded")
    assert "matches no VirtualMachineTarget" in message
    assert get(namespace, "vmapp", "nobody")["status"]["health"]["status"] == "Missing"

    # Git failing: Degraded with the operator's reason, whatever the VMs say.
    broken = application(namespace, "lost", repo, "a")
    broken["spec"]["source"]["targetRevision"] = "no-such-branch"
    broken["spec"]["syncPolicy"] = {}
    apply(broken)
    _, message = settled(namespace, "VMApplication", "vmapp", "lost", "Degraded")
    ready = next(
        c for c in get(namespace, "vmapp", "lost")["status"]["conditions"] if c["type"] == "Ready"
    )
    assert message.startswith(f"{ready['reason']}: ") and ready["reason"] != "NotReady"

    # A paused application: Suspended, as the operator's own health says.
    kubectl(
        "-n",
        namespace,
        "patch",
        "vmapp",
        "web",
        "--type",
        "merge",
        "-p",
        '{"spec":{"paused":true}}',
    )
    settled(namespace, "VMApplication", "vmapp", "web", "Suspended")


def test_promotions_and_pipelines_as_the_operator_reports_them(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    vm1, vm2 = fleet[0], fleet[1]
    secret(namespace, vm1)
    target(namespace, vm1, vm1.name, "staging")
    target(namespace, vm2, vm2.name, "prod")
    repo.write_app(version="1")
    first = repo.commit("v1")
    apply(application(namespace, "staging", repo, "staging"))
    settled(namespace, "VMApplication", "vmapp", "staging", "Healthy", timeout=180)
    repo.write_app(version="2")
    second = repo.commit("v2")
    prod = application(namespace, "prod", repo, "prod")
    prod["spec"]["source"]["targetRevision"] = first
    apply(prod)
    settled(namespace, "VMApplication", "vmapp", "prod", "Healthy", timeout=180)
    kubectl(
        "-n", namespace, "annotate", "vmapp", "staging", "vmgitops.io/refresh=now", "--overwrite"
    )
    eventually(
        lambda: (
            lua("VMApplication", get(namespace, "vmapp", "staging"))[0] == "Healthy"
            and get(namespace, "vmapp", "staging")["status"]["sync"]["revision"] == second
        ),
        timeout=180,
        interval=1,
        what="staging Healthy at the second commit",
    )

    apply(
        {
            "apiVersion": "vmgitops.io/v1alpha1",
            "kind": "Promotion",
            "metadata": {"name": "to-prod", "namespace": namespace},
            "spec": {
                "from": {"name": "staging"},
                "to": [{"name": "prod"}],
                "approval": {"required": True},
            },
        }
    )
    _, message = settled(namespace, "Promotion", "promo", "to-prod", "Suspended")
    assert get(namespace, "promo", "to-prod")["status"]["phase"] == "WaitingForApproval"
    assert "vmgitops.io/approved-by=<you>" in message
    kubectl("-n", namespace, "annotate", "promo", "to-prod", "vmgitops.io/approved-by=tests")
    settled(namespace, "Promotion", "promo", "to-prod", "Healthy", timeout=240)
    assert get(namespace, "promo", "to-prod")["status"]["phase"] == "Succeeded"

    apply(
        {
            "apiVersion": "vmgitops.io/v1alpha1",
            "kind": "Promotion",
            "metadata": {"name": "to-nowhere", "namespace": namespace},
            "spec": {"from": {"name": "staging"}, "to": [{"name": "no-such-app"}]},
        }
    )
    _, message = settled(namespace, "Promotion", "promo", "to-nowhere", "Degraded")
    assert get(namespace, "promo", "to-nowhere")["status"]["phase"] in ("Failed", "RolledBack")

    apply(
        {
            "apiVersion": "vmgitops.io/v1alpha1",
            "kind": "PromotionPipeline",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"stages": [{"name": "staging"}, {"name": "prod", "auto": False}]},
        }
    )
    settled(namespace, "PromotionPipeline", "vmpipe", "web", "Healthy")
    apply(
        {
            "apiVersion": "vmgitops.io/v1alpha1",
            "kind": "PromotionPipeline",
            "metadata": {"name": "gap", "namespace": namespace},
            "spec": {"stages": [{"name": "staging"}, {"name": "missing-app"}]},
        }
    )
    _, message = settled(namespace, "PromotionPipeline", "vmpipe", "gap", "Degraded")
    assert "missing-app" in message
