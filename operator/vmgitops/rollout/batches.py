"""Pure: which targets go in which batch, and when a rollout must stop.

A rollout is a list of batches of target names; a batch is applied and health-checked as
a whole before the next starts. The failure budget (`maxFailures`) counts failed targets
over the whole operation: when it is exceeded the operation fails and the remaining
targets are left untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

from vmgitops.api.application import Strategy, StrategyType
from vmgitops.api.units import resolve_int_or_percent


def batch_size(strategy: Strategy, fleet_size: int) -> int:
    """How many targets may be changed (and so unavailable) at once."""
    if fleet_size <= 0:
        return 0
    if strategy.type == StrategyType.ALL_AT_ONCE:
        return fleet_size
    return max(1, resolve_int_or_percent(strategy.rolling.max_unavailable, fleet_size))


def plan_batches(
    pending: Sequence[str],
    strategy: Strategy,
    fleet_size: int,
    *,
    first: Sequence[str] = (),
) -> list[list[str]]:
    """The pending targets in batches of at most `batch_size`.

    Sorted by name, so that a resumed rollout picks the same order. `first` (targets
    that failed at this revision, retried) lead: a retry that fails again spends the
    failure budget on them, not on targets that are still untouched.
    """
    size = batch_size(strategy, fleet_size)
    lead = sorted(set(first))
    ordered = lead + sorted(set(pending) - set(lead))
    if size <= 0 or not ordered:
        return []
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def budget_exceeded(failed: int, strategy: Strategy) -> bool:
    """True when more targets failed than the strategy tolerates."""
    return failed > strategy.rolling.max_failures
