"""set_condition: lastTransitionTime moves only when the status flips."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from vmgitops.api.conditions import (
    Condition,
    ConditionStatus,
    find_condition,
    is_true,
    set_condition,
)

T0 = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
T1 = datetime(2025, 1, 1, 0, 5, 0, tzinfo=UTC)
TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


def cond(
    type_: str,
    status: ConditionStatus,
    reason: str = "Because",
    message: str = "",
    since: datetime | None = T0,
    generation: int | None = None,
) -> Condition:
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


@pytest.mark.parametrize(
    ("before", "new", "after"),
    [
        pytest.param(
            [],
            cond("Ready", TRUE, since=None),
            [cond("Ready", TRUE, since=T1)],
            id="new-type-is-appended-with-now",
        ),
        pytest.param(
            [cond("Ready", TRUE)],
            cond("Ready", TRUE, since=None),
            [cond("Ready", TRUE, since=T0)],
            id="same-status-keeps-transition-time",
        ),
        pytest.param(
            [cond("Ready", FALSE, reason="Timeout", message="a")],
            cond("Ready", FALSE, reason="ConnectionRefused", message="b", since=None),
            [cond("Ready", FALSE, reason="ConnectionRefused", message="b", since=T0)],
            id="reason-and-message-change-is-not-a-transition",
        ),
        pytest.param(
            [cond("Ready", TRUE)],
            cond("Ready", FALSE, reason="Timeout", since=None),
            [cond("Ready", FALSE, reason="Timeout", since=T1)],
            id="status-flip-moves-transition-time",
        ),
        pytest.param(
            [cond("Ready", UNKNOWN)],
            cond("Ready", TRUE, since=None),
            [cond("Ready", TRUE, since=T1)],
            id="unknown-to-true-is-a-transition",
        ),
        pytest.param(
            [cond("Ready", TRUE, generation=1)],
            cond("Ready", TRUE, since=None, generation=2),
            [cond("Ready", TRUE, since=T0, generation=2)],
            id="observed-generation-is-updated-without-transition",
        ),
        pytest.param(
            [cond("Reachable", TRUE), cond("Ready", FALSE)],
            cond("Reachable", FALSE, since=None),
            [cond("Reachable", FALSE, since=T1), cond("Ready", FALSE)],
            id="order-is-kept",
        ),
        pytest.param(
            [cond("Ready", TRUE)],
            cond("Ready", TRUE, since=datetime(2000, 1, 1, tzinfo=UTC)),
            [cond("Ready", TRUE, since=T0)],
            id="caller-supplied-time-is-ignored",
        ),
        pytest.param(
            [cond("Ready", TRUE, since=None)],
            cond("Ready", TRUE, since=None),
            [cond("Ready", TRUE, since=T1)],
            id="missing-time-is-filled-in",
        ),
        pytest.param(
            [cond("Ready", TRUE), cond("Ready", FALSE)],
            cond("Ready", TRUE, since=None),
            [cond("Ready", TRUE, since=T0)],
            id="duplicates-of-the-type-are-dropped",
        ),
    ],
)
def test_set_condition(before: list[Condition], new: Condition, after: list[Condition]) -> None:
    assert set_condition(before, new, T1) == after


def test_set_condition_does_not_modify_its_input() -> None:
    before = [cond("Ready", TRUE)]
    snapshot = [c.model_copy(deep=True) for c in before]
    new = cond("Ready", FALSE, since=None)
    set_condition(before, new, T1)
    assert before == snapshot
    assert new.last_transition_time is None


def test_find_and_is_true() -> None:
    conditions = [cond("Reachable", TRUE), cond("Ready", FALSE)]
    assert find_condition(conditions, "Ready") == conditions[1]
    assert find_condition(conditions, "Synced") is None
    assert is_true(conditions, "Reachable")
    assert not is_true(conditions, "Ready")
    assert not is_true(conditions, "Synced")


def test_condition_wire_form() -> None:
    c = cond("Reachable", FALSE, reason="HostKeyMismatch", message="m", generation=3)
    assert c.to_dict() == {
        "type": "Reachable",
        "status": "False",
        "reason": "HostKeyMismatch",
        "message": "m",
        "lastTransitionTime": "2025-01-01T00:00:00Z",
        "observedGeneration": 3,
    }
    assert Condition.model_validate(c.to_dict()) == c


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"type": "Ready", "status": "Maybe", "reason": "X"}, id="status-not-tristate"),
        pytest.param({"type": "Ready", "status": "True", "reason": "host key"}, id="reason-spaces"),
        pytest.param({"type": "Ready", "status": "True", "reason": ""}, id="reason-empty"),
        pytest.param({"type": "", "status": "True", "reason": "X"}, id="type-empty"),
        pytest.param(
            {"type": "Ready", "status": "True", "reason": "X", "lastTransitionTime": "2025-01-01"},
            id="time-without-timezone",
        ),
    ],
)
def test_condition_refuses(data: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Condition.model_validate(data)
