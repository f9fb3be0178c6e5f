"""Pure: from a probe's outcome and the target's current status to the status patch.

Status is written only when something changed, so that a fleet of 5,000 quiet targets
costs the API server nothing between transitions; `lastProbeTime` alone is refreshed at
most every `refresh_after` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from vmgitops.api.base import format_time, parse_time
from vmgitops.api.conditions import (
    REACHABLE,
    READY,
    Condition,
    ConditionStatus,
    find_condition,
    set_condition,
)

CONNECTED = "Connected"
PAUSED = "Paused"


@dataclass(frozen=True)
class ProbeOutcome:
    """What one probe of a VM found. Messages carry no secret."""

    reachable: bool
    reason: str
    message: str
    facts: dict[str, Any] | None = None
    #: The host key fingerprint the VM presented ("SHA256:..."), when known.
    fingerprint: str | None = None


@dataclass(frozen=True)
class Transition:
    """A change of the Reachable condition, worth one Kubernetes Event."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class StatusUpdate:
    patch: dict[str, Any] = field(default_factory=dict)
    transition: Transition | None = None


def _conditions(status: dict[str, Any]) -> list[Condition]:
    return [Condition.model_validate(c) for c in status.get("conditions") or []]


def next_status(
    status: dict[str, Any],
    outcome: ProbeOutcome | None,
    *,
    generation: int,
    now: datetime,
    paused: bool,
    refresh_after: float,
) -> StatusUpdate:
    """The status patch (only changed keys) after a probe, or after pausing (outcome None)."""
    old_conditions = _conditions(status)
    conditions = list(old_conditions)
    desired: dict[str, Any] = {}
    if outcome is not None:
        reachable = Condition(
            type=REACHABLE,
            status=ConditionStatus.TRUE if outcome.reachable else ConditionStatus.FALSE,
            reason=outcome.reason,
            message=outcome.message,
            observed_generation=generation,
        )
        conditions = set_condition(conditions, reachable, now)
        if outcome.facts is not None:
            desired["facts"] = outcome.facts
        if outcome.fingerprint and outcome.reachable:
            desired["hostKeyFingerprint"] = outcome.fingerprint
    current_reachable = find_condition(conditions, REACHABLE)
    if paused:
        ready = Condition(
            type=READY,
            status=ConditionStatus.FALSE,
            reason=PAUSED,
            message="spec.paused is true: the target is not probed nor changed",
            observed_generation=generation,
        )
    elif current_reachable is not None:
        ready = current_reachable.model_copy(update={"type": READY, "last_transition_time": None})
    else:
        ready = None
    if ready is not None:
        conditions = set_condition(conditions, ready, now)
    desired["conditions"] = [c.to_dict() for c in conditions]
    desired["observedGeneration"] = generation

    patch = {k: v for k, v in desired.items() if status.get(k) != v}
    last = parse_time(status.get("lastProbeTime"))
    if outcome is not None and (
        patch or last is None or now - last >= timedelta(seconds=refresh_after)
    ):
        patch["lastProbeTime"] = format_time(now)

    transition = None
    before = find_condition(old_conditions, REACHABLE)
    if outcome is not None and (
        before is None
        or before.status != current_reachable.status  # type: ignore[union-attr]
        or before.reason != outcome.reason
    ):
        transition = Transition(
            type="Normal" if outcome.reachable else "Warning",
            reason=outcome.reason,
            message=outcome.message,
        )
    return StatusUpdate(patch=patch, transition=transition)


# -- when the periodic probe is due ---------------------------------------------------


def fleet_probe_interval(fleet_size: int, floor: float, budget: float) -> float:
    """Seconds between two periodic probes of one target.

    `floor` is the configured interval (VMGITOPS_PROBE_INTERVAL), never shortened. A
    fleet that would probe more than `budget` targets a second at that interval has its
    interval stretched to fleet_size / budget: 5,000 targets every 60 s would be 83 SSH
    commands a second for reachability alone. `budget` <= 0: no fleet-wide limit.
    """
    if budget <= 0 or fleet_size <= 0:
        return floor
    return max(floor, fleet_size / budget)


def probe_due(last: float | None, now: float, interval: float, tick: float) -> bool:
    """Whether the timer firing now (every `tick` seconds) probes a target last probed
    at `last` (None: never by this process).

    At the configured interval (interval <= tick) half a tick of slack: a probe made a
    moment ago by an edit skips this firing, a firing a moment early does not. A
    stretched interval is rounded up to whole ticks, so the budget is never exceeded.
    """
    if last is None:
        return True
    slack = tick / 2 if interval <= tick else 0.0
    return now - last >= interval - slack
