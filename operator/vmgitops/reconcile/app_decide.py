"""Pure: whether one tick of a VMApplication starts, resumes or retries an operation.

The rules, in order (the first that applies wins):

1. ObserveOnly and `paused` never change a VM.
2. A Running operation resumes at its revision, or is superseded by a newer one.
3. The `vmgitops.io/sync` annotation starts one now, also without `automated`.
4. A Failed operation at the current revision (and spec) is retried within
   `syncPolicy.retry`, after its backoff; beyond that it waits for a human, a new
   revision or a new spec. A retry takes the targets that failed first.
5. `automated` syncs every target whose own record is not at the revision (a new
   revision, a VM that joined the selector), every target when the spec changed, and,
   with `selfHeal`, targets at the revision that drifted.

An operation, once started, takes every target that needs applying, as an Argo CD sync
takes every resource that is OutOfSync.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from vmgitops.api.application import ManagementPolicy, VMApplicationSpec
from vmgitops.api.units import parse_duration
from vmgitops.reconcile.app_status import TargetView
from vmgitops.rollout.engine import FAILED, RUNNING, OperationState


class Action(StrEnum):
    NONE = "None"
    START = "Start"
    RESUME = "Resume"
    RETRY = "Retry"


@dataclass(frozen=True)
class Policy:
    """What a VMApplicationSpec says about when to sync."""

    observe_only: bool = False
    paused: bool = False
    automated: bool = False
    self_heal: bool = False
    #: Retries after a failed operation; -1: forever; 0: none.
    retry_limit: int = 0
    backoff: float = 5.0
    factor: int = 2
    max_backoff: float = 180.0

    @classmethod
    def of(cls, spec: VMApplicationSpec) -> Policy:
        sp = spec.sync_policy
        automated = sp.automated if sp else None
        retry = sp.retry if sp else None
        return cls(
            observe_only=spec.management_policy == ManagementPolicy.OBSERVE_ONLY,
            paused=spec.paused,
            automated=automated is not None,
            self_heal=bool(automated and automated.self_heal),
            retry_limit=retry.limit if retry else 0,
            backoff=parse_duration(retry.backoff.duration) if retry else 5.0,
            factor=retry.backoff.factor if retry else 2,
            max_backoff=parse_duration(retry.backoff.max_duration) if retry else 180.0,
        )

    def backoff_after(self, attempt: int) -> float:
        """Seconds before retry number `attempt + 1`: duration * factor^attempt, capped."""
        return float(min(self.backoff * self.factor ** max(0, attempt), self.max_backoff))

    def may_retry(self, retry_count: int) -> bool:
        return self.retry_limit < 0 or retry_count < self.retry_limit


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    #: Targets the operation applies, and those among them that go first.
    pending: tuple[str, ...] = ()
    first: tuple[str, ...] = ()
    retry_count: int = 0
    #: When nothing starts now because a retry is not due yet: when it is.
    retry_at: datetime | None = None

    @property
    def runs(self) -> bool:
        return self.action != Action.NONE


def _short(revision: str | None) -> str:
    return (revision or "")[:12]


def decide(
    policy: Policy,
    views: Sequence[TargetView],
    *,
    revision: str | None,
    op: OperationState | None,
    retry_count: int,
    sync_now: bool,
    spec_changed: bool,
    now: datetime,
) -> Decision:
    """What this tick does about `revision`, given the observed targets and the last
    operation (from status.operation)."""
    needs = tuple(sorted(v.name for v in views if v.needs_apply))
    unhealthy = tuple(sorted(v.name for v in views if v.unhealthy_at(revision)))
    if revision is None:
        return Decision(Action.NONE, "no revision resolved yet", retry_count=retry_count)
    if policy.observe_only:
        return Decision(Action.NONE, "managementPolicy is ObserveOnly", retry_count=retry_count)
    if policy.paused:
        return Decision(Action.NONE, "spec.paused is true", retry_count=retry_count)
    if op is not None and op.phase == RUNNING:
        if op.revision == revision:
            # Unhealthy targets at the revision go through the health gate again: a crash
            # after a target's apply and before its gate's verdict was recorded leaves it
            # at the revision, and resuming without it reported a Degraded VM's operation
            # as Succeeded (found by the promotion chaos test).
            return Decision(
                Action.RESUME,
                f"resuming the operation at {_short(revision)}",
                needs + unhealthy,
                unhealthy,
                retry_count=retry_count,
            )
        return Decision(
            Action.START,
            f"{_short(revision)} supersedes the operation at {_short(op.revision)}",
            needs,
        )
    if sync_now:
        return Decision(
            Action.START, "a sync was requested (vmgitops.io/sync)", needs + unhealthy, unhealthy
        )
    if op is not None and op.phase == FAILED and op.revision == revision and not spec_changed:
        return _retry(policy, op, needs, unhealthy, retry_count, now)
    if not policy.automated:
        return Decision(
            Action.NONE,
            "no syncPolicy.automated: syncs only on request (vmgitops.io/sync)",
            retry_count=retry_count,
        )
    behind = [v for v in views if v.needs_apply and not v.at(revision)]
    if behind:
        names = ", ".join(v.name for v in behind[:5]) + (" ..." if len(behind) > 5 else "")
        return Decision(
            Action.START, f"{len(behind)} target(s) not at {_short(revision)}: {names}", needs
        )
    if spec_changed and needs:
        return Decision(Action.START, "the VMApplication's spec changed", needs)
    drifted = [v.name for v in views if v.drifted(revision)]
    if policy.self_heal and needs:
        return Decision(
            Action.START,
            f"self-heal: {len(drifted) or len(needs)} target(s) differ from {_short(revision)}",
            needs,
        )
    return Decision(Action.NONE, "nothing to sync", retry_count=retry_count)


def _retry(
    policy: Policy,
    op: OperationState,
    needs: tuple[str, ...],
    unhealthy: tuple[str, ...],
    retry_count: int,
    now: datetime,
) -> Decision:
    if not policy.may_retry(retry_count):
        tried = f" and {retry_count} retr{'y' if retry_count == 1 else 'ies'}" * (retry_count > 0)
        return Decision(
            Action.NONE,
            f"the operation at {_short(op.revision)} failed{tried}; push a new revision, "
            "change the spec or request a sync (vmgitops.io/sync)",
            retry_count=retry_count,
        )
    due = (op.finished_at or now) + timedelta(seconds=policy.backoff_after(retry_count))
    if now < due:
        return Decision(
            Action.NONE,
            f"retry {retry_count + 1} of the operation at {_short(op.revision)} is due at "
            f"{due.isoformat()}",
            retry_count=retry_count,
            retry_at=due,
        )
    pending = tuple(sorted(set(needs) | set(unhealthy)))
    if not pending:
        return Decision(Action.NONE, "nothing left to retry", retry_count=retry_count)
    return Decision(
        Action.RETRY,
        f"retry {retry_count + 1}"
        + (f"/{policy.retry_limit}" if policy.retry_limit >= 0 else "")
        + f" of the operation at {_short(op.revision)}",
        pending,
        unhealthy,
        retry_count=retry_count + 1,
    )
