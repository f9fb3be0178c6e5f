from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vmgitops.reconcile.target_status import (
    ProbeOutcome,
    fleet_probe_interval,
    next_status,
    probe_due,
)

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
OK = ProbeOutcome(
    True,
    "Connected",
    "connected to 127.0.10.1:22",
    facts={"hostname": "vm1"},
    fingerprint="SHA256:abc",
)
REFUSED = ProbeOutcome(False, "ConnectionRefused", "127.0.10.1:22 refused the connection")


def settled(outcome: ProbeOutcome, generation: int = 1, at: datetime = NOW) -> dict[str, Any]:
    """The status as it stands after `outcome` was written."""
    return next_status(
        {}, outcome, generation=generation, now=at, paused=False, refresh_after=300
    ).patch


CASES = [
    pytest.param(
        {},
        OK,
        1,
        NOW,
        {"conditions", "facts", "hostKeyFingerprint", "observedGeneration", "lastProbeTime"},
        "Connected",
        id="first-probe-writes-everything",
    ),
    pytest.param(
        settled(OK), OK, 1, NOW + timedelta(seconds=60), set(), None, id="same-state-writes-nothing"
    ),
    pytest.param(
        settled(OK),
        OK,
        1,
        NOW + timedelta(seconds=301),
        {"lastProbeTime"},
        None,
        id="quiet-target-refreshes-probe-time-rarely",
    ),
    pytest.param(
        settled(OK),
        REFUSED,
        1,
        NOW + timedelta(seconds=60),
        {"conditions", "lastProbeTime"},
        "ConnectionRefused",
        id="becoming-unreachable-is-a-transition",
    ),
    pytest.param(
        settled(OK),
        OK,
        2,
        NOW + timedelta(seconds=60),
        {"conditions", "observedGeneration", "lastProbeTime"},
        None,
        id="new-generation-is-recorded",
    ),
]


@pytest.mark.parametrize(("status", "outcome", "generation", "now", "keys", "event"), CASES)
def test_next_status(
    status: dict[str, Any],
    outcome: ProbeOutcome,
    generation: int,
    now: datetime,
    keys: set[str],
    event: str | None,
) -> None:
    update = next_status(
        status, outcome, generation=generation, now=now, paused=False, refresh_after=300
    )
    assert set(update.patch) == keys
    assert (update.transition.reason if update.transition else None) == event


def test_transition_time_kept_when_only_the_reason_changes() -> None:
    first = settled(REFUSED)
    later = NOW + timedelta(seconds=90)
    timeout = ProbeOutcome(False, "Timeout", "no answer")
    patch = next_status(
        first, timeout, generation=1, now=later, paused=False, refresh_after=300
    ).patch
    reachable = next(c for c in patch["conditions"] if c["type"] == "Reachable")
    assert reachable["reason"] == "Timeout"
    assert reachable["lastTransitionTime"] == "2026-11-26T12:00:00Z"


def test_paused_target_is_not_ready() -> None:
    patch = next_status(
        settled(OK), None, generation=2, now=NOW, paused=True, refresh_after=300
    ).patch
    ready = next(c for c in patch["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Paused")
    assert "lastProbeTime" not in patch


def test_unreachable_keeps_last_known_facts_and_fingerprint() -> None:
    patch = next_status(
        settled(OK), REFUSED, generation=1, now=NOW, paused=False, refresh_after=300
    ).patch
    assert "facts" not in patch and "hostKeyFingerprint" not in patch


@pytest.mark.parametrize(
    ("fleet", "floor", "budget", "expected"),
    [
        pytest.param(10, 60, 20, 60, id="small-fleet-keeps-the-configured-interval"),
        pytest.param(1200, 60, 20, 60, id="at-the-budget"),
        pytest.param(5000, 60, 20, 250, id="5000-targets-within-20-per-second"),
        pytest.param(5000, 300, 20, 300, id="configured-interval-is-the-floor"),
        pytest.param(5000, 60, 0, 60, id="no-budget-no-limit"),
        pytest.param(0, 60, 20, 60, id="no-targets"),
    ],
)
def test_fleet_probe_interval(fleet: int, floor: float, budget: float, expected: float) -> None:
    assert fleet_probe_interval(fleet, floor, budget) == expected


@pytest.mark.parametrize(
    ("last", "now", "interval", "tick", "due"),
    [
        pytest.param(None, 5.0, 250, 60, True, id="never-probed"),
        pytest.param(0.0, 60.0, 60, 60, True, id="every-tick-at-the-floor"),
        pytest.param(0.0, 58.0, 60, 60, True, id="a-tick-slightly-early"),
        pytest.param(0.0, 12.0, 60, 60, False, id="just-probed-by-an-edit"),
        pytest.param(0.0, 240.0, 250, 60, False, id="fourth-tick-of-a-250s-interval"),
        pytest.param(0.0, 300.0, 250, 60, True, id="rounded-up-to-the-fifth-tick"),
    ],
)
def test_probe_due(last: float | None, now: float, interval: float, tick: float, due: bool) -> None:
    assert probe_due(last, now, interval, tick) is due
