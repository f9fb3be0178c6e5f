"""How an engine result becomes a target's view and a rollout outcome."""

from __future__ import annotations

from typing import Any

import pytest

from vmgitops.engine import EngineError, TargetResult
from vmgitops.plan.assess import Assessment
from vmgitops.plan.health import Health, SyncStatus
from vmgitops.plan.plan import Plan, PlanIssue
from vmgitops.plan.resources import ResourceStatus
from vmgitops.plan.steps import DaemonReload
from vmgitops.reconcile.app_context import AppContext
from vmgitops.reconcile.app_driver import SSHDriver, outcome_unknown

REV, OLD = "b" * 40, "a" * 40
ORPHAN = ResourceStatus("File", "/etc/old", SyncStatus.OUT_OF_SYNC, "requires pruning")
FINE = ResourceStatus("File", "/etc/new", SyncStatus.SYNCED)


def result(**kw: Any) -> TargetResult:
    base: dict[str, Any] = {
        "app_key": "ns_web",
        "revision": REV,
        "generation": 1,
        "plan": Plan(),
        "sync": SyncStatus.SYNCED,
        "health": Assessment(Health.HEALTHY),
        "deployed_revision": REV,
    }
    base.update(kw)
    return TargetResult(**base)


ORPHANS_ONLY = result(
    plan=Plan(orphans=("file /etc/old",)),
    sync=SyncStatus.OUT_OF_SYNC,
    resources=(FINE, ORPHAN),
    deployed_revision=OLD,
)
ORPHANS_AFTER_APPLY = result(
    plan=Plan(steps=(DaemonReload(),), orphans=("file /etc/old",)),
    applied=True,
    sync=SyncStatus.OUT_OF_SYNC,
    resources=(FINE, ORPHAN),
)
TO_APPLY = result(plan=Plan(steps=(DaemonReload(),)), sync=SyncStatus.OUT_OF_SYNC)
REFUSED = result(plan=None, sync=SyncStatus.UNKNOWN, error=EngineError("ConnectionRefused", "no"))
ISSUE = PlanIssue("CommandOutcomeUnknown", "migrate may have run")
BLOCKED = result(plan=Plan(issues=(ISSUE,)), issues=(ISSUE,), sync=SyncStatus.OUT_OF_SYNC)


@pytest.mark.parametrize(
    ("res", "reachable", "orphans_only", "needs_apply", "fragment"),
    [
        pytest.param(
            ORPHANS_ONLY,
            True,
            True,
            False,
            "prune is off; would prune 1: file /etc/old",
            id="observed-orphans-with-prune-off",
        ),
        pytest.param(
            ORPHANS_AFTER_APPLY,
            True,
            True,
            False,
            "would prune",
            id="applied-everything-but-the-orphans",
        ),
        pytest.param(TO_APPLY, True, False, True, "1 step(s) to apply", id="steps-to-apply"),
        pytest.param(REFUSED, False, False, False, "ConnectionRefused", id="unreachable"),
        pytest.param(BLOCKED, True, False, True, "CommandOutcomeUnknown", id="blocked-plan"),
    ],
)
def test_view(
    res: TargetResult, reachable: bool, orphans_only: bool, needs_apply: bool, fragment: str
) -> None:
    view = SSHDriver._view("vm1", res)
    assert view.reachable == reachable
    assert view.orphans_only == orphans_only
    assert view.needs_apply == needs_apply
    assert fragment in view.message


LOST = result(
    plan=Plan(steps=(DaemonReload(),)),
    applied=True,
    sync=SyncStatus.UNKNOWN,
    error=EngineError("ConnectionLost", "the connection to root@vm1 was lost"),
)
LOST_BEFORE_APPLY = result(
    plan=None, sync=SyncStatus.UNKNOWN, error=EngineError("ConnectionLost", "lost")
)
IN_PROGRESS = result(
    plan=Plan(issues=(ISSUE,)),
    issues=(ISSUE,),
    sync=SyncStatus.OUT_OF_SYNC,
    error=EngineError("ApplyInProgress", "another apply holds the lock"),
)
STEP_FAILED = result(
    plan=Plan(steps=(DaemonReload(),)),
    applied=True,
    sync=SyncStatus.OUT_OF_SYNC,
    error=EngineError("StepFailed", "exit 1"),
)


@pytest.mark.parametrize(
    ("res", "unknown", "ok", "unreachable", "fragment"),
    [
        # Retried like an unreachable VM: the next observe sees what the apply did.
        pytest.param(LOST, False, False, True, "ConnectionLost", id="lost-during-the-apply"),
        pytest.param(BLOCKED, True, False, False, "migrate may have run", id="blocked-plan"),
        pytest.param(LOST_BEFORE_APPLY, False, False, True, "lost", id="lost-before-applying"),
        pytest.param(REFUSED, False, False, True, "ConnectionRefused", id="unreachable"),
        pytest.param(IN_PROGRESS, False, False, False, "ApplyInProgress", id="apply-running"),
        pytest.param(STEP_FAILED, False, False, False, "StepFailed", id="known-failure"),
        pytest.param(result(), False, True, False, "", id="synced"),
    ],
)
async def test_sync_outcome_of_an_unknown_result(
    res: TargetResult, unknown: bool, ok: bool, unreachable: bool, fragment: str
) -> None:
    assert (outcome_unknown(res) is not None) is unknown
    driver = SSHDriver.__new__(SSHDriver)

    async def call(target: Any, ctx: Any, *, dry_run: bool) -> TargetResult:
        return res

    driver._call = call  # type: ignore[method-assign]
    out = await driver.sync({"metadata": {"name": "vm1"}}, AppContext.__new__(AppContext))
    assert (out.unknown, out.ok, out.unreachable) == (unknown, ok, unreachable)
    assert fragment in out.message
    if unknown:
        assert out.message.startswith("CommandOutcomeUnknown: ")
        assert out.view.message == out.message
