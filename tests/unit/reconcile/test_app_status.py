from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vmgitops.plan.health import Health, SyncStatus
from vmgitops.reconcile.app_status import (
    TargetView,
    app_health,
    app_sync,
    append_history,
    conditions,
    merge_entry,
    summarize,
)

NOW = datetime(2026, 11, 26, tzinfo=UTC)
OK = TargetView("vm1", True, SyncStatus.SYNCED, Health.HEALTHY, "r1")
DRIFTED = TargetView("vm2", True, SyncStatus.OUT_OF_SYNC, Health.HEALTHY, "r1")
DOWN = TargetView("vm3", False, SyncStatus.UNKNOWN, Health.UNKNOWN, None, "refused")
SICK = TargetView("vm4", True, SyncStatus.SYNCED, Health.DEGRADED, "r1", "http: 500")


@pytest.mark.parametrize(
    ("views", "expected"),
    [
        pytest.param([OK, OK], SyncStatus.SYNCED, id="all-synced"),
        pytest.param([OK, DRIFTED], SyncStatus.OUT_OF_SYNC, id="one-drifted-is-out-of-sync"),
        pytest.param([OK, DOWN], SyncStatus.UNKNOWN, id="unreachable-is-unknown-not-failed"),
        pytest.param([DRIFTED, DOWN], SyncStatus.OUT_OF_SYNC, id="drift-wins-over-unknown"),
        pytest.param([], SyncStatus.SYNCED, id="no-targets-nothing-to-sync"),
    ],
)
def test_app_sync(views: list[TargetView], expected: SyncStatus) -> None:
    assert app_sync(views) == expected


@pytest.mark.parametrize(
    ("views", "rolling", "paused", "expected", "fragment"),
    [
        pytest.param([OK, OK], False, False, Health.HEALTHY, "", id="healthy"),
        pytest.param(
            [OK, SICK], False, False, Health.DEGRADED, "vm4: http: 500", id="worst-target-named"
        ),
        pytest.param(
            [OK, DOWN],
            False,
            False,
            Health.HEALTHY,
            "1 target(s) unreachable",
            id="unreachable-counted-not-degraded",
        ),
        pytest.param([DOWN], False, False, Health.UNKNOWN, "unreachable", id="nothing-observable"),
        pytest.param([OK], True, False, Health.PROGRESSING, "rollout", id="rolling-out"),
        pytest.param([SICK], True, False, Health.DEGRADED, "vm4", id="degraded-beats-progressing"),
        pytest.param([OK], False, True, Health.SUSPENDED, "paused", id="paused-is-suspended"),
        pytest.param([], False, False, Health.MISSING, "selector", id="no-targets-missing"),
    ],
)
def test_app_health(
    views: list[TargetView], rolling: bool, paused: bool, expected: Health, fragment: str
) -> None:
    health, message = app_health(views, rolling_out=rolling, paused=paused)
    assert health == expected
    assert fragment in message


def test_summary_counts() -> None:
    assert summarize([OK, DRIFTED, DOWN, SICK]) == {
        "targets": 4,
        "synced": 2,
        "outOfSync": 1,
        "healthy": 2,
        "degraded": 1,
        "unreachable": 1,
    }


def test_source_error_makes_app_not_ready_but_keeps_sync_view() -> None:
    conds = conditions(
        [],
        sync=SyncStatus.SYNCED,
        health=Health.HEALTHY,
        health_message="",
        revision="r1",
        error=("GitFetchFailed", "server down"),
        generation=3,
        now=NOW,
    )
    by_type = {c["type"]: c for c in conds}
    assert by_type["Ready"]["status"] == "False"
    assert by_type["Ready"]["reason"] == "GitFetchFailed"
    assert by_type["Synced"]["status"] == "True"
    assert all(c["observedGeneration"] == 3 for c in conds)


def test_history_is_trimmed_and_ids_grow() -> None:
    h: list[dict[str, object]] = []
    for i in range(5):
        h = append_history(h, revision=f"r{i}", phase="Succeeded", deployed_at=NOW, limit=3)
    assert [e["id"] for e in h] == [3, 4, 5]
    assert h[-1]["revision"] == "r4"


@pytest.mark.parametrize(
    ("apps", "entry", "expected"),
    [
        pytest.param(
            [],
            {"name": "web", "sync": "Synced"},
            [{"name": "web", "sync": "Synced"}],
            id="first-entry",
        ),
        pytest.param(
            [{"name": "web", "sync": "OutOfSync", "lastSyncTime": "t1", "phase": "Succeeded"}],
            {"name": "web", "sync": "Synced"},
            [{"name": "web", "sync": "Synced", "lastSyncTime": "t1", "phase": "Succeeded"}],
            id="observation-keeps-last-sync-time-and-phase",
        ),
        pytest.param(
            [{"name": "web", "lastSyncTime": "t1"}],
            {"name": "web", "lastSyncTime": "t2"},
            [{"name": "web", "lastSyncTime": "t2"}],
            id="a-sync-sets-a-new-time",
        ),
        pytest.param([{"name": "db"}, {"name": "web"}], None, [{"name": "db"}], id="none-removes"),
        pytest.param(
            [{"name": "zz"}],
            {"name": "aa"},
            [{"name": "aa"}, {"name": "zz"}],
            id="others-kept-and-sorted",
        ),
    ],
)
def test_merge_entry(
    apps: list[dict[str, object]], entry: dict[str, object] | None, expected: object
) -> None:
    name = "web" if entry is None else str(entry["name"])
    assert merge_entry(apps, name, entry) == expected


ORPHANED = TargetView(
    "vm5",
    True,
    SyncStatus.OUT_OF_SYNC,
    Health.HEALTHY,
    "r0",
    "prune is off",
    orphans=("file /etc/x",),
    steps=0,
)


@pytest.mark.parametrize(
    ("view", "needs_apply", "drifted", "unhealthy"),
    [
        pytest.param(OK, False, False, False, id="synced"),
        pytest.param(DRIFTED, True, True, False, id="changed-by-hand-at-its-revision"),
        pytest.param(
            TargetView("n", True, SyncStatus.OUT_OF_SYNC, Health.UNKNOWN, None),
            True,
            False,
            False,
            id="new-vm-is-not-drift",
        ),
        pytest.param(ORPHANED, False, False, False, id="orphans-only-nothing-to-apply"),
        pytest.param(DOWN, False, False, False, id="unreachable-waits"),
        pytest.param(SICK, False, False, True, id="synced-but-degraded"),
    ],
)
def test_target_view_predicates(
    view: TargetView, needs_apply: bool, drifted: bool, unhealthy: bool
) -> None:
    assert view.needs_apply == needs_apply
    assert view.drifted("r1") == drifted
    assert view.unhealthy_at("r1") == unhealthy


def test_out_of_sync_condition_names_targets_and_orphans() -> None:
    conds = conditions(
        [],
        sync=SyncStatus.OUT_OF_SYNC,
        health=Health.HEALTHY,
        health_message="",
        revision="r1",
        error=None,
        generation=1,
        now=NOW,
        out_of_sync=[ORPHANED],
    )
    synced = next(c for c in conds if c["type"] == "Synced")
    assert "vm5: prune is off" in synced["message"]
