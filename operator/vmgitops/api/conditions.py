"""Status conditions, shaped like metav1.Condition, and the pure helpers to update them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import Field, NonNegativeInt

from vmgitops.api.base import ApiModel, Reason, Time

_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
"""The condition type pattern of metav1.Condition."""

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
REACHABLE = "Reachable"
SYNCED = "Synced"
HEALTHY = "Healthy"


class ConditionStatus(StrEnum):
    """Whether the condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One aspect of an object's current state."""

    type: str = Field(min_length=1, max_length=316, pattern=_TYPE_PATTERN)
    """The aspect, in CamelCase: Ready, Reachable, Synced, Healthy."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: Reason
    """Why the condition has this status, in CamelCase, for programs."""
    message: str = Field(default="", max_length=32768)
    """Why the condition has this status, for humans."""
    last_transition_time: Time | None = None
    """When the status last changed (not when the reason or message did)."""
    observed_generation: NonNegativeInt | None = None
    """The metadata.generation the condition was computed from."""


def find_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """The condition of that type, if present."""
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Sequence[Condition], type_: str) -> bool:
    """True only when the condition is present with status True."""
    found = find_condition(conditions, type_)
    return found is not None and found.status == ConditionStatus.TRUE


def set_condition(
    conditions: Sequence[Condition], new: Condition, now: datetime
) -> list[Condition]:
    """A new list where the condition of `new.type` is `new`, keeping the order.

    lastTransitionTime becomes `now` when the type is new or its status flips, and is
    kept otherwise, so that a reason or message change alone does not look like a
    transition. The input list and its items are not modified.
    """
    result: list[Condition] = []
    replaced = False
    for old in conditions:
        if old.type != new.type:
            result.append(old)
            continue
        if replaced:
            continue  # drop duplicates of the type, which a well-formed list never has
        replaced = True
        since = old.last_transition_time if old.status == new.status else None
        result.append(new.model_copy(update={"last_transition_time": since or now}))
    if not replaced:
        result.append(new.model_copy(update={"last_transition_time": now}))
    return result
