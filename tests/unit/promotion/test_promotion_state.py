"""Reading an application's state the way Argo CD users read it, for both kinds."""

from __future__ import annotations

from typing import Any

import pytest

from vmgitops.api.promotion import ApplicationRef
from vmgitops.promotion.state import app_state

SHA = "a" * 40
OLD = "b" * 40
VM = ApplicationRef(name="web")
ARGO = ApplicationRef(kind="Application", name="web-k8s")


def vmapp(**status: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sync": {"status": "Synced", "revision": SHA},
        "health": {"status": "Healthy"},
        "observedGeneration": 3,
        "operation": {"phase": "Succeeded", "revision": SHA},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Ready",
                "lastTransitionTime": "2025-05-01T10:00:00Z",
            }
        ],
        "history": [
            {"id": 1, "revision": SHA, "deployedAt": "2025-05-01T11:00:00Z", "phase": "Succeeded"}
        ],
    }
    base.update(status)
    return {
        "metadata": {"name": "web", "generation": 3},
        "spec": {
            "source": {"repoURL": "git://h/r.git", "targetRevision": "main"},
            "syncPolicy": {"automated": {}},
        },
        "status": base,
    }


def argo(**status: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sync": {
            "status": "Synced",
            "revision": SHA,
            "comparedTo": {"source": {"targetRevision": SHA}},
        },
        "health": {"status": "Healthy"},
        "operationState": {
            "phase": "Succeeded",
            "finishedAt": "2025-05-01T11:30:00Z",
            "syncResult": {"revision": SHA},
        },
    }
    base.update(status)
    return {
        "metadata": {"name": "web-k8s"},
        "spec": {"source": {"repoURL": "https://h/k.git", "targetRevision": SHA}},
        "status": base,
    }


def test_missing_object() -> None:
    s = app_state(VM, None)
    assert not s.exists and not s.synced_healthy


def test_vmapp_synced_healthy_since_the_later_of_ready_and_deploy() -> None:
    s = app_state(VM, vmapp())
    assert s.at(SHA) and s.automated and s.target_revision == "main"
    assert s.healthy_since is not None and s.healthy_since.hour == 11


@pytest.mark.parametrize(
    ("body", "at"),
    [
        pytest.param(vmapp(observedGeneration=2), False, id="status-of-an-older-generation"),
        pytest.param(
            vmapp(operation={"phase": "Running", "revision": SHA}), False, id="rollout-running"
        ),
        pytest.param(vmapp(health={"status": "Degraded"}), False, id="degraded"),
        pytest.param(vmapp(sync={"status": "OutOfSync", "revision": SHA}), False, id="out-of-sync"),
        pytest.param(vmapp(), True, id="synced-healthy-current"),
    ],
)
def test_vmapp_at(body: dict[str, Any], at: bool) -> None:
    assert app_state(VM, body).at(SHA) is at


def test_vmapp_failed_rollout_names_its_revision() -> None:
    s = app_state(
        VM, vmapp(operation={"phase": "Failed", "revision": SHA, "message": "http failed"})
    )
    assert s.failed_at(SHA) and not s.failed_at(OLD) and s.failure_message == "http failed"


def test_vmapp_not_ready_has_no_healthy_since() -> None:
    body = vmapp(conditions=[{"type": "Ready", "status": "False", "reason": "NotReady"}])
    assert app_state(VM, body).healthy_since is None


@pytest.mark.parametrize(
    ("body", "at"),
    [
        pytest.param(argo(), True, id="synced-healthy-compared-to-the-spec"),
        pytest.param(
            argo(
                sync={
                    "status": "Synced",
                    "revision": SHA,
                    "comparedTo": {"source": {"targetRevision": "main"}},
                }
            ),
            False,
            id="status-compared-to-an-older-spec",
        ),
        pytest.param(
            argo(sync={"status": "Synced", "revision": SHA}), True, id="no-comparedTo-is-trusted"
        ),
        pytest.param(argo(operationState={"phase": "Running"}), False, id="sync-operation-running"),
        pytest.param(argo(health={"status": "Progressing"}), False, id="progressing"),
    ],
)
def test_argo_at(body: dict[str, Any], at: bool) -> None:
    assert app_state(ARGO, body).at(SHA) is at


def test_argo_failed_operation_and_healthy_since() -> None:
    failed = argo(
        operationState={
            "phase": "Failed",
            "message": "hook failed",
            "syncResult": {"revision": SHA},
        }
    )
    assert app_state(ARGO, failed).failed_at(SHA)
    ok = app_state(
        ARGO, argo(health={"status": "Healthy", "lastTransitionTime": "2025-05-01T11:45:00Z"})
    )
    assert ok.healthy_since is not None and ok.healthy_since.minute == 45


def test_argo_multi_source() -> None:
    body = argo()
    body["spec"] = {"sources": [{"repoURL": "a"}, {"repoURL": "b"}]}
    assert app_state(ARGO, body).multi_source
