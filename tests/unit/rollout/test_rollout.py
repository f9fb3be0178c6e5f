from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from vmgitops.api.application import RollingStrategy, Strategy, StrategyType
from vmgitops.rollout.batches import batch_size, plan_batches
from vmgitops.rollout.engine import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    OperationState,
    TargetOutcome,
    run_rollout,
)

T0 = datetime(2026, 11, 26, tzinfo=UTC)


def rolling(
    max_unavailable: int | str = "25%", max_failures: int = 1, pause: str = "0s"
) -> Strategy:
    return Strategy(
        type=StrategyType.ROLLING,
        rolling=RollingStrategy(
            max_unavailable=max_unavailable, max_failures=max_failures, pause_between_batches=pause
        ),
    )


@pytest.mark.parametrize(
    ("strategy", "fleet", "size"),
    [
        pytest.param(rolling("25%"), 4, 1, id="quarter-of-four-is-one"),
        pytest.param(rolling("25%"), 10, 2, id="quarter-of-ten-rounds-down"),
        pytest.param(rolling("1%"), 10, 1, id="never-zero"),
        pytest.param(rolling(3), 10, 3, id="absolute-count"),
        pytest.param(rolling(30), 10, 10, id="count-capped-at-fleet"),
        pytest.param(Strategy(type=StrategyType.ALL_AT_ONCE), 7, 7, id="all-at-once"),
        pytest.param(rolling("25%"), 0, 0, id="empty-fleet"),
    ],
)
def test_batch_size(strategy: Strategy, fleet: int, size: int) -> None:
    assert batch_size(strategy, fleet) == size


def test_batches_are_sorted_and_stable() -> None:
    assert plan_batches(["c", "a", "d", "b", "a"], rolling(2), 4) == [["a", "b"], ["c", "d"]]


def test_retried_targets_lead_so_a_second_failure_spends_the_budget_on_them() -> None:
    assert plan_batches(["a", "b", "c"], rolling(1), 3, first=["c"]) == [["c"], ["a"], ["b"]]


@dataclass
class Script:
    """Outcomes by target name, and interruptions by batch index."""

    failing: dict[str, str] = field(default_factory=dict)
    unreachable: set[str] = field(default_factory=set)
    #: Lost the connection during the apply (or blocked by CommandOutcomeUnknown).
    unknown: dict[str, str] = field(default_factory=dict)
    interrupt_before: dict[int, str] = field(default_factory=dict)
    applied: list[list[str]] = field(default_factory=list)
    saved: list[OperationState] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    async def apply_batch(self, names: Sequence[str]) -> list[TargetOutcome]:
        self.applied.append(list(names))
        return [
            TargetOutcome(n, False, self.unknown[n], unknown=True)
            if n in self.unknown
            else TargetOutcome(n, False, "refused", skipped=True)
            if n in self.unreachable
            else TargetOutcome(n, n not in self.failing, self.failing.get(n, ""))
            for n in names
        ]

    async def save(self, state: OperationState) -> None:
        self.saved.append(state)

    async def interruption(self) -> str | None:
        return self.interrupt_before.get(len(self.applied))

    async def wait(self, seconds: float) -> None:
        self.waits.append(seconds)

    def now(self) -> datetime:
        return T0


NAMES = ["vm1", "vm2", "vm3", "vm4"]

CASES = [
    pytest.param(
        rolling(1),
        Script(),
        SUCCEEDED,
        [["vm1"], ["vm2"], ["vm3"], ["vm4"]],
        (4, 0),
        id="one-at-a-time",
    ),
    pytest.param(
        rolling(2),
        Script(),
        SUCCEEDED,
        [["vm1", "vm2"], ["vm3", "vm4"]],
        (4, 0),
        id="two-per-batch",
    ),
    pytest.param(
        rolling(1, max_failures=0),
        Script(failing={"vm2": "unit failed"}),
        FAILED,
        [["vm1"], ["vm2"]],
        (1, 1),
        id="budget-zero-stops-at-first-failure",
    ),
    pytest.param(
        rolling(1, max_failures=1),
        Script(failing={"vm2": "x"}),
        SUCCEEDED,
        [["vm1"], ["vm2"], ["vm3"], ["vm4"]],
        (3, 1),
        id="one-failure-within-budget",
    ),
    pytest.param(
        rolling(2, max_failures=1),
        Script(failing={"vm1": "x", "vm2": "y"}),
        FAILED,
        [["vm1", "vm2"]],
        (0, 2),
        id="batch-exceeding-budget-leaves-rest-untouched",
    ),
    pytest.param(
        rolling(1),
        Script(interrupt_before={2: "spec.paused is true"}),
        RUNNING,
        [["vm1"], ["vm2"]],
        (2, 0),
        id="paused-stops-between-batches",
    ),
    pytest.param(
        rolling(2),
        Script(interrupt_before={1: "superseded by abc"}),
        RUNNING,
        [["vm1", "vm2"]],
        (2, 0),
        id="newer-revision-finishes-current-batch",
    ),
    pytest.param(
        Strategy(type=StrategyType.ALL_AT_ONCE),
        Script(),
        SUCCEEDED,
        [NAMES],
        (4, 0),
        id="all-at-once-single-batch",
    ),
]


@pytest.mark.parametrize(("strategy", "script", "phase", "applied", "counts"), CASES)
async def test_rollout(
    strategy: Strategy,
    script: Script,
    phase: str,
    applied: list[list[str]],
    counts: tuple[int, int],
) -> None:
    state = await run_rollout(
        OperationState(revision="r1"), NAMES, fleet_size=4, strategy=strategy, hooks=script
    )
    assert state.phase == phase
    assert script.applied == applied
    assert (state.succeeded, state.failed) == counts
    assert script.saved[-1] == state, "the final state is persisted"
    if phase == FAILED:
        assert "left untouched" in state.message
    if phase == RUNNING:
        assert "stopped before batch" in state.message


async def test_resume_counts_previous_batches() -> None:
    script = Script()
    before = OperationState(
        revision="r1", batch_current=2, batch_total=4, succeeded=2, started_at=T0
    )
    state = await run_rollout(
        before, ["vm3", "vm4"], fleet_size=4, strategy=rolling(1), hooks=script
    )
    assert state.phase == SUCCEEDED
    assert (state.batch_current, state.batch_total, state.succeeded) == (4, 4, 4)
    assert script.applied == [["vm3"], ["vm4"]]


async def test_pause_between_batches_waits() -> None:
    script = Script()
    await run_rollout(
        OperationState(revision="r1"),
        NAMES[:2],
        fleet_size=2,
        strategy=rolling(1, pause="30s"),
        hooks=script,
    )
    assert script.waits == [30.0]


async def test_nothing_pending_succeeds_at_once() -> None:
    script = Script()
    state = await run_rollout(
        OperationState(revision="r1"), [], fleet_size=4, strategy=rolling(1), hooks=script
    )
    assert state.phase == SUCCEEDED and script.applied == []


async def test_unreachable_target_is_skipped_not_failed() -> None:
    script = Script(unreachable={"vm2"})
    state = await run_rollout(
        OperationState(revision="r1"),
        NAMES,
        fleet_size=4,
        strategy=rolling(1, max_failures=0),
        hooks=script,
    )
    assert state.phase == SUCCEEDED
    assert (state.succeeded, state.failed, state.pending) == (3, 0, 1)
    assert "left for a later operation: vm2: refused" in state.message


async def test_resumed_rollout_passes_the_gate_before_its_first_batch() -> None:
    # Killed while waiting between batch 1 and 2: the pause is waited again, and a
    # pause (spec.paused) set meanwhile holds the rollout before it applies anything.
    script = Script(interrupt_before={0: "spec.paused is true"})
    before = OperationState(revision="r1", batch_current=1, batch_total=2, succeeded=2)
    state = await run_rollout(
        before, ["vm3", "vm4"], fleet_size=4, strategy=rolling(2), hooks=script
    )
    assert state.phase == RUNNING and script.applied == []
    assert state.interrupted == "spec.paused is true"
    assert "stopped before batch 2/2" in state.message

    script = Script()
    state = await run_rollout(
        before, ["vm3", "vm4"], fleet_size=4, strategy=rolling(2, pause="20s"), hooks=script
    )
    assert script.waits == [20.0]
    assert (state.phase, state.batch_current, state.batch_total) == (SUCCEEDED, 2, 2)


async def test_a_new_operation_does_not_wait_before_its_first_batch() -> None:
    script = Script()
    await run_rollout(
        OperationState(revision="r1"),
        NAMES,
        fleet_size=4,
        strategy=rolling(2, pause="20s"),
        hooks=script,
    )
    assert script.waits == [20.0]


UNKNOWN = "CommandOutcomeUnknown: command 'migrate' was started but its outcome is unknown"


@pytest.mark.parametrize(
    ("max_failures", "unknown", "phase", "failed", "fragment"),
    [
        pytest.param(
            5,
            {"b": UNKNOWN},
            FAILED,
            1,
            "the outcome on 1 target(s) is unknown: b: CommandOutcomeUnknown",
            id="within-the-budget-still-not-succeeded",
        ),
        pytest.param(
            0,
            {"a": UNKNOWN},
            FAILED,
            1,
            "more than maxFailures 0",
            id="over-the-budget",
        ),
        pytest.param(5, {}, SUCCEEDED, 0, "4 target(s) synced", id="no-unknown-succeeds"),
    ],
)
async def test_an_unknown_outcome_is_never_a_success(
    max_failures: int, unknown: dict[str, str], phase: str, failed: int, fragment: str
) -> None:
    hooks = Script(unknown=unknown)
    state = await run_rollout(
        OperationState(revision="r"),
        ["a", "b", "c", "d"],
        fleet_size=4,
        strategy=rolling(1, max_failures=max_failures),
        hooks=hooks,
    )
    assert state.phase == phase
    assert state.failed == failed
    assert fragment in state.message
    assert hooks.saved[-1] == state


async def test_an_unknown_outcome_is_not_a_skip_left_for_later() -> None:
    hooks = Script(unknown={"a": UNKNOWN}, unreachable={"b"})
    state = await run_rollout(
        OperationState(revision="r"),
        ["a", "b"],
        fleet_size=2,
        strategy=rolling(2, max_failures=1),
        hooks=hooks,
    )
    assert (state.phase, state.succeeded, state.failed, state.pending) == (FAILED, 0, 1, 1)
    assert "b: refused" not in " ".join(state.unknown)
