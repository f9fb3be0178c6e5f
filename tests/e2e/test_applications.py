"""VMApplication end to end: Git (git daemon) to real systemd VMs through the real
operator and API server, the Argo CD way."""

from __future__ import annotations

import json
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
    get,
    setup_targets,
    vm_file,
    wait_synced_healthy,
)
from testbed import VM, eventually, kubectl

pytestmark = pytest.mark.e2e


@pytest.fixture
def repo(tmp_path: Path, fleet: list[VM]) -> Iterator[AppRepo]:
    r = AppRepo(tmp_path)
    yield r
    for vm in fleet[:4]:
        vm.ssh(r.cleanup_vm_command(), check=False)
    r.remove()


def test_initial_sync_then_commit_rolls_out_in_batches(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    vms = fleet[:4]
    setup_targets(namespace, vms, env="test")
    repo.write_app(version="1")
    first = repo.commit("v1")
    apply(
        application(
            namespace,
            repo,
            automated={"prune": True, "selfHeal": True},
            strategy={"type": "Rolling", "rolling": {"maxUnavailable": 2, "maxFailures": 0}},
        )
    )
    status = wait_synced_healthy(namespace, repo.app, first)
    assert status["summary"]["targets"] == 4
    assert status["summary"]["synced"] == 4
    for vm in vms:
        conf = vm_file(vm, f"/etc/{repo.app}/{repo.app}.conf")
        assert f"host={vm.name}" in conf and f"revision={first}" in conf
        out = vm.ssh(f"curl -s http://{vm.address}:{repo.port}/").stdout.decode()
        assert out.strip() == "hello 1"
    # Per-target detail lives on each target, not on the application.
    vmt = json.loads(kubectl("-n", namespace, "get", "vmt", vms[0].name, "-o", "json"))
    entry = next(a for a in vmt["status"]["applications"] if a["name"] == repo.app)
    assert (entry["sync"], entry["health"], entry["revision"]) == ("Synced", "Healthy", first)
    # Steady state: ticks every refreshInterval (5s) observe the VMs and write nothing.
    rv = get(namespace, "vmapp", repo.app)["metadata"]["resourceVersion"]
    entries = {vm.name: entry_of(namespace, vm, repo.app) for vm in vms}
    time.sleep(12)
    assert get(namespace, "vmapp", repo.app)["metadata"]["resourceVersion"] == rv
    assert {vm.name: entry_of(namespace, vm, repo.app) for vm in vms} == entries

    for vm in vms:
        vm.ssh(f"rm -f /var/lib/{repo.app}/stamps.log")
    repo.write_app(version="2")
    second = repo.commit("v2")
    status = wait_synced_healthy(namespace, repo.app, second)
    assert status["operation"]["batches"]["total"] == 2
    history = status["history"]
    assert [h["revision"] for h in history][-2:] == [first, second]
    # At most maxUnavailable (2) VMs were being changed at any moment.
    intervals = []
    for vm in vms:
        for line in vm_file(vm, f"/var/lib/{repo.app}/stamps.log").splitlines():
            start, end = map(float, line.split())
            intervals.append((start, end))
    assert len(intervals) == 4, intervals
    overlap = max(sum(1 for s, e in intervals if s <= t < e) for t, _ in intervals)
    print(f"\nrollout: {len(intervals)} VMs, max concurrently changed = {overlap}")
    assert overlap <= 2


def test_drift_is_healed_and_observe_only_changes_nothing(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    vms = fleet[:2]
    setup_targets(namespace, vms, env="drift")
    repo.write_app(version="1")
    rev = repo.commit("v1")
    apply(application(namespace, repo, env="drift", automated={"selfHeal": True}))
    wait_synced_healthy(namespace, repo.app, rev)
    conf = f"/etc/{repo.app}/{repo.app}.conf"
    vms[0].ssh(f"echo tampered >> {conf}")
    eventually(lambda: "tampered" not in vm_file(vms[0], conf), timeout=90, what="drift healed")
    # ObserveOnly: drift is reported, never changed.
    kubectl(
        "-n",
        namespace,
        "patch",
        "vmapp",
        repo.app,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"managementPolicy": "ObserveOnly"}}),
    )
    time.sleep(2)
    vms[1].ssh(f"echo tampered >> {conf}")
    eventually(
        lambda: app_status(namespace, repo.app).get("sync", {}).get("status") == "OutOfSync",
        timeout=60,
        what="OutOfSync reported",
    )
    time.sleep(8)
    assert "tampered" in vm_file(vms[1], conf)


def test_failing_health_check_stops_the_rollout(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    vms = fleet[:3]
    setup_targets(namespace, vms, env="fail")
    repo.write_app(version="1")
    good = repo.commit("v1")
    apply(
        application(
            namespace,
            repo,
            env="fail",
            automated={},
            strategy={"rolling": {"maxUnavailable": 1, "maxFailures": 0}},
        )
    )
    wait_synced_healthy(namespace, repo.app, good)
    repo.write_app(version="2", healthy=False)
    bad = repo.commit("v2 unhealthy")
    eventually(
        lambda: (app_status(namespace, repo.app).get("operation") or {}).get("phase") == "Failed",
        timeout=120,
        what="the rollout fails",
    )
    op = app_status(namespace, repo.app)["operation"]
    assert op["revision"] == bad
    assert op["targets"]["failed"] == 1
    # The first VM (in name order) took v2; the others were left untouched at v1.
    assert "version=2" in vm_file(vms[0], f"/etc/{repo.app}/{repo.app}.conf")
    for vm in vms[1:]:
        assert "version=1" in vm_file(vm, f"/etc/{repo.app}/{repo.app}.conf")


def test_manifest_error_and_git_down_keep_what_is_deployed(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    vms = fleet[:1]
    setup_targets(namespace, vms, env="bad")
    repo.write_app(version="1")
    good = repo.commit("v1")
    apply(application(namespace, repo, env="bad", automated={"prune": True}))
    wait_synced_healthy(namespace, repo.app, good)
    (repo.folder / "vmapp.yaml").write_text("files:\n  - path: relative/path\n    content: x\n")
    repo.commit("broken manifest")

    def ready_reason() -> str | None:
        conds = {c["type"]: c for c in app_status(namespace, repo.app).get("conditions", [])}
        ready = conds.get("Ready", {})
        return ready.get("reason") if ready.get("status") == "False" else None

    reason = eventually(ready_reason, timeout=60, what="Ready=False")
    assert reason == "ManifestInvalid"
    assert "version=1" in vm_file(vms[0], f"/etc/{repo.app}/{repo.app}.conf")
    # Git server unreachable: the app points at a port where nothing listens.
    kubectl(
        "-n",
        namespace,
        "patch",
        "vmapp",
        repo.app,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"source": {"repoURL": "git://127.0.0.1:1/nothing.git"}}}),
    )
    reason = eventually(ready_reason, timeout=60, what="GitFetchFailed")
    assert reason == "GitFetchFailed"
    assert "version=1" in vm_file(vms[0], f"/etc/{repo.app}/{repo.app}.conf")
