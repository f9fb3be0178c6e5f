"""The rollout loop: batch by batch, persisting progress, stopping where it must.

I/O comes in through `RolloutHooks`, so the loop itself is the same whether it drives
real VMs or a table of outcomes in a unit test. Progress is saved after every batch, and a
restarted operator resumes from the VMs' own records (the caller recomputes `pending`
from observation), never from memory.
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
    failures: tuple[str, ...] = field(default=())


class RolloutHooks(Protocol):
    async def apply_batch(self, names: Sequence[str]) -> list[TargetOutcome]:
        """Apply the revision to these targets (concurrently) and health-check them."""

    async def save(self, state: OperationState) -> None:
        """Persist progress (status.operation)."""

    def interruption(self) -> str | None:
        """Why to stop before the next batch (paused, superseded...), or None to go on."""

    async def wait(self, seconds: float) -> None:
        """Sleep between batches; returns early when an interruption arrives."""

    def now(self) -> datetime: ...


def _failure_summary(failures: Sequence[str], limit: int = 5) -> str:
    shown = "; ".join(failures[:limit])
    more = len(failures) - limit
    return shown + (f"; and {more} more" if more > 0 else "")


async def run_rollout(
    state: OperationState,
    pending: Sequence[str],
    *,
    fleet_size: int,
    strategy: Strategy,
    hooks: RolloutHooks,
) -> OperationState:
    """Roll `state.revision` out to `pending` targets; returns the state it stopped in.

    Stops (phase stays Running) when `hooks.interruption()` says so between batches;
    fails when the failure budget is exceeded, leaving later batches untouched.
    """
    batches = plan_batches(pending, strategy, fleet_size)
    done = state.batch_current if state.phase == RUNNING else 0
    state = replace(
        state,
        phase=RUNNING,
        batch_total=done + len(batches),
        pending=sum(len(b) for b in batches),
        message="",
        started_at=state.started_at or hooks.now(),
        finished_at=None,
    )
    if not batches:
        return await _finish(state, hooks)
    await hooks.save(state)
    pause = parse_duration(strategy.rolling.pause_between_batches)
    for index, batch in enumerate(batches):
        if index > 0:
            why = hooks.interruption()
            if why is None and pause > 0:
                state = replace(
                    state,
                    message=f"waiting {strategy.rolling.pause_between_batches}"
                    f" before batch {state.batch_current + 1}",
                )
                await hooks.save(state)
                await hooks.wait(pause)
                why = hooks.interruption()
            if why is not None:
                state = replace(
                    state,
                    message=f"stopped before batch {state.batch_current + 1}"
                    f"/{state.batch_total}: {why}",
                )
                await hooks.save(state)
                return state
        outcomes = await hooks.apply_batch(batch)
        ok = [o for o in outcomes if o.ok]
        bad = [o for o in outcomes if not o.ok]
        state = replace(
            state,
            batch_current=state.batch_current + 1,
            succeeded=state.succeeded + len(ok),
            failed=state.failed + len(bad),
            pending=state.pending - len(batch),
            failures=state.failures + tuple(f"{o.name}: {o.message}" for o in bad),
            message="",
        )
        if budget_exceeded(state.failed, strategy):
            untouched = state.pending
            state = replace(
                state,
                phase=FAILED,
                finished_at=hooks.now(),
                message=(
                    f"{state.failed} target(s) failed, more than maxFailures "
                    f"{strategy.rolling.max_failures}; {untouched} target(s) left "
                    f"untouched: {_failure_summary(state.failures)}"
                ),
            )
            await hooks.save(state)
            return state
        await hooks.save(state)
    return await _finish(state, hooks)


async def _finish(state: OperationState, hooks: RolloutHooks) -> OperationState:
    message = f"{state.succeeded} target(s) synced" + (
        f", {state.failed} failed within the budget: {_failure_summary(state.failures)}"
        if state.failed
        else ""
    )
    state = replace(state, phase=SUCCEEDED, finished_at=hooks.now(), pending=0, message=message)
    await hooks.save(state)
    return state
