"""The Argo CD health checks (examples/argocd/health/*.lua) in a real Lua 5.1 interpreter,
over statuses that are hard to produce on the test bed. The statuses the real operator
writes are checked in tests/integration/test_argocd_health.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from luahealth import CONFIGMAP, KINDS, health, key, render_configmap

SHA = "3f2a1c9b8e7d6f5a4b3c2d1e0f9a8b7c6d5e4f3a"
OLD = "9b8e7d6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d"


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def target(status: dict[str, Any] | None, *, paused: bool = False, gen: int = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": "vm1", "generation": gen},
        "spec": {"address": "10.0.0.1", "paused": paused},
    }
    if status is not None:
        obj["status"] = status
    return obj


@pytest.mark.parametrize(
    ("obj", "expected", "in_message"),
    [
        (target(None), "Progressing", "first probe"),
        (target({"conditions": []}, gen=1), "Progressing", "first probe"),
        (
            target(
                {
                    "observedGeneration": 1,
                    "conditions": [
                        cond("Reachable", "True", "Connected", "connected to root@10.0.0.1:22")
                    ],
                },
                gen=2,
            ),
            "Progressing",
            "latest spec",
        ),
        (
            target(
                {
                    "observedGeneration": 1,
                    "conditions": [cond("Reachable", "True", "Connected", "ok")],
                }
            ),
            "Healthy",
            "ok",
        ),
        (
            target(
                {
                    "observedGeneration": 1,
                    "conditions": [
                        cond("Reachable", "False", "HostKeyMismatch", "the VM presented SHA256:x")
                    ],
                }
            ),
            "Degraded",
            "HostKeyMismatch: the VM presented",
        ),
        (
            target(
                {"observedGeneration": 1, "conditions": [cond("Reachable", "False", "Timeout")]}
            ),
            "Degraded",
            "Timeout: ",
        ),
        (
            target(
                {"observedGeneration": 1, "conditions": [cond("Reachable", "Unknown", "Probing")]}
            ),
            "Progressing",
            "",
        ),
        (
            target({"conditions": [cond("Reachable", "False", "Timeout")]}, paused=True),
            "Suspended",
            "paused",
        ),
    ],
    ids=[
        "never probed",
        "no conditions yet",
        "spec changed since the last probe",
        "reachable",
        "host key mismatch names the reason",
        "unreachable without a message",
        "reachability unknown",
        "paused wins over the last probe",
    ],
)
def test_virtual_machine_target(obj: dict[str, Any], expected: str, in_message: str) -> None:
    status, message = health("VirtualMachineTarget", obj)
    assert status == expected
    assert in_message in message


def app(
    status: dict[str, Any] | None,
    *,
    automated: bool = True,
    paused: bool = False,
    observe_only: bool = False,
    gen: int = 3,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "source": {"repoURL": "git://git/shop.git", "path": "apps/web"},
        "destination": {"selector": {"matchLabels": {"env": "staging"}}},
        "paused": paused,
    }
    if automated:
        spec["syncPolicy"] = {"automated": {"prune": True, "selfHeal": True}}
    if observe_only:
        spec["managementPolicy"] = "ObserveOnly"
    obj: dict[str, Any] = {"metadata": {"name": "web", "generation": gen}, "spec": spec}
    if status is not None:
        obj["status"] = {"observedGeneration": gen, **status}
    return obj


def op(
    phase: str, revision: str = SHA, message: str = "", current: int = 1, total: int = 2
) -> dict[str, Any]:
    return {
        "phase": phase,
        "revision": revision,
        "message": message,
        "batches": {"current": current, "total": total},
    }


SYNCED = {"status": "Synced", "revision": SHA}
HEALTHY = {"status": "Healthy", "message": ""}
READY = [cond("Ready", "True", "Ready", "synced and healthy")]


@pytest.mark.parametrize(
    ("obj", "expected", "in_message"),
    [
        (app(None), "Progressing", "waiting for the operator"),
        (
            {
                **app({"sync": SYNCED, "health": HEALTHY}),
                "status": {"observedGeneration": 2, "sync": SYNCED, "health": HEALTHY},
            },
            "Progressing",
            "latest spec",
        ),
        (
            app(
                {
                    "sync": SYNCED,
                    "health": HEALTHY,
                    "operation": op("Succeeded", current=2),
                    "conditions": READY,
                }
            ),
            "Healthy",
            "",
        ),
        (app({"sync": SYNCED, "health": HEALTHY}, paused=True), "Suspended", "paused"),
        (
            app(
                {
                    "sync": {"status": "OutOfSync", "revision": SHA},
                    "health": HEALTHY,
                    "operation": op("Running"),
                }
            ),
            "Progressing",
            "batch 1/2",
        ),
        (
            app(
                {
                    "sync": {"status": "OutOfSync", "revision": SHA},
                    "health": {"status": "Degraded", "message": "vm2: http: 500"},
                    "operation": op("Failed", message="1 target(s) failed: vm2"),
                }
            ),
            "Degraded",
            "failed: 1 target(s) failed: vm2",
        ),
        (
            app(
                {
                    "sync": {"status": "OutOfSync", "revision": SHA},
                    "health": HEALTHY,
                    "operation": op("Succeeded", revision=OLD),
                }
            ),
            "Progressing",
            "automated sync to 3f2a1c9b8e7d is due",
        ),
        (
            app(
                {
                    "sync": {"status": "OutOfSync", "revision": SHA},
                    "health": HEALTHY,
                    "operation": op("Succeeded", revision=OLD),
                },
                automated=False,
            ),
            "Healthy",
            "OutOfSync",
        ),
        (
            app(
                {
                    "sync": {"status": "OutOfSync", "revision": SHA},
                    "health": HEALTHY,
                    "operation": op("Succeeded", revision=OLD),
                },
                observe_only=True,
            ),
            "Healthy",
            "OutOfSync",
        ),
        (
            app(
                {
                    "sync": {"status": "OutOfSync", "revision": SHA},
                    "health": HEALTHY,
                    "operation": op("Succeeded"),
                }
            ),
            "Healthy",
            "OutOfSync: the VMs differ",
        ),
        (
            app(
                {
                    "sync": {"status": "Unknown", "revision": SHA},
                    "health": {"status": "Unknown"},
                    "conditions": [
                        cond(
                            "Ready",
                            "False",
                            "GitFetchFailed",
                            "git://git/shop.git: connection refused",
                        )
                    ],
                }
            ),
            "Degraded",
            "GitFetchFailed: git://git/shop.git",
        ),
        (
            app(
                {
                    "sync": SYNCED,
                    "health": {"status": "Progressing", "message": "vm1: starting"},
                    "conditions": [
                        cond("Ready", "False", "NotReady", "sync Synced, health Progressing")
                    ],
                }
            ),
            "Progressing",
            "vm1: starting",
        ),
        (
            app(
                {
                    "sync": SYNCED,
                    "health": {
                        "status": "Missing",
                        "message": "the destination selector matches no VirtualMachineTarget",
                    },
                }
            ),
            "Degraded",
            "matches no VirtualMachineTarget",
        ),
        (
            app(
                {
                    "sync": {"status": "Unknown"},
                    "health": {"status": "Unknown", "message": "2 target(s) unreachable"},
                }
            ),
            "Unknown",
            "unreachable",
        ),
        (
            app({"sync": SYNCED, "health": {"status": "Suspended", "message": "spec.paused"}}),
            "Suspended",
            "",
        ),
    ],
    ids=[
        "no status yet",
        "generation not reconciled",
        "synced and healthy",
        "paused",
        "rollout running shows the batch",
        "failed rollout of the current revision",
        "new revision waiting for automated sync",
        "manual app out of sync stays healthy",
        "observe-only drift stays healthy",
        "drift after a good rollout is reported, not progressing",
        "git failure is degraded whatever the VMs say",
        "not ready only because progressing",
        "no target selected is degraded, not missing",
        "all targets unreachable",
        "suspended passes through",
    ],
)
def test_vm_application(obj: dict[str, Any], expected: str, in_message: str) -> None:
    status, message = health("VMApplication", obj)
    assert status == expected
    assert in_message in message


def promotion(phase: str | None, reason: str | None = None, message: str = "") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": "web-to-prod", "generation": 1},
        "spec": {"from": {"name": "web-staging"}, "to": [{"name": "web-prod"}]},
    }
    if phase is not None:
        obj["status"] = {"phase": phase, "reason": reason, "message": message, "revision": SHA}
    return obj


@pytest.mark.parametrize(
    ("obj", "expected", "in_message"),
    [
        (promotion(None), "Progressing", "waiting for the operator"),
        (
            promotion("Pending", "SourceNotHealthy", "web-staging is Degraded"),
            "Progressing",
            "SourceNotHealthy: web-staging",
        ),
        (promotion("Pending", "Soaking", "2m of 10m"), "Progressing", "Soaking"),
        (
            promotion("WaitingForApproval", "WaitingForApproval"),
            "Suspended",
            "vmgitops.io/approved-by=<you>",
        ),
        (promotion("Promoting", "Promoting", "patched web-prod"), "Progressing", "patched"),
        (promotion("Verifying", "Verifying", "web-prod 1/2 synced"), "Progressing", "1/2"),
        (
            promotion("Succeeded", "Promoted", "web-prod at 3f2a1c9"),
            "Healthy",
            "Promoted: web-prod",
        ),
        (promotion("Succeeded", "AlreadyAtRevision"), "Healthy", "AlreadyAtRevision"),
        (
            promotion("Failed", "ApplicationNotFound", "web-prod not found"),
            "Degraded",
            "ApplicationNotFound",
        ),
        (
            promotion("RolledBack", "VerificationTimedOut", "web-prod not healthy in 30m"),
            "Degraded",
            "rolled back: VerificationTimedOut",
        ),
    ],
    ids=[
        "no status yet",
        "gate: source not healthy",
        "gate: soaking",
        "waiting for a human says how to approve",
        "promoting",
        "verifying",
        "promoted",
        "nothing to do is healthy",
        "failed before writing",
        "rolled back after a failed verification",
    ],
)
def test_promotion(obj: dict[str, Any], expected: str, in_message: str) -> None:
    status, message = health("Promotion", obj)
    assert status == expected
    assert in_message in message


def pipeline(
    stages: list[dict[str, Any]] | None, ready: dict[str, Any] | None = None, gen: int = 1
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": "web", "generation": gen},
        "spec": {"stages": [{"name": "web-staging"}, {"name": "web-prod"}]},
    }
    if stages is not None:
        obj["status"] = {
            "observedGeneration": 1,
            "stages": stages,
            "summary": "web-staging@3f2a1c9 > web-prod@3f2a1c9",
            "conditions": [ready or cond("Ready", "True", "Ready", "no stage is held")],
        }
    return obj


STAGING = {"name": "web-staging", "revision": SHA}


@pytest.mark.parametrize(
    ("obj", "expected", "in_message"),
    [
        (pipeline(None), "Progressing", "waiting for the operator"),
        (pipeline([STAGING], gen=2), "Progressing", "latest spec"),
        (
            pipeline([STAGING, {"name": "web-prod", "revision": SHA, "phase": "Succeeded"}]),
            "Healthy",
            "web-staging@3f2a1c9",
        ),
        (
            pipeline(
                [
                    STAGING,
                    {
                        "name": "web-prod",
                        "revision": OLD,
                        "phase": "Verifying",
                        "promotion": "web-prod-3f2a1c9",
                    },
                ]
            ),
            "Progressing",
            "promoting into web-prod",
        ),
        (
            pipeline(
                [
                    STAGING,
                    {
                        "name": "web-prod",
                        "revision": OLD,
                        "waiting": {"reason": "WaitingForApproval"},
                    },
                ]
            ),
            "Suspended",
            "waiting for approval: web-prod",
        ),
        (
            pipeline(
                [
                    STAGING,
                    {
                        "name": "web-prod",
                        "revision": OLD,
                        "waiting": {"reason": "Soaking", "message": "5m left"},
                    },
                ]
            ),
            "Healthy",
            "",
        ),
        (
            pipeline(
                [
                    STAGING,
                    {
                        "name": "web-prod",
                        "revision": OLD,
                        "phase": "RolledBack",
                        "hold": {"reason": "PromotionFailed"},
                    },
                ],
                ready=cond("Ready", "False", "Held", "web-prod: PromotionFailed (clear with ...)"),
            ),
            "Degraded",
            "Held: web-prod: PromotionFailed",
        ),
        (
            pipeline(
                [
                    STAGING,
                    {"name": "web-prod", "revision": OLD, "hold": {"reason": "ManualRollback"}},
                ]
            ),
            "Degraded",
            "held: web-prod: ManualRollback",
        ),
        (
            pipeline(
                [STAGING],
                ready=cond("Ready", "False", "ApplicationNotFound", "not found: web-prod"),
            ),
            "Degraded",
            "ApplicationNotFound",
        ),
    ],
    ids=[
        "no status yet",
        "generation not reconciled",
        "every stage promoted",
        "a promotion under way",
        "a stage waits for approval",
        "soaking is healthy",
        "held after a failed promotion",
        "held after a manual rollback, even before Ready says so",
        "an application is missing",
    ],
)
def test_promotion_pipeline(obj: dict[str, Any], expected: str, in_message: str) -> None:
    status, message = health("PromotionPipeline", obj)
    assert status == expected
    assert in_message in message


def test_configmap_holds_exactly_the_scripts() -> None:
    assert CONFIGMAP.read_text() == render_configmap(), (
        "examples/argocd/argocd-cm.yaml is stale: "
        "python3 tests/unit/argocd/luahealth.py > examples/argocd/argocd-cm.yaml"
    )
    cm = yaml.safe_load(CONFIGMAP.read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    assert sorted(cm["data"]) == sorted(key(k) for k in KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_scripts_run_in_argo_cds_sandbox(kind: str) -> None:
    """Every script copes with an object that has nothing but metadata (and no os/io)."""
    status, _ = health(kind, {"metadata": {"name": "x"}})
    assert status == "Progressing"
    with pytest.raises(Exception, match="os"):
        health(kind, {"metadata": {"name": "x"}}, source="return os.time()")
