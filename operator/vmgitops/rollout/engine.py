"""The rollout loop: batch by batch, persisting progress, stopping where it must.

I/O comes in through `RolloutHooks`, so the loop itself is the same whether it drives
real VMs or a table of outcomes in a unit test. Progress is saved after every batch, and a
restarted operator resumes from the VMs' own records (the caller recomputes `pending`
from observation), never from memory: batch numbers continue where the saved state
stopped, and a resumed rollout passes the between-batches gate (interruptions, pause)
before its first batch, as it would have without the restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from vmgitops.api.application import Strategy
from vmgitops.api.units import parse_duration
from vmgitops.rollout.batches import budget_exceeded, plan_batches

RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"


@dataclass(frozen=True)
class TargetOutcome:
    """How applying (and health-checking) one target ended."""

    name: str
    ok: bool
    message: str = ""
    #: Neither a success nor a failure: the VM could not be reached (or left the
    #: selection). It spends no failure budget and is left for a later operation.
    skipped: bool = False
    #: What happened on the VM is not known (CommandOutcomeUnknown: a command may or may
    #: not have run, e.g. the connection was lost during the apply). A failure, and one
    #: that a later batch cannot make up for: the operation cannot succeed.
    unknown: bool = False


@dataclass(frozen=True)
class OperationState:
    """status.operation, as the loop sees it."""

    revision: str
    phase: str = RUNNING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    message: str = ""
    batch_current: int = 0
    batch_total: int = 0
    succeeded: int = 0
    failed: int = 0
    pending: int = 0
    #: "name: why" of each failed target of this run (not persisted).
    failures: tuple[str, ...] = field(default=())
    #: "name: why" of each skipped target of this run (not persisted).
    skipped: tuple[str, ...] = field(default=())
    #: Why the loop stopped before its last batch ("" when it did not).
    interrupted: str = ""
    #: "name: why" of each target whose outcome is unknown (not persisted).
    unknown: tuple[str, ...] = field(default=())


class RolloutHooks(Protocol):
    async def apply_batch(self, names: Sequence[str]) -> list[TargetOutcome]:
        """Apply the revision to these targets (concurrently) and health-check them."""

    async def save(self, state: OperationState) -> None:
        """Persist progress (status.operation)."""

    async def interruption(self) -> str | None:
        """Why to stop before the next batch (paused, superseded...), or None to go on."""

    async def wait(self, seconds: float) -> None:
        """Sleep between batches; returns early when an interruption arrives."""

    def now(self) -> datetime: ...


def _summary(items: Sequence[str], limit: int = 5) -> str:
    shown = "; ".join(items[:limit])
    more = len(items) - limit
    return shown + (f"; and {more} more" if more > 0 else "")


async def _gate(state: OperationState, strategy: Strategy, hooks: RolloutHooks) -> str | None:
    """Between two batches: an interruption, or the pause (cut short by one)."""
    why = await hooks.interruption()
    pause = parse_duration(strategy.rolling.pause_between_batches)
    if why is None and pause > 0:
        await hooks.save(
            replace(
                state,
                message=f"waiting {strategy.rolling.pause_between_batches}"
                f" before batch {state.batch_current + 1}/{state.batch_total}",
            )
        )
        await hooks.wait(pause)
        why = await hooks.interruption()
    return why


async def run_rollout(
    state: OperationState,
    pending: Sequence[str],
    *,
    fleet_size: int,
    strategy: Strategy,
    hooks: RolloutHooks,
    first: Sequence[str] = (),
) -> OperationState:
    """Roll `state.revision` out to `pending` targets; returns the state it stopped in.

    Stops (phase stays Running, `interrupted` says why) when `hooks.interruption()` says
    so between batches; fails when the failure budget is exceeded, leaving later batches
    untouched. `first` targets lead the order (see plan_batches).
    """
    batches = plan_batches(pending, strategy, fleet_size, first=first)
    resuming = state.phase == RUNNING and state.batch_current > 0
    done = state.batch_current if state.phase == RUNNING else 0
    state = replace(
        state,
        phase=RUNNING,
        batch_current=done,
        batch_total=done + len(batches),
        pending=sum(len(b) for b in batches),
        message="",
        started_at=state.started_at or hooks.now(),
        finished_at=None,
        interrupted="",
    )
    if not batches:
        return await _finish(state, hooks)
    await hooks.save(state)
    for index, batch in enumerate(batches):
        if index > 0 or resuming:
            why = await _gate(state, strategy, hooks)
            if why is not None:
                state = replace(
                    state,
                    interrupted=why,
                    message=f"stopped before batch {state.batch_current + 1}"
                    f"/{state.batch_total}: {why}",
                )
                await hooks.save(state)
                return state
        outcomes = await hooks.apply_batch(batch)
        # An unknown outcome is never a success, nor a skip "for later".
        ok = [o for o in outcomes if o.ok and not o.skipped and not o.unknown]
        bad = [o for o in outcomes if (not o.ok and not o.skipped) or o.unknown]
        skipped = [o for o in outcomes if o.skipped and not o.unknown]
        state = replace(
            state,
            batch_current=state.batch_current + 1,
            succeeded=state.succeeded + len(ok),
            failed=state.failed + len(bad),
            pending=state.pending - len(batch),
            failures=state.failures + tuple(f"{o.name}: {o.message}" for o in bad),
            skipped=state.skipped + tuple(f"{o.name}: {o.message}" for o in skipped),
            unknown=state.unknown + tuple(f"{o.name}: {o.message}" for o in outcomes if o.unknown),
            message="",
        )
        if budget_exceeded(state.failed, strategy):
            state = replace(
                state,
                phase=FAILED,
                finished_at=hooks.now(),
                message=(
                    f"{state.failed} target(s) failed, more than maxFailures "
                    f"{strategy.rolling.max_failures}; {state.pending} target(s) left "
                    f"untouched: {_summary(state.failures)}"
                ),
            )
            await hooks.save(state)
            return state
        await hooks.save(state)
    return await _finish(state, hooks)


async def _finish(state: OperationState, hooks: RolloutHooks) -> OperationState:
    if state.unknown:
        # Within the failure budget or not: the operation did not do what it says on
        # those VMs, and only a human can tell what it did.
        state = replace(
            state,
            phase=FAILED,
            finished_at=hooks.now(),
            pending=len(state.skipped),
            message=(
                f"the outcome on {len(state.unknown)} target(s) is unknown: "
                f"{_summary(state.unknown)}; {state.succeeded} target(s) synced"
            ),
        )
        await hooks.save(state)
        return state
    message = f"{state.succeeded} target(s) synced"
    if state.failed:
        message += f", {state.failed} failed within the budget: {_summary(state.failures)}"
    if state.skipped:
        message += f"; {len(state.skipped)} left for a later operation: {_summary(state.skipped)}"
    state = replace(
        state,
        phase=SUCCEEDED,
        finished_at=hooks.now(),
        pending=len(state.skipped),
        message=message,
    )
    await hooks.save(state)
    return state
