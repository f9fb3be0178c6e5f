"""VMApplication lifecycle end to end, through the session operator, real VMs and Git:
prune, the sync and refresh annotations, retry with backoff, targets joining, leaving
and going down, pause and a newer revision mid-rollout, AllAtOnce, history and the
`vmgitops rollback` command."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apprepo import (
    AppRepo,
    app_status,
    application,
    apply,
    entry_of,
    event_reasons,
    events,
    exists,
    get,
    operation,
    patch_app,
    setup_targets,
    target,
    vm_file,
    vm_lines,
    wait_status,
    wait_synced_healthy,
)
from testbed import KUBECONFIG, ROOT, VM, eventually, kubectl

pytestmark = pytest.mark.e2e

FLEET_PY = ROOT / "hack/fleet/fleet.py"
#: A VM of its own: this module stops and starts it.
DOWN_VM = "vm41"


@pytest.fixture
def repo(tmp_path: Path, fleet: list[VM]) -> Iterator[AppRepo]:
    r = AppRepo(tmp_path)
    yield r
    for vm in fleet[:4]:
        vm.ssh(r.cleanup_vm_command(), check=False)
    r.remove()


def conf(repo: AppRepo) -> str:
    return f"/etc/{repo.app}/{repo.app}.conf"


def stamps(repo: AppRepo) -> str:
    return f"/var/lib/{repo.app}/stamps.log"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv/bin/vmgitops"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KUBECONFIG": str(KUBECONFIG)},
        check=False,
    )


def annotate(namespace: str, name: str, key: str) -> None:
    kubectl("-n", namespace, "annotate", "vmapp", name, f"{key}=now", "--overwrite")


def annotations(namespace: str, name: str) -> dict[str, str]:
    found: dict[str, str] = get(namespace, "vmapp", name)["metadata"].get("annotations") or {}
    return found


def test_prune_removes_what_left_git_only_when_enabled(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    vms = fleet[:2]
    setup_targets(namespace, vms, env="prune")
    extra = f"/etc/{repo.app}/extra.conf"
    repo.write_app(
        version="1", extra_files=f'  - path: {extra}\n    content: "extra\\n"\n    mode: "0644"\n'
    )
    first = repo.commit("v1 with extra.conf")
    apply(application(namespace, repo, env="prune", automated={}))
    wait_synced_healthy(namespace, repo.app, first)
    for vm in vms:
        assert exists(vm, extra)
        # Not in the inventory: no prune may ever touch these.
        vm.ssh(f"echo mine > /etc/{repo.app}/unmanaged.txt; echo mine > /var/lib/{repo.app}/keep")

    repo.write_app(version="2")
    second = repo.commit("v2 without extra.conf")
    status = wait_status(
        namespace,
        repo.app,
        lambda s: (
            operation(s).get("revision") == second
            and operation(s).get("phase") != "Running"
            and s.get("sync", {}).get("revision") == second  # reported after the operation
        ),
        what="the v2 operation ends and is reported",
    )
    # Prune off: everything else applied, the orphan kept and listed, and that is no failure.
    assert operation(status)["phase"] == "Succeeded", operation(status)
    assert status["sync"]["status"] == "OutOfSync"
    synced = next(c for c in status["conditions"] if c["type"] == "Synced")
    assert "would prune" in synced["message"] and extra in synced["message"], synced
    for vm in vms:
        assert exists(vm, extra)
        assert "version=2" in vm_file(vm, conf(repo))
        entry = entry_of(namespace, vm, repo.app)
        assert entry is not None and "prune is off" in str(entry["message"])
    started = operation(status)["startedAt"]
    time.sleep(12)  # two refresh intervals: an orphan is not re-synced again and again
    assert operation(app_status(namespace, repo.app))["startedAt"] == started

    patch_app(namespace, repo.app, {"spec": {"syncPolicy": {"automated": {"prune": True}}}})
    wait_synced_healthy(namespace, repo.app, second)
    for vm in vms:
        assert not exists(vm, extra), "pruned"
        assert vm_file(vm, f"/etc/{repo.app}/unmanaged.txt") == "mine\n"
        assert vm_file(vm, f"/var/lib/{repo.app}/keep") == "mine\n"
        assert "version=2" in vm_file(vm, conf(repo))


def test_sync_and_refresh_annotations_and_retry_with_backoff(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    vms = fleet[:2]
    setup_targets(namespace, vms, env="manual")
    repo.write_app(version="1")
    first = repo.commit("v1")
    apply(
        application(
            namespace,
            repo,
            env="manual",
            refreshInterval="1h",  # Git is asked only at start and on request
            retry={"limit": 2, "backoff": {"duration": "2s", "factor": 2, "maxDuration": "10s"}},
            strategy={"rolling": {"maxUnavailable": 1, "maxFailures": 0}},
        )
    )
    # No automated policy: reported OutOfSync, nothing applied.
    wait_status(
        namespace,
        repo.app,
        lambda s: s.get("sync", {}).get("status") == "OutOfSync",
        what="OutOfSync without automated sync",
    )
    assert not exists(vms[0], conf(repo))
    assert "operation" not in app_status(namespace, repo.app)

    annotate(namespace, repo.app, "vmgitops.io/sync")
    wait_synced_healthy(namespace, repo.app, first)
    assert "vmgitops.io/sync" not in annotations(namespace, repo.app)

    # refresh: Git is fetched now, not after refreshInterval (1h); nothing is applied.
    repo.write_app(version="2")
    second = repo.commit("v2")
    time.sleep(6)
    assert app_status(namespace, repo.app)["sync"]["revision"] == first
    annotate(namespace, repo.app, "vmgitops.io/refresh")
    status = wait_status(
        namespace,
        repo.app,
        lambda s: s.get("sync", {}).get("revision") == second,
        timeout=60,
        what="the refresh finds v2",
    )
    assert status["sync"]["status"] == "OutOfSync"
    assert "vmgitops.io/refresh" not in annotations(namespace, repo.app)
    assert "version=1" in vm_file(vms[0], conf(repo))

    # A sync that fails is retried after its backoff, failed targets first, up to the limit.
    repo.write_app(version="3", healthy=False)
    bad = repo.commit("v3 unhealthy")
    annotate(namespace, repo.app, "vmgitops.io/refresh")
    wait_status(
        namespace, repo.app, lambda s: s["sync"]["revision"] == bad, timeout=60, what="v3 seen"
    )
    annotate(namespace, repo.app, "vmgitops.io/sync")
    status = wait_status(
        namespace,
        repo.app,
        lambda s: operation(s).get("retryCount") == 2 and operation(s).get("phase") == "Failed",
        timeout=240,
        what="the failed sync retried twice",
    )
    op = operation(status)
    assert op["revision"] == bad and op["targets"]["failed"] == 1
    time.sleep(15)  # the limit holds: no third retry
    assert operation(app_status(namespace, repo.app))["finishedAt"] == op["finishedAt"]
    assert event_reasons(namespace, repo.app).count("SyncFailed") == 3
    # Every retry took the failed VM first, and failed there: the other was never touched.
    assert "version=3" in vm_file(vms[0], conf(repo))
    assert "version=1" in vm_file(vms[1], conf(repo))


def test_targets_join_leave_and_go_down(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    subprocess.run(["python3", str(FLEET_PY), "start", DOWN_VM], check=True, timeout=300)
    info = subprocess.run(
        ["python3", str(FLEET_PY), "info", DOWN_VM],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    d = json.loads(info)[0]
    down = VM(
        d["name"],
        d["address"],
        int(d["port"]),
        d["user"],
        ROOT / d["privateKeyFile"],
        d["hostPublicKey"],
    )
    vm1, vm2 = fleet[0], fleet[1]
    setup_targets(namespace, [vm1, down], env="join")
    apply(target(namespace, vm2, {"env": "elsewhere"}))
    repo.write_app(version="1")
    first = repo.commit("v1")
    apply(application(namespace, repo, env="join", automated={}))
    try:
        wait_synced_healthy(namespace, repo.app, first, timeout=240)
        assert not exists(vm2, conf(repo))

        # Joins: synced although selfHeal is off; leaves: its entry goes, its files stay.
        apply(target(namespace, vm2, {"env": "join"}))
        eventually(
            lambda: exists(vm2, conf(repo)) and f"revision={first}" in vm_file(vm2, conf(repo)),
            timeout=120,
            what="vm2 synced after joining",
        )
        apply(target(namespace, vm1, {"env": "gone"}))
        eventually(
            lambda: entry_of(namespace, vm1, repo.app) is None,
            timeout=60,
            what="vm1's entry removed",
        )
        left = [e for e in events(namespace, repo.app) if e["reason"] == "TargetLeft"]
        assert left and vm1.name in left[-1]["message"]
        assert "TargetJoined" in event_reasons(namespace, repo.app)
        assert "version=1" in vm_file(vm1, conf(repo)), "left as it is"
        wait_synced_healthy(namespace, repo.app, first)

        # A VM that goes down is unknown, not failed; the rollout goes on without it.
        subprocess.run(["python3", str(FLEET_PY), "stop", DOWN_VM], check=True, timeout=120)
        status = wait_status(
            namespace,
            repo.app,
            lambda s: s.get("summary", {}).get("unreachable") == 1,
            timeout=120,
            what="the stopped VM counted unreachable",
        )
        assert status["sync"]["status"] == "Unknown"
        assert status["summary"]["targets"] == 2
        repo.write_app(version="2")
        second = repo.commit("v2")
        status = wait_status(
            namespace,
            repo.app,
            lambda s: (
                operation(s).get("revision") == second
                and operation(s).get("phase") in ("Succeeded", "Failed")
            ),
            timeout=180,
            what="the v2 rollout ends",
        )
        assert operation(status)["phase"] == "Succeeded", operation(status)
        assert operation(status)["targets"]["failed"] == 0
        assert "version=2" in vm_file(vm2, conf(repo))
        assert "version=1" in vm_file(vm1, conf(repo)), "no longer managed"
        subprocess.run(["python3", str(FLEET_PY), "start", DOWN_VM], check=True, timeout=300)
        # Back up: it is behind the revision, so it is synced (selfHeal is off).
        wait_synced_healthy(namespace, repo.app, second, timeout=240)
        assert "version=2" in vm_file(down, conf(repo))
    finally:
        subprocess.run(["python3", str(FLEET_PY), "start", DOWN_VM], check=False, timeout=300)
        down.ssh(repo.cleanup_vm_command(), check=False)


def test_pause_newer_revision_mid_rollout_and_all_at_once(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    vms = fleet[:4]
    setup_targets(namespace, vms, env="roll")
    repo.write_app(version="1")
    first = repo.commit("v1")
    apply(application(namespace, repo, env="roll", automated={}, strategy={"type": "AllAtOnce"}))
    status = wait_synced_healthy(namespace, repo.app, first, timeout=240)
    assert operation(status)["batches"] == {"current": 1, "total": 1}
    intervals = [
        tuple(map(float, line.split())) for vm in vms for line in vm_lines(vm, stamps(repo))
    ]
    overlap = max(sum(1 for s, e in intervals if s <= t < e) for t, _ in intervals)
    print(f"\nAllAtOnce: {len(intervals)} VMs, max concurrently changed = {overlap}")
    assert len(intervals) == 4 and overlap >= 2

    for vm in vms:
        vm.ssh(f"rm -f {stamps(repo)}")
    rolling = {"rolling": {"maxUnavailable": 1, "pauseBetweenBatches": "40s"}}
    patch_app(namespace, repo.app, {"spec": {"strategy": {"type": "Rolling", **rolling}}})
    time.sleep(3)
    repo.write_app(version="2")
    second = repo.commit("v2")
    wait_status(
        namespace,
        repo.app,
        lambda s: (
            operation(s).get("revision") == second
            and operation(s).get("batches", {}).get("current") == 1
            and "waiting" in operation(s).get("message", "")
        ),
        timeout=120,
        what="v2: batch 1 done, waiting",
    )
    # v3 arrives while v2 waits between batches: v2 stops there, v3 starts from scratch.
    repo.write_app(version="3")
    third = repo.commit("v3")
    status = wait_status(
        namespace,
        repo.app,
        lambda s: (
            operation(s).get("revision") == third
            and operation(s).get("batches", {}).get("current") == 1
            and "waiting" in operation(s).get("message", "")
        ),
        timeout=120,
        what="v3: batch 1 done, waiting",
    )
    assert "SyncSuperseded" in event_reasons(namespace, repo.app)
    v3_started = operation(status)["startedAt"]
    assert [len(vm_lines(vm, stamps(repo))) for vm in vms] == [2, 0, 0, 0]

    # Paused while waiting: stops before the next batch.
    patch_app(namespace, repo.app, {"spec": {"paused": True}})
    status = wait_status(
        namespace,
        repo.app,
        lambda s: "spec.paused" in operation(s).get("message", ""),
        timeout=60,
        what="the rollout stopped by spec.paused",
    )
    assert operation(status)["phase"] == "Running"
    assert status["health"]["status"] == "Suspended"
    assert "RolloutPaused" in event_reasons(namespace, repo.app)
    time.sleep(6)
    assert "version=1" in vm_file(vms[1], conf(repo))

    # Unpaused (and no more pause between batches): the same operation resumes.
    patch_app(
        namespace,
        repo.app,
        {"spec": {"paused": False, "strategy": {"rolling": {"pauseBetweenBatches": "0s"}}}},
    )
    status = wait_synced_healthy(namespace, repo.app, third, timeout=240)
    op = operation(status)
    assert op["startedAt"] == v3_started
    assert op["batches"] == {"current": 4, "total": 4}
    # v2 reached only the first VM; the others went from v1 straight to v3.
    assert [len(vm_lines(vm, stamps(repo))) for vm in vms] == [2, 1, 1, 1]
    assert "SyncResumed" in event_reasons(namespace, repo.app)


def test_history_and_rollback(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    vms = fleet[:2]
    setup_targets(namespace, vms, env="hist")
    repo.write_app(version="1")
    first = repo.commit("v1")
    apply(application(namespace, repo, env="hist", automated={}))
    wait_synced_healthy(namespace, repo.app, first)
    repo.write_app(version="2")
    second = repo.commit("v2")
    status = wait_synced_healthy(namespace, repo.app, second)
    assert [(h["id"], h["revision"]) for h in status["history"]] == [(1, first), (2, second)]

    out = cli("rollback", repo.app, "-n", namespace, "--wait", "--timeout", "4m")
    assert out.returncode == 0, out.stderr + out.stdout
    assert "Argo CD" not in out.stderr
    app = get(namespace, "vmapp", repo.app)
    assert app["spec"]["source"]["targetRevision"] == first
    status = wait_synced_healthy(namespace, repo.app, first)
    assert status["history"][-1]["revision"] == first and status["history"][-1]["id"] == 3
    for vm in vms:
        assert "version=1" in vm_file(vm, conf(repo))

    out = cli("rollback", repo.app, "99", "-n", namespace)
    assert out.returncode == 2 and "ids: 1, 2, 3" in out.stderr

    # Managed from Git by Argo CD: done as asked, with a warning that it belongs in Git.
    kubectl("-n", namespace, "label", "vmapp", repo.app, "app.kubernetes.io/instance=shop")
    out = cli("rollback", repo.app, "2", "-n", namespace)
    assert out.returncode == 0, out.stderr
    assert "Argo CD" in out.stderr and "belongs in Git" in out.stderr
    wait_synced_healthy(namespace, repo.app, second)
    for vm in vms:
        assert "version=2" in vm_file(vm, conf(repo))
    reasons = event_reasons(namespace, repo.app)
    assert {"SyncStarted", "SyncSucceeded"} <= set(reasons)

    # Deleted: its entry leaves the targets' status; the VMs keep what they have.
    assert entry_of(namespace, vms[0], repo.app) is not None
    kubectl("-n", namespace, "delete", "vmapp", repo.app, "--wait=false")
    eventually(
        lambda: all(entry_of(namespace, vm, repo.app) is None for vm in vms),
        timeout=60,
        what="the deleted application's entries removed from its targets",
    )
    assert "version=2" in vm_file(vms[0], conf(repo))
