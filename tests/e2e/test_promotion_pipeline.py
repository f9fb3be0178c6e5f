"""PromotionPipeline end to end: a commit flows dev -> staging on its own and stops at prod
for approval; a manual rollback of prod holds automatic promotion until cleared."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from test_promotion import (  # the per-test AppRepo fixture `repo` comes from there too
    app_status,
    apply,
    cli,
    get,
    patch,
    setup_targets,
    target_revision,
    vm_conf,
    vmapp,
    wait_app,
    wait_phase,
)
from test_promotion import repo as repo  # the AppRepo fixture

from apprepo import AppRepo
from testbed import VM, eventually, kubectl

pytestmark = pytest.mark.e2e


def pipeline(namespace: str, name: str, stages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "vmgitops.io/v1alpha1",
        "kind": "PromotionPipeline",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"stages": stages},
    }


def pipe_status(namespace: str, name: str) -> dict[str, Any]:
    return get(namespace, "promotionpipeline", name).get("status") or {}


def stage(namespace: str, pipe: str, name: str) -> dict[str, Any]:
    stages = pipe_status(namespace, pipe).get("stages") or []
    return next((s for s in stages if s["name"] == name), {})


def owned(namespace: str, pipe: str) -> list[dict[str, Any]]:
    items = json.loads(kubectl("-n", namespace, "get", "promotions", "-o", "json"))["items"]
    return [
        p
        for p in items
        if (p["metadata"].get("annotations") or {}).get("vmgitops.io/pipeline") == pipe
    ]


def test_pipeline_auto_promotes_dev_to_staging_and_stops_at_prod_for_approval(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    setup_targets(namespace, {"dev": fleet[2], "staging": fleet[0], "prod": fleet[1]})
    repo.write_app(version="1")
    v1 = repo.commit("v1")
    dev = vmapp(namespace, repo, "dev", "main")
    staging = vmapp(namespace, repo, "staging", v1)
    prod = vmapp(namespace, repo, "prod", v1)
    for name in (dev, staging, prod):
        wait_app(namespace, name, v1)
    apply(
        pipeline(
            namespace,
            "web",
            [
                {"name": dev},
                {"name": staging, "soakTime": "5s"},
                {"name": prod, "approval": {"required": True}},
            ],
        )
    )
    eventually(
        lambda: pipe_status(namespace, "web").get("summary"), timeout=30, what="pipeline status"
    )
    assert owned(namespace, "web") == []  # every stage already runs v1

    repo.write_app(version="2")
    v2 = repo.commit("v2")
    wait_app(namespace, dev, v2)
    wait_app(namespace, staging, v2, timeout=300)  # promoted by the pipeline, no human

    def waiting_for_approval() -> dict[str, Any] | None:
        s = stage(namespace, "web", prod)
        waiting = s.get("waiting") or {}
        return s if waiting.get("reason") == "WaitingForApproval" else None

    prod_stage = eventually(waiting_for_approval, timeout=180, what="prod waits for approval")
    promo = prod_stage["waiting"]["promotion"]
    assert target_revision(namespace, prod) == v1
    promos = {p["metadata"]["name"]: p for p in owned(namespace, "web")}
    into_staging = next(p for p in promos.values() if p["spec"]["to"][0]["name"] == staging)
    assert into_staging["status"]["phase"] == "Succeeded"
    assert into_staging["spec"]["verification"]["soakTime"] == "0s"  # dev's soak
    assert promos[promo]["spec"]["verification"]["soakTime"] == "5s"  # staging's soak
    assert promos[promo]["spec"]["revision"] == v2
    status = pipe_status(namespace, "web")
    assert status["holds"] == 0 and "(approval)" in status["summary"]

    shown = json.loads(cli("status", "-n", namespace, "-o", "json").stdout)
    assert [p["name"] for p in shown["pendingApprovals"]] == [promo]
    web = next(p for p in shown["pipelines"] if p["name"] == "web")
    assert [s["name"] for s in web["stages"]] == [dev, staging, prod]
    table = cli("status", "-n", namespace).stdout
    assert "Pipelines" in table and "Pending approvals" in table and promo in table

    time.sleep(5)
    assert target_revision(namespace, prod) == v1  # still waiting: nobody approved
    cli("approve", promo, "-n", namespace, "--by", "release-manager")
    assert wait_phase(namespace, promo, timeout=240)["phase"] == "Succeeded"
    wait_app(namespace, prod, v2, timeout=60)
    assert "version=2" in vm_conf(fleet[1], repo.app)
    eventually(
        lambda: (
            stage(namespace, "web", prod).get("revision") == v2
            and not stage(namespace, "web", prod).get("waiting")
        ),
        timeout=30,
        what="the pipeline sees prod at v2",
    )


def test_manual_rollback_holds_the_stage_until_cleared(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    setup_targets(namespace, {"staging": fleet[0], "prod": fleet[1]})
    repo.write_app(version="1")
    v1 = repo.commit("v1")
    staging = vmapp(namespace, repo, "staging", "main")
    prod = vmapp(namespace, repo, "prod", v1)
    wait_app(namespace, staging, v1)
    wait_app(namespace, prod, v1)
    apply(pipeline(namespace, "web", [{"name": staging}, {"name": prod}]))
    repo.write_app(version="2")
    v2 = repo.commit("v2")
    wait_app(namespace, staging, v2)
    wait_app(namespace, prod, v2, timeout=300)  # the pipeline promoted it
    first = owned(namespace, "web")
    assert len(first) == 1
    assert wait_phase(namespace, first[0]["metadata"]["name"], timeout=60)["phase"] == "Succeeded"

    # Someone rolls prod back by hand.
    patch(namespace, "vmapp", prod, {"spec": {"source": {"targetRevision": v1}}})
    wait_app(namespace, prod, v1)

    def held() -> dict[str, Any] | None:
        hold = stage(namespace, "web", prod).get("hold") or {}
        return hold if hold.get("reason") == "ManualRollback" else None

    hold = eventually(held, timeout=60, what="a hold on prod")
    assert "vmgitops.io/clear-hold=" in hold["message"]
    status = pipe_status(namespace, "web")
    assert status["holds"] == 1 and "(held)" in status["summary"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Held")
    # Staging still runs v2, yet the rollback stays: no new Promotion into prod.
    time.sleep(12)
    assert len(owned(namespace, "web")) == 1
    assert target_revision(namespace, prod) == v1
    assert (app_status(namespace, prod).get("sync") or {}).get("revision") == v1
    table = cli("status", "-n", namespace).stdout
    assert "HELD" in table and "ManualRollback" in table

    # The user clears the hold: automatic promotion resumes.
    kubectl(
        "-n", namespace, "annotate", "promotionpipeline", "web", f"vmgitops.io/clear-hold={prod}"
    )
    wait_app(namespace, prod, v2, timeout=300)
    assert len(owned(namespace, "web")) == 2
    eventually(
        lambda: pipe_status(namespace, "web").get("holds") == 0,
        timeout=30,
        what="no hold left",
    )
    annotations = get(namespace, "promotionpipeline", "web")["metadata"].get("annotations") or {}
    assert "vmgitops.io/clear-hold" not in annotations  # acted on, then removed
