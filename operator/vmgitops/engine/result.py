"""What one sync (or drift check) of one application on one VM found and did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vmgitops.executor.outcome import StepOutcome
from vmgitops.facts.health import CheckResult
from vmgitops.plan.assess import Assessment
from vmgitops.plan.health import Health, SyncStatus
from vmgitops.plan.plan import Plan, PlanIssue
from vmgitops.plan.resources import ResourceStatus


@dataclass(frozen=True)
class EngineError:
    """Why a sync could not finish; `retryable` False: a human (or a new spec) must act.

    `reason` is CamelCase: a transport reason (ConnectionRefused, Timeout, ...), a
    manifest reason (TemplateError, ...), or an apply reason (LockHeld, StaleGeneration,
    ChangedSinceObserved, StepFailed, ApplyInterrupted, MalformedOutput, ...).
    """

    reason: str
    message: str
    retryable: bool = True


@dataclass(frozen=True)
class TargetResult:
    app_key: str
    revision: str
    generation: int
    #: The plan made from the first observation (what was, or would be, applied).
    plan: Plan | None = None
    #: One outcome per step of `plan` when it was applied; empty otherwise.
    steps: tuple[StepOutcome, ...] = ()
    applied: bool = False
    sync: SyncStatus = SyncStatus.UNKNOWN
    health: Assessment = field(default_factory=lambda: Assessment(Health.UNKNOWN))
    checks: tuple[CheckResult, ...] = ()
    #: Per resource, from the last observation (after the apply, when there was one).
    resources: tuple[ResourceStatus, ...] = ()
    #: Issues of the last plan; blocking ones stopped the apply (e.g. CommandOutcomeUnknown).
    issues: tuple[PlanIssue, ...] = ()
    #: `revision` when the VM was found to match it; else the revision the VM's own fence
    #: record says was last applied completely (None when unknown).
    deployed_revision: str | None = None
    #: Sequential SSH round trips, and SSH commands in all (concurrent ones share a trip).
    round_trips: int = 0
    commands: int = 0
    error: EngineError | None = None
    seconds: float = 0.0

    @property
    def blocking_issues(self) -> tuple[PlanIssue, ...]:
        return tuple(i for i in self.issues if i.blocking)

    @property
    def stalled(self) -> bool:
        """A human must act: a blocking issue, or an error no retry can fix."""
        return bool(self.blocking_issues) or (self.error is not None and not self.error.retryable)

    @property
    def ok(self) -> bool:
        """Nothing went wrong (the VM may still be OutOfSync, e.g. orphans with prune off)."""
        return self.error is None and not self.blocking_issues

    @property
    def summary(self) -> str:
        """The plan, one line per step (what a sync does or did)."""
        return self.plan.describe() if self.plan is not None else ""

    @property
    def message(self) -> str:
        """One line for a condition or a target's status."""
        if self.error is not None:
            return f"{self.error.reason}: {self.error.message}"
        blocking = self.blocking_issues
        if blocking:
            return f"{blocking[0].reason}: {blocking[0].message}"
        done = sum(1 for s in self.steps if s.ok)
        head = f"applied {done} step(s)" if self.applied else str(self.sync)
        if self.health.health != Health.HEALTHY and self.health.message:
            return f"{head}; {self.health.health}: {self.health.message}"
        return head

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (for the CLI, logs and tests); never holds file content."""
        return {
            "appKey": self.app_key,
            "revision": self.revision,
            "generation": self.generation,
            "applied": self.applied,
            "sync": str(self.sync),
            "health": {"status": str(self.health.health), "message": self.health.message},
            "plan": self.summary,
            "steps": [
                {
                    "index": s.index,
                    "kind": s.kind,
                    "subject": s.subject,
                    "description": s.description,
                    "status": s.status,
                    "message": s.message,
                    "output": s.output,
                }
                for s in self.steps
            ],
            "checks": [
                {"name": c.name, "kind": c.kind, "ok": c.ok, "message": c.message}
                for c in self.checks
            ],
            "resources": [
                {"kind": r.kind, "name": r.name, "sync": str(r.sync), "message": r.message}
                for r in self.resources
            ],
            "issues": [
                {"reason": i.reason, "message": i.message, "blocking": i.blocking}
                for i in self.issues
            ],
            "deployedRevision": self.deployed_revision,
            "roundTrips": self.round_trips,
            "commands": self.commands,
            "error": None
            if self.error is None
            else {
                "reason": self.error.reason,
                "message": self.error.message,
                "retryable": self.error.retryable,
            },
            "seconds": round(self.seconds, 3),
            "message": self.message,
        }
