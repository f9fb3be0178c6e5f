"""The VMApplication reconciler's tick with a fake Git and fake VMs: what it decides,
writes and posts. The real thing is in tests/e2e/test_applications*.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vmgitops.api import meta
from vmgitops.plan.health import Health, SyncStatus
from vmgitops.reconcile.app_context import AppContext, SyncOutcome
from vmgitops.reconcile.app_controller import AppReconciler, Deps
from vmgitops.reconcile.app_status import TargetView
from vmgitops.source import Resolved

OLD, REV, NEW = "a" * 40, "b" * 40, "c" * 40


class FakeGit:
    def __init__(self, folder: Path, commit: str) -> None:
        self.folder, self.commit = folder, commit
        self.resolves = 0
        #: After this many resolves, Git answers `later` (a commit arriving mid-rollout).
        self.switch_after: int | None = None
        self.later = NEW

    async def resolve(
        self, url: str, target_revision: str | None = "HEAD", credentials: Any = None
    ) -> Resolved:
        self.resolves += 1
        if self.switch_after is not None and self.resolves > self.switch_after:
            self.commit = self.later
        return Resolved(self.commit, "refs/heads/main", datetime.now(UTC))

    async def checkout(
        self, url: str, commit: str, path: str | None = ".", credentials: Any = None
    ) -> Path:
        return self.folder


@dataclass
class VM:
    revision: str | None = None
    reachable: bool = True
    drifted: bool = False
    applies: int = 0
    #: Its health checks fail (at any revision).
    degraded: bool = False


@dataclass
class FakeFleet:
    vms: dict[str, VM]
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    synced: list[str] = field(default_factory=list)
    #: Called after each sync (to change the world mid-rollout).
    after_sync: Any = None

    def bodies(self, namespace: str) -> list[Mapping[str, Any]]:
        return [
            {"metadata": {"name": n, "labels": self.labels.get(n, {"env": "test"})}, "spec": {}}
            for n in sorted(self.vms)
        ]

    def labels_of(self, name: str) -> Mapping[str, str] | None:
        return self.labels.get(name, {"env": "test"}) if name in self.vms else None

    def view(self, name: str, ctx: AppContext) -> TargetView:
        vm = self.vms[name]
        if not vm.reachable:
            return TargetView(name, False, message="ConnectionRefused: refused")
        ok = vm.revision == ctx.revision and not vm.drifted
        return TargetView(
            name,
            True,
            SyncStatus.SYNCED if ok else SyncStatus.OUT_OF_SYNC,
            Health.DEGRADED if vm.degraded else Health.HEALTHY if vm.revision else Health.MISSING,
            vm.revision,
            steps=0 if ok else 2,
        )

    async def observe(self, target: Mapping[str, Any], ctx: AppContext) -> TargetView:
        return self.view(str(target["metadata"]["name"]), ctx)

    async def sync(self, target: Mapping[str, Any], ctx: AppContext) -> SyncOutcome:
        name = str(target["metadata"]["name"])
        vm = self.vms[name]
        if not vm.reachable:
            return SyncOutcome(self.view(name, ctx), False, "refused", unreachable=True)
        vm.revision, vm.drifted = ctx.revision, False
        vm.applies += 1
        self.synced.append(name)
        if self.after_sync is not None:
            self.after_sync(name)
        if vm.degraded:
            return SyncOutcome(self.view(name, ctx), False, "check http: status 500")
        return SyncOutcome(self.view(name, ctx), True)


class World:
    def __init__(self, tmp: Path, vms: dict[str, VM], commit: str = REV) -> None:
        (tmp / "vmapp.yaml").write_text("files:\n  - path: /etc/x\n    content: x\n")
        self.git = FakeGit(tmp, commit)
        self.fleet = FakeFleet(vms)
        self.status: dict[str, Any] = {}
        self.rv = 1
        self.status_patches: list[dict[str, Any]] = []
        self.entries: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, str, str]] = []
        self.removed: list[str] = []
        self.body: dict[str, Any] = {}
        self.spec(automated={"selfHeal": True})

    def spec(self, generation: int = 1, **policy: Any) -> None:
        spec: dict[str, Any] = {
            "source": {"repoURL": "git://127.0.0.1/x.git", "targetRevision": "main"},
            "destination": {"selector": {"matchLabels": {"env": "test"}}},
            "refreshInterval": policy.pop("refreshInterval", "1h"),
        }
        if "automated" in policy:
            spec["syncPolicy"] = {"automated": policy.pop("automated")}
        spec.update(policy)
        self.body = {
            "metadata": {"name": "web", "namespace": "ns", "generation": generation},
            "spec": spec,
            "status": self.status,
        }

    async def write_status(self, patch: dict[str, Any]) -> Mapping[str, Any]:
        self.status_patches.append(patch)
        self.status.update(patch)
        self.rv += 1
        return {"metadata": {"resourceVersion": str(self.rv)}, "status": dict(self.status)}

    async def write_targets(self, changes: Mapping[str, Mapping[str, Any] | None]) -> None:
        for name, entry in changes.items():
            if entry is None:
                self.entries.pop(name, None)
            else:
                self.entries[name] = {**self.entries.get(name, {}), **entry}

    async def remove_annotations(self, keys: Sequence[str]) -> None:
        self.removed += list(keys)
        for k in keys:
            self.body["metadata"].get("annotations", {}).pop(k, None)

    def reconciler(self) -> AppReconciler:
        r = AppReconciler(
            "ns",
            "web",
            Deps(
                source=self.git,
                driver=self.fleet,
                targets_in=self.fleet.bodies,
                secrets=lambda ns, n: None,
                write_status=self.write_status,
                write_targets=self.write_targets,
                lists_app=lambda n: n in self.entries,
                target_labels=self.fleet.labels_of,
                remove_annotations=self.remove_annotations,
                event=lambda t, r, m: self.events.append((t, r, m)),
            ),
        )
        r.live_body = lambda: self.body
        return r

    def reasons(self) -> list[str]:
        return [r for _, r, _ in self.events]


def fleet(rev: str | None, *names: str) -> dict[str, VM]:
    return {n: VM(rev) for n in names}


async def test_first_sync_then_nothing_to_do(tmp_path: Path) -> None:
    w = World(tmp_path, fleet(None, "vm1", "vm2"))
    r = w.reconciler()
    delay = await r.tick(w.body)
    assert w.status["operation"]["phase"] == "Succeeded"
    assert w.status["sync"] == {"status": "Synced", "revision": REV}
    assert w.status["history"][-1]["revision"] == REV
    assert w.reasons() == ["SyncStarted", "SyncSucceeded"]
    assert w.entries["vm1"]["sync"] == "Synced" and "lastSyncTime" in w.entries["vm1"]
    assert delay == 3600
    before = len(w.status_patches)
    await r.tick(w.body)
    assert len(w.status_patches) == before, "an unchanged tick writes nothing"


async def test_restart_mid_rollout_resumes_without_reapplying(tmp_path: Path) -> None:
    vms = {"vm1": VM(REV), "vm2": VM(REV), "vm3": VM(OLD), "vm4": VM(OLD)}
    w = World(tmp_path, vms)
    w.spec(automated={}, strategy={"rolling": {"maxUnavailable": 2}})
    w.status["operation"] = {
        "phase": "Running",
        "revision": REV,
        "startedAt": "2026-11-26T00:00:00Z",
        "batches": {"current": 1, "total": 2},
        "targets": {"succeeded": 2, "failed": 0, "pending": 2},
        "message": "waiting 20s before batch 2/2",
    }
    await w.reconciler().tick(w.body)  # a fresh reconciler: the restarted operator
    op = w.status["operation"]
    assert (op["phase"], op["batches"], op["targets"]["succeeded"]) == (
        "Succeeded",
        {"current": 2, "total": 2},
        4,
    )
    assert w.fleet.synced == ["vm3", "vm4"]
    assert vms["vm1"].applies == 0
    assert "SyncResumed" in w.reasons() and "SyncStarted" not in w.reasons()


async def test_a_resumed_operation_gates_a_target_applied_before_the_crash(
    tmp_path: Path,
) -> None:
    """Killed after vm1's apply, before its health verdict was recorded: vm1 is at the
    revision but Degraded. The restarted operator must not report the operation
    Succeeded (a Promotion verifying it would wait out its timeout instead of failing)."""
    vms = {"vm1": VM(REV, degraded=True)}
    w = World(tmp_path, vms)
    w.spec(automated={}, strategy={"rolling": {"maxUnavailable": 1, "maxFailures": 0}})
    w.status["operation"] = {
        "phase": "Running",
        "revision": REV,
        "startedAt": "2026-11-26T00:00:00Z",
        "batches": {"current": 0, "total": 1},
        "targets": {"succeeded": 0, "failed": 0, "pending": 1},
    }
    await w.reconciler().tick(w.body)
    op = w.status["operation"]
    assert op["phase"] == "Failed", op
    assert "vm1" in op["message"]
    assert "SyncResumed" in w.reasons()


async def test_paused_mid_rollout_stops_between_batches(tmp_path: Path) -> None:
    w = World(tmp_path, fleet(OLD, "vm1", "vm2", "vm3"))
    w.spec(automated={}, strategy={"rolling": {"maxUnavailable": 1}})

    def pause(name: str) -> None:
        w.body["spec"]["paused"] = True
        w.body["metadata"]["generation"] = 2

    w.fleet.after_sync = pause
    r = w.reconciler()
    delay = await r.tick(w.body)
    op = w.status["operation"]
    assert op["phase"] == "Running" and op["batches"]["current"] == 1
    assert "spec.paused" in op["message"]
    assert w.fleet.synced == ["vm1"]
    assert "RolloutPaused" in w.reasons()
    assert w.status["health"]["status"] == "Suspended"
    assert delay == 3600, "paused: no busy ticking"
    # Unpaused: the same operation resumes, batch numbers continue.
    w.fleet.after_sync = None
    w.body["spec"]["paused"] = False
    w.body["metadata"]["generation"] = 3
    await r.tick(w.body)
    op = w.status["operation"]
    assert op["phase"] == "Succeeded" and op["batches"] == {"current": 3, "total": 3}
    assert w.fleet.synced == ["vm1", "vm2", "vm3"]


async def test_newer_revision_mid_rollout_finishes_the_batch_and_starts_over(
    tmp_path: Path,
) -> None:
    w = World(tmp_path, fleet(OLD, "vm1", "vm2", "vm3", "vm4"))
    w.spec(automated={}, strategy={"rolling": {"maxUnavailable": 2}}, refreshInterval="1ms")
    w.git.switch_after = 1  # the first resolve says REV, the next ones NEW
    # Let refreshInterval (1 ms) pass during a batch, so the poll between batches is due
    # however fast this machine runs the fake fleet.
    w.fleet.after_sync = lambda name: time.sleep(0.005)
    r = w.reconciler()
    await r.tick(w.body)
    assert w.fleet.synced == ["vm1", "vm2"], "the current batch finished, no further"
    assert w.status["operation"]["phase"] == "Running"
    assert "arrived" in w.status["operation"]["message"]
    await r.tick(w.body)
    op = w.status["operation"]
    assert op["revision"] == NEW and op["phase"] == "Succeeded"
    assert all(vm.revision == NEW for vm in w.fleet.vms.values())
    assert "SyncSuperseded" in w.reasons()


async def test_unreachable_target_is_unknown_not_failed(tmp_path: Path) -> None:
    vms = fleet(OLD, "vm1", "vm2")
    vms["vm2"].reachable = False
    w = World(tmp_path, vms)
    w.spec(automated={}, strategy={"rolling": {"maxFailures": 0}})
    await w.reconciler().tick(w.body)
    assert w.status["operation"]["phase"] == "Succeeded"
    assert w.status["summary"]["unreachable"] == 1
    assert w.status["sync"]["status"] == "Unknown"


async def test_target_leaving_loses_its_entry_and_is_left_alone(tmp_path: Path) -> None:
    w = World(tmp_path, fleet(None, "vm1", "vm2"))
    r = w.reconciler()
    await r.tick(w.body)
    assert set(w.entries) == {"vm1", "vm2"}
    w.fleet.labels["vm2"] = {"env": "other"}
    await r.tick(w.body)
    assert set(w.entries) == {"vm1"}
    assert "TargetLeft" in w.reasons()
    assert w.status["summary"]["targets"] == 1
    # A VM joins: it is synced even without selfHeal.
    w.spec(automated={})
    w.fleet.vms["vm3"] = VM(None)
    await r.tick(w.body)
    assert w.fleet.vms["vm3"].revision == REV
    assert "TargetJoined" in w.reasons()


async def test_stale_entry_from_before_a_restart_is_removed(tmp_path: Path) -> None:
    w = World(tmp_path, fleet(REV, "vm1", "vm2"))
    w.fleet.labels["vm2"] = {"env": "other"}
    w.entries["vm2"] = {"name": "web"}
    await w.reconciler().tick(w.body)
    assert "vm2" not in w.entries and "TargetLeft" in w.reasons()


@pytest.mark.parametrize("automated", [None, {}], ids=["manual", "automated-no-self-heal"])
async def test_sync_annotation_syncs_now_and_is_removed(
    tmp_path: Path, automated: dict[str, Any] | None
) -> None:
    vms = fleet(REV, "vm1")
    vms["vm1"].drifted = True
    w = World(tmp_path, vms)
    w.spec(**({} if automated is None else {"automated": automated}))
    r = w.reconciler()
    await r.tick(w.body)
    assert w.fleet.synced == []
    w.body["metadata"]["annotations"] = {"vmgitops.io/sync": "now"}
    await r.tick(w.body)
    assert w.fleet.synced == ["vm1"]
    assert w.removed == ["vmgitops.io/sync"]


async def test_drift_is_counted_once(tmp_path: Path) -> None:
    vms = fleet(REV, "vm1")
    w = World(tmp_path, vms)
    w.spec(automated={}, managementPolicy="ObserveOnly")
    r = w.reconciler()
    await r.tick(w.body)
    vms["vm1"].drifted = True
    await r.tick(w.body)
    await r.tick(w.body)
    assert w.reasons().count("DriftDetected") == 1
    assert w.fleet.synced == []
    assert w.status["sync"]["status"] == "OutOfSync"


async def test_newer_revision_found_while_waiting_between_batches(tmp_path: Path) -> None:
    w = World(tmp_path, fleet(OLD, "vm1", "vm2"))
    w.spec(
        automated={},
        strategy={"rolling": {"maxUnavailable": 1, "pauseBetweenBatches": "3s"}},
        refreshInterval="500ms",
    )
    w.git.switch_after = 1
    r = w.reconciler()
    await r.tick(w.body)
    assert w.fleet.synced == ["vm1"], "the wait was cut short and the rollout stopped"
    assert "arrived" in w.status["operation"]["message"]


async def test_a_failed_operation_is_looked_at_again_when_its_retry_is_due(
    tmp_path: Path,
) -> None:
    w = World(tmp_path, fleet(OLD, "vm1"))
    w.spec(
        syncPolicy={"automated": {}, "retry": {"backoff": {"duration": "7s"}}},
        strategy={"rolling": {"maxFailures": 0}},
    )

    async def failing(target: Mapping[str, Any], ctx: AppContext) -> SyncOutcome:
        view = TargetView("vm1", True, SyncStatus.SYNCED, Health.DEGRADED, ctx.revision, steps=0)
        return SyncOutcome(view, False, "check http: status 500")

    w.fleet.sync = failing  # type: ignore[method-assign]
    delay = await w.reconciler().tick(w.body)
    assert w.status["operation"]["phase"] == "Failed"
    assert 5 <= delay <= 7


async def test_status_writes_at_scale_are_batched_and_steady_state_writes_nothing(
    tmp_path: Path,
) -> None:
    names = [f"vm{i:04d}" for i in range(2000)]
    w = World(tmp_path, fleet(OLD, *names))
    w.spec(automated={}, strategy={"rolling": {"maxUnavailable": "25%"}})
    handed: list[int] = []
    inner = w.write_targets

    async def counting(changes: Mapping[str, Mapping[str, Any] | None]) -> None:
        handed.append(len(changes))
        await inner(changes)

    w.write_targets = counting  # type: ignore[method-assign]
    r = w.reconciler()
    await r.tick(w.body)
    assert w.status["operation"]["batches"] == {"current": 4, "total": 4}
    # One hand-over per batch (and one for the observation), not one per target.
    assert len(handed) <= 6 and sum(handed) >= 2000
    # The VMApplication: one write per batch boundary and the report, whatever the fleet.
    assert len(w.status_patches) <= 8
    assert len(str(w.status)) < 4096, "no per-target detail on the VMApplication"
    handed.clear()
    before = len(w.status_patches)
    await r.tick(w.body)
    assert handed == [] and len(w.status_patches) == before


async def test_a_spec_change_with_nothing_to_sync_does_not_heal_later_drift(
    tmp_path: Path,
) -> None:
    vms = fleet(REV, "vm1")
    w = World(tmp_path, vms)
    w.spec(automated={})
    r = w.reconciler()
    await r.tick(w.body)
    w.spec(generation=2, automated={}, strategy={"type": "AllAtOnce"})
    await r.tick(w.body)
    vms["vm1"].drifted = True
    await r.tick(w.body)
    assert w.fleet.synced == [], "drift is healed only with selfHeal"
    assert "DriftDetected" in w.reasons()


def event(w: World, annotations: dict[str, str] | None, generation: int = 1) -> dict[str, Any]:
    """A watch event of the application as kopf would deliver it."""
    return {
        "metadata": {
            "name": "web",
            "namespace": "ns",
            "generation": generation,
            "annotations": dict(annotations or {}),
        },
        "status": dict(w.status),
    }


@pytest.mark.parametrize(
    ("annotation", "automated"),
    [
        pytest.param("vmgitops.io/refresh", {"selfHeal": True}, id="refresh-nothing-to-do"),
        pytest.param("vmgitops.io/sync", None, id="sync-runs-an-operation"),
    ],
)
async def test_own_writes_while_the_request_is_set_ask_for_no_other_pass(
    tmp_path: Path, annotation: str, automated: dict[str, Any] | None
) -> None:
    w = World(tmp_path, fleet(REV, "vm1", "vm2"))
    if automated is None:
        w.spec()
    r = w.reconciler()
    await r.tick(w.body)  # the application's first tick
    w.body["metadata"]["annotations"] = {annotation: "bench"}
    assert r.woken_by(event(w, {annotation: "bench"})), "a new request wakes the daemon"
    await r.tick(w.body)
    assert w.removed == [annotation]
    # The status writes of that tick, watched before the annotation's removal arrives.
    assert not r.woken_by(event(w, {annotation: "bench"}))
    # The removal arrives; the same value set again later is a new request.
    assert not r.woken_by(event(w, {}))
    assert r.woken_by(event(w, {annotation: "bench"}))
    # Another value, while the consumed one would still be set: a new request too.
    r.mem.consumed[annotation] = "bench"
    assert r.woken_by(event(w, {annotation: "again"}))


async def test_a_new_spec_wakes_but_not_the_one_being_reconciled(tmp_path: Path) -> None:
    w = World(tmp_path, fleet(REV, "vm1"))
    r = w.reconciler()
    assert r.woken_by(event(w, None)), "nothing reconciled yet"
    await r.tick(w.body)
    assert not r.woken_by(event(w, None))
    # Generation 2 while the tick reconciling it has not written observedGeneration yet.
    w.spec(generation=2, automated={"selfHeal": True})
    assert r.woken_by(event(w, None, generation=2))
    r.mem.tick_generation = 2
    assert not r.woken_by(event(w, None, generation=2))


def _count_peak(w: World, method: str) -> Callable[[], int]:
    """Wraps w.fleet.METHOD (observe or sync) to count how many run at once; the peak."""
    running, peak = 0, 0
    inner = getattr(w.fleet, method)

    async def counted(target: Mapping[str, Any], ctx: AppContext) -> Any:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return await inner(target, ctx)

    setattr(w.fleet, method, counted)
    return lambda: peak


@pytest.mark.parametrize("limit", [1, 3, 8])
async def test_observation_runs_at_most_observe_concurrency_at_once(
    tmp_path: Path, limit: int
) -> None:
    w = World(tmp_path, fleet(REV, *(f"vm{i:02d}" for i in range(12))))
    r = w.reconciler()
    r.deps.observe_concurrency = limit
    peak = _count_peak(w, "observe")
    await r.tick(w.body)
    assert peak() == limit


@pytest.mark.parametrize("limit", [1, 3, 8])
async def test_a_batch_syncs_at_most_sync_concurrency_at_once(tmp_path: Path, limit: int) -> None:
    # One batch of the whole fleet (maxUnavailable 100%): every target is synced, never
    # more than `limit` at a time (each one holds its rendered files and apply stream).
    w = World(tmp_path, fleet(OLD, *(f"vm{i:02d}" for i in range(12))))
    w.spec(automated={}, strategy={"rolling": {"maxUnavailable": "100%"}})
    r = w.reconciler()
    r.deps.sync_concurrency = limit
    peak = _count_peak(w, "sync")
    await r.tick(w.body)
    op = w.status["operation"]
    assert (op["phase"], op["batches"]["total"], op["targets"]["succeeded"]) == (
        "Succeeded",
        1,
        12,
    )
    assert peak() == limit


def _condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


@pytest.mark.parametrize(
    "where",
    [pytest.param("checkout", id="checkout-raises"), pytest.param("load", id="load_app-raises")],
)
async def test_an_unexpected_load_error_is_a_status_reason_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    w = World(tmp_path, fleet(None, "vm1", "vm2"))
    r = w.reconciler()
    await r.tick(w.body)  # REV deployed
    history = list(w.status["history"])
    # A new commit whose checkout or load fails with an error nobody expected.
    w.git.commit = NEW
    real_checkout = w.git.checkout
    if where == "checkout":

        async def broken(*a: Any, **kw: Any) -> Path:
            raise OSError(28, "No space left on device: https://u:tok@git.example/x.git")

        w.git.checkout = broken  # type: ignore[method-assign]
    else:
        from vmgitops.reconcile import app_controller

        def bug(folder: Any) -> Any:
            raise TypeError("unhashable type: 'dict'")

        monkeypatch.setattr(app_controller, "load_app", bug)
    w.body["metadata"]["annotations"] = {"vmgitops.io/refresh": "now"}
    await r.tick(w.body)  # does not raise
    ready = _condition(w.status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SourceLoadFailed")
    assert "failed unexpectedly" in ready["message"] and NEW[:12] in ready["message"]
    assert "tok" not in ready["message"], "no credentials in status"
    assert all(vm.revision == REV for vm in w.fleet.vms.values()), "nothing applied"
    assert w.status["history"] == history
    assert r.mem.app is not None and r.mem.app_revision == REV, "the last good load stays"
    assert REV in r.in_use(), "its checkout is not collected"
    # Fixed: the next tick loads NEW and syncs it.
    w.git.checkout = real_checkout  # type: ignore[method-assign]
    monkeypatch.undo()
    w.body["metadata"]["annotations"] = {"vmgitops.io/refresh": "again"}
    await r.tick(w.body)
    assert all(vm.revision == NEW for vm in w.fleet.vms.values())
    assert _condition(w.status, "Ready")["reason"] == "Ready"


async def test_an_unknown_command_outcome_fails_the_operation(tmp_path: Path) -> None:
    w = World(tmp_path, fleet(None, "vm1", "vm2", "vm3"))
    w.spec(automated={}, strategy={"rolling": {"maxUnavailable": 3, "maxFailures": 2}})
    synced = w.fleet.sync
    why = "CommandOutcomeUnknown: command 'migrate' was started but its outcome is unknown"

    async def lossy(target: Mapping[str, Any], ctx: AppContext) -> SyncOutcome:
        if target["metadata"]["name"] == "vm2":
            view = TargetView("vm2", False, message=why)
            return SyncOutcome(view, False, why, unknown=True)
        return await synced(target, ctx)

    w.fleet.sync = lossy  # type: ignore[method-assign]
    r = w.reconciler()
    await r.tick(w.body)
    op = w.status["operation"]
    assert op["phase"] == "Failed", "within maxFailures, yet not a success"
    assert op["targets"] == {"succeeded": 2, "failed": 1, "pending": 0}
    assert "vm2: CommandOutcomeUnknown" in op["message"]
    assert w.entries["vm2"]["phase"] == "Failed"
    assert w.entries["vm2"]["message"] == why
    assert w.reasons()[-1] == "SyncFailed"


async def test_a_new_application_reports_before_observing_its_targets(tmp_path: Path) -> None:
    w = World(tmp_path, fleet(REV, "vm1", "vm2", "vm3"))
    seen: list[dict[str, Any]] = []
    observe = w.fleet.observe

    async def watched(target: Mapping[str, Any], ctx: AppContext) -> TargetView:
        seen.append(dict(w.status))  # what the API server held when observation began
        return await observe(target, ctx)

    w.fleet.observe = watched  # type: ignore[method-assign]
    r = w.reconciler()
    await r.tick(w.body)
    first = seen[0]
    assert first["observedGeneration"] == 1
    assert first["summary"]["targets"] == 3
    assert first["sync"] == {"status": "Unknown", "revision": REV}
    assert first["health"]["status"] == "Progressing"
    ready = _condition(first, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Observing")
    # The tick then reports what it observed.
    assert w.status["sync"]["status"] == "Synced"
    assert _condition(w.status, "Ready")["reason"] == "Ready"
    # Later ticks (and a restarted operator, which finds observedGeneration) do not.
    patches = len(w.status_patches)
    await w.reconciler().tick(w.body)
    assert len(w.status_patches) == patches


async def test_first_status_carries_a_source_error(tmp_path: Path) -> None:
    from vmgitops.reconcile.app_status import first_status

    st = first_status(
        targets=0,
        revision=None,
        error=("GitFetchFailed", "repository not found"),
        generation=2,
        now=datetime.now(UTC),
    )
    assert _condition(st, "Ready")["reason"] == "GitFetchFailed"
    assert _condition(st, "Synced")["status"] == "Unknown"
    assert st["summary"]["targets"] == 0 and st["observedGeneration"] == 2


async def test_a_resolve_request_is_acted_on_before_observing_and_answered_once(
    tmp_path: Path,
) -> None:
    from vmgitops.plan.resolution import RESOLVED, ResolveRequest, ResolveResult

    w = World(tmp_path, fleet(REV, "vm1", "vm2"))
    bodies = w.fleet.bodies
    requests = {"vm1": "web/migrate=ran", "vm2": "other/migrate=ran"}

    def annotated(namespace: str) -> list[Mapping[str, Any]]:
        out = []
        for b in bodies(namespace):
            name = b["metadata"]["name"]
            ann = {meta.ANNOTATION_RESOLVE_COMMAND: requests[name]} if name in requests else {}
            out.append(
                {**b, "metadata": {**b["metadata"], "resourceVersion": "5", "annotations": ann}}
            )
        return out

    order: list[str] = []
    asked: list[tuple[str, ResolveRequest]] = []
    answered: list[tuple[str, str, str]] = []

    async def resolve(target: Mapping[str, Any], ctx: AppContext, req: ResolveRequest) -> Any:
        order.append("resolve")
        asked.append((target["metadata"]["name"], req))
        return ResolveResult(RESOLVED, "recorded as run")

    async def observe(target: Mapping[str, Any], ctx: AppContext) -> TargetView:
        order.append("observe")
        return w.fleet.view(str(target["metadata"]["name"]), ctx)

    async def answer(target: Mapping[str, Any], value: str, result: ResolveResult) -> None:
        answered.append((target["metadata"]["name"], value, result.reason))

    w.fleet.resolve = resolve  # type: ignore[attr-defined]
    w.fleet.observe = observe  # type: ignore[method-assign]
    r = w.reconciler()
    r.deps.targets_in = annotated
    r.deps.answer_resolve = answer
    await r.tick(w.body)
    assert asked == [("vm1", ResolveRequest("web", "migrate", "ran"))], "only this app's"
    assert order[0] == "resolve", "acted on before the targets are observed"
    assert answered == [("vm1", "web/migrate=ran", RESOLVED)]
    assert ("Normal", RESOLVED) in [(t, reason) for t, reason, _ in w.events]
    # The index still shows the request (same resourceVersion): not acted on twice.
    await r.tick(w.body)
    assert len(asked) == 1 and len(answered) == 1
