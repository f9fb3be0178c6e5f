"""Settling a CommandOutcomeUnknown: the annotation's syntax, the op each answer asks of
the VM, and what each VM-side status means."""

from __future__ import annotations

import pytest

from vmgitops.manifest.desired import DesiredCommand
from vmgitops.plan import lifecycle
from vmgitops.plan.resolution import (
    DEFERRED,
    FORGET,
    RAN,
    REFUSED,
    RERUN,
    RESOLVED,
    MalformedResolve,
    ResolveOp,
    ResolveRequest,
    ResolveResult,
    parse_resolve,
    resolve_op,
    resolve_result,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("web/migrate=ran", ResolveRequest("web", "migrate", RAN), id="ran"),
        pytest.param("web/migrate=rerun", ResolveRequest("web", "migrate", RERUN), id="rerun"),
        pytest.param(
            "  web.v2/db-migrate_1=ran\n",
            ResolveRequest("web.v2", "db-migrate_1", RAN),
            id="white-space-around-is-ignored",
        ),
    ],
)
def test_well_formed_requests_parse(value: str, expected: ResolveRequest) -> None:
    assert parse_resolve(value) == expected
    assert str(expected) == value.strip()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        pytest.param("", "is not", id="empty"),
        pytest.param("web/migrate", "is not", id="no-action"),
        pytest.param("migrate=ran", "is not", id="no-application"),
        pytest.param("web/migrate=done", "must be ran or rerun", id="unknown-action"),
        pytest.param("web/migrate=RAN", "must be ran or rerun", id="action-is-lower-case"),
        pytest.param("Web/migrate=ran", "not a VMApplication name", id="app-upper-case"),
        pytest.param("/migrate=ran", "not a VMApplication name", id="app-empty"),
        pytest.param("web/=ran", "not a command name", id="command-empty"),
        pytest.param("web/a/b=ran", "not a command name", id="command-with-slash"),
        pytest.param("web/mig rate=ran", "not a command name", id="command-with-space"),
        pytest.param("web/migrate=ran=ran", "not a command name", id="two-equals-signs"),
    ],
)
def test_malformed_requests_are_refused_with_the_syntax(value: str, why: str) -> None:
    with pytest.raises(MalformedResolve) as exc:
        parse_resolve(value)
    assert why in str(exc.value)


def test_a_long_malformed_value_is_cut_in_the_message() -> None:
    with pytest.raises(MalformedResolve) as exc:
        parse_resolve("x" * 5000)
    assert len(str(exc.value)) < 200


COMMANDS = (
    DesiredCommand("migrate", ("/bin/migrate",), trigger_digest="d1"),
    DesiredCommand("seed", ("/bin/seed",), trigger_digest="d2"),
)


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        pytest.param(
            ResolveRequest("web", "seed", RAN), ResolveOp(RAN, "d2"), id="ran-records-the-digest"
        ),
        pytest.param(
            ResolveRequest("web", "migrate", RERUN), ResolveOp(RERUN), id="rerun-needs-no-digest"
        ),
        pytest.param(
            ResolveRequest("web", "gone", RAN),
            ResolveOp(FORGET),
            id="ran-of-a-removed-command-only-clears-its-pending-marker",
        ),
    ],
)
def test_resolve_op(request_: ResolveRequest, expected: ResolveOp) -> None:
    assert resolve_op(request_, COMMANDS) == expected


def test_rerun_of_a_command_the_app_does_not_have_is_refused() -> None:
    got = resolve_op(ResolveRequest("web", "gone", RERUN), COMMANDS)
    assert isinstance(got, ResolveResult)
    assert got.reason == REFUSED and "has no command 'gone'" in got.message and got.final


RAN_REQ = ResolveRequest("web", "migrate", RAN)
RERUN_REQ = ResolveRequest("web", "migrate", RERUN)


@pytest.mark.parametrize(
    ("request_", "op", "status", "reason", "words"),
    [
        pytest.param(
            RAN_REQ, ResolveOp(RAN, "d"), "resolved", RESOLVED, "recorded as run", id="ran"
        ),
        pytest.param(
            RAN_REQ, ResolveOp(RAN, "d"), "already", RESOLVED, "already recorded", id="ran-again"
        ),
        pytest.param(
            RERUN_REQ, ResolveOp(RERUN), "resolved", RESOLVED, "next apply runs it", id="rerun"
        ),
        pytest.param(
            RERUN_REQ, ResolveOp(RERUN), "already", RESOLVED, "nothing pending", id="rerun-again"
        ),
        pytest.param(
            RAN_REQ, ResolveOp(FORGET), "resolved", RESOLVED, "cleared", id="forget-removed"
        ),
        pytest.param(
            RAN_REQ, ResolveOp(FORGET), "nopending", REFUSED, "has no command", id="no-such"
        ),
        pytest.param(
            RAN_REQ, ResolveOp(RAN, "d"), "nopending", REFUSED, "no pending marker", id="nothing"
        ),
        pytest.param(
            RAN_REQ, ResolveOp(RAN, "d"), "error", REFUSED, "cannot resolve", id="vm-error"
        ),
        pytest.param(RAN_REQ, ResolveOp(RAN, "d"), "busy", DEFERRED, "lock", id="busy-waits"),
    ],
)
def test_resolve_result(
    request_: ResolveRequest, op: ResolveOp, status: str, reason: str, words: str
) -> None:
    got = resolve_result(request_, op, status, "")
    assert got.reason == reason and words in got.message
    assert got.final is (reason != DEFERRED)


def test_the_blocked_plan_names_the_supported_way_out() -> None:
    message = lifecycle._unknown("migrate", "started 2024-01-01T00:00:00Z")
    assert "vmgitops resolve APP --target TARGET --command migrate --ran" in message
    assert "--rerun" in message and "vmgitops.io/resolve-command" in message
