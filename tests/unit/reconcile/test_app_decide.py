from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vmgitops.plan.health import Health, SyncStatus
from vmgitops.reconcile.app_decide import Action, Policy, decide
from vmgitops.reconcile.app_status import TargetView
from vmgitops.rollout.engine import FAILED, RUNNING, SUCCEEDED, OperationState

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
REV, OLD = "b" * 40, "a" * 40

AT_REV = TargetView("vm1", True, SyncStatus.SYNCED, Health.HEALTHY, REV, steps=0)
BEHIND = TargetView("vm2", True, SyncStatus.OUT_OF_SYNC, Health.HEALTHY, OLD, steps=3)
NEW_VM = TargetView("vm3", True, SyncStatus.OUT_OF_SYNC, Health.UNKNOWN, None, steps=9)
DRIFTED = TargetView("vm4", True, SyncStatus.OUT_OF_SYNC, Health.HEALTHY, REV, steps=1)
ORPHANS = TargetView(
    "vm5", True, SyncStatus.OUT_OF_SYNC, Health.HEALTHY, OLD, orphans=("file /x",), steps=0
)
DOWN = TargetView("vm6", False, SyncStatus.UNKNOWN, Health.UNKNOWN, OLD)
SICK = TargetView("vm7", True, SyncStatus.SYNCED, Health.DEGRADED, REV, steps=0)

AUTO = Policy(automated=True)
HEAL = Policy(automated=True, self_heal=True)
RETRY = Policy(automated=True, retry_limit=2, backoff=5, factor=2, max_backoff=60)


def op(phase: str, revision: str = REV, finished: float | None = None) -> OperationState:
    end = NOW - timedelta(seconds=finished) if finished is not None else None
    return OperationState(revision=revision, phase=phase, finished_at=end)


CASES = [
    pytest.param(
        AUTO,
        [AT_REV, BEHIND],
        None,
        0,
        False,
        False,
        Action.START,
        ("vm2",),
        id="automated-first-sync",
    ),
    pytest.param(
        AUTO,
        [AT_REV, BEHIND],
        op(SUCCEEDED, OLD),
        0,
        False,
        False,
        Action.START,
        ("vm2",),
        id="automated-new-revision",
    ),
    pytest.param(
        AUTO,
        [AT_REV, NEW_VM],
        op(SUCCEEDED),
        0,
        False,
        False,
        Action.START,
        ("vm3",),
        id="a-vm-that-joins-is-synced-without-self-heal",
    ),
    pytest.param(
        AUTO,
        [AT_REV, DRIFTED],
        op(SUCCEEDED),
        0,
        False,
        False,
        Action.NONE,
        (),
        id="drift-without-self-heal-is-only-reported",
    ),
    pytest.param(
        HEAL,
        [AT_REV, DRIFTED],
        op(SUCCEEDED),
        0,
        False,
        False,
        Action.START,
        ("vm4",),
        id="self-heal-syncs-drift",
    ),
    pytest.param(
        HEAL,
        [AT_REV, ORPHANS],
        op(SUCCEEDED),
        0,
        False,
        False,
        Action.NONE,
        (),
        id="orphans-with-prune-off-are-not-resynced-forever",
    ),
    pytest.param(
        HEAL,
        [AT_REV, DOWN],
        op(SUCCEEDED),
        0,
        False,
        False,
        Action.NONE,
        (),
        id="unreachable-waits-it-is-not-synced",
    ),
    pytest.param(
        AUTO,
        [AT_REV, DRIFTED],
        op(SUCCEEDED),
        0,
        False,
        True,
        Action.START,
        ("vm4",),
        id="spec-change-syncs-what-differs",
    ),
    pytest.param(
        Policy(),
        [BEHIND],
        op(SUCCEEDED, OLD),
        0,
        False,
        False,
        Action.NONE,
        (),
        id="manual-only-waits-for-a-request",
    ),
    pytest.param(
        Policy(),
        [AT_REV, BEHIND, SICK],
        op(SUCCEEDED, OLD),
        0,
        True,
        False,
        Action.START,
        ("vm2", "vm7"),
        id="sync-annotation-without-automated",
    ),
    pytest.param(
        Policy(paused=True, automated=True),
        [BEHIND],
        None,
        0,
        True,
        False,
        Action.NONE,
        (),
        id="paused-refuses-even-a-request",
    ),
    pytest.param(
        Policy(observe_only=True, automated=True),
        [BEHIND],
        None,
        0,
        True,
        False,
        Action.NONE,
        (),
        id="observe-only-never-changes-a-vm",
    ),
    pytest.param(
        AUTO,
        [AT_REV, BEHIND],
        op(RUNNING),
        0,
        False,
        False,
        Action.RESUME,
        ("vm2",),
        id="running-operation-resumes",
    ),
    pytest.param(
        AUTO,
        [AT_REV, BEHIND, SICK],
        op(RUNNING),
        0,
        False,
        False,
        Action.RESUME,
        ("vm2", "vm7"),
        id="resume-gates-a-target-left-unhealthy-at-the-revision",
    ),
    pytest.param(
        Policy(),
        [AT_REV, BEHIND],
        op(RUNNING),
        0,
        False,
        False,
        Action.RESUME,
        ("vm2",),
        id="running-manual-operation-resumes-too",
    ),
    pytest.param(
        AUTO,
        [AT_REV, BEHIND],
        op(RUNNING, OLD),
        0,
        False,
        False,
        Action.START,
        ("vm2",),
        id="newer-revision-supersedes-a-running-operation",
    ),
    pytest.param(
        AUTO,
        [SICK, NEW_VM],
        op(FAILED),
        0,
        False,
        False,
        Action.NONE,
        (),
        id="failed-without-retry-policy-stays-failed",
    ),
    pytest.param(
        RETRY,
        [SICK, BEHIND],
        op(FAILED, finished=1),
        0,
        False,
        False,
        Action.NONE,
        (),
        id="retry-waits-for-its-backoff",
    ),
    pytest.param(
        RETRY,
        [SICK, BEHIND],
        op(FAILED, finished=6),
        0,
        False,
        False,
        Action.RETRY,
        ("vm2", "vm7"),
        id="retry-after-backoff-takes-failed-first",
    ),
    pytest.param(
        RETRY,
        [SICK, BEHIND],
        op(FAILED, finished=6),
        1,
        False,
        False,
        Action.NONE,
        (),
        id="second-retry-backs-off-twice-as-long",
    ),
    pytest.param(
        RETRY,
        [SICK, BEHIND],
        op(FAILED, finished=600),
        2,
        False,
        False,
        Action.NONE,
        (),
        id="retries-exhausted",
    ),
    pytest.param(
        RETRY,
        [SICK, BEHIND],
        op(FAILED, finished=600),
        2,
        False,
        True,
        Action.START,
        ("vm2",),
        id="a-new-spec-starts-afresh-after-failure",
    ),
    pytest.param(
        RETRY,
        [SICK, BEHIND],
        op(FAILED, OLD, finished=0),
        2,
        False,
        False,
        Action.START,
        ("vm2",),
        id="a-new-revision-starts-afresh-after-failure",
    ),
]


@pytest.mark.parametrize(
    ("policy", "views", "last", "retries", "sync_now", "spec_changed", "action", "pending"),
    CASES,
)
def test_decide(
    policy: Policy,
    views: list[TargetView],
    last: OperationState | None,
    retries: int,
    sync_now: bool,
    spec_changed: bool,
    action: Action,
    pending: tuple[str, ...],
) -> None:
    d = decide(
        policy,
        views,
        revision=REV,
        op=last,
        retry_count=retries,
        sync_now=sync_now,
        spec_changed=spec_changed,
        now=NOW,
    )
    assert d.action == action, d.reason
    assert tuple(sorted(d.pending)) == pending


def test_retry_counts_and_puts_failed_targets_first() -> None:
    d = decide(
        RETRY,
        [SICK, BEHIND],
        revision=REV,
        op=op(FAILED, finished=60),
        retry_count=1,
        sync_now=False,
        spec_changed=False,
        now=NOW,
    )
    assert (d.action, d.retry_count, d.first) == (Action.RETRY, 2, ("vm7",))
    assert "retry 2/2" in d.reason


def test_a_retry_not_due_says_when() -> None:
    d = decide(
        RETRY,
        [SICK],
        revision=REV,
        op=op(FAILED, finished=1),
        retry_count=0,
        sync_now=False,
        spec_changed=False,
        now=NOW,
    )
    assert d.retry_at == NOW + timedelta(seconds=4)


@pytest.mark.parametrize(
    ("attempt", "seconds"),
    [
        pytest.param(0, 5, id="first-retry-after-duration"),
        pytest.param(2, 20, id="times-factor-per-attempt"),
        pytest.param(9, 60, id="capped-at-max-duration"),
    ],
)
def test_backoff(attempt: int, seconds: float) -> None:
    assert RETRY.backoff_after(attempt) == seconds


def test_no_revision_no_operation() -> None:
    d = decide(
        HEAL,
        [BEHIND],
        revision=None,
        op=None,
        retry_count=0,
        sync_now=True,
        spec_changed=False,
        now=NOW,
    )
    assert d.action == Action.NONE
