"""A tick that fails because the Kubernetes API server is down: one clear line per
failure (the traceback only at DEBUG) and retries that back off; other errors keep
their traceback."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from vmgitops.handlers import applications as handlers
from vmgitops.kube.client import unreachable


def refused() -> Exception:
    cause = NewConnectionError(None, "Failed to establish a new connection: refused")  # type: ignore[arg-type]
    return MaxRetryError(None, "/apis/vmgitops.io/v1alpha1?token=s3cret", cause)  # type: ignore[arg-type]


class Reconciler:
    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes

    async def tick(self, body: Any) -> float:
        out = self.outcomes.pop(0)
        if isinstance(out, BaseException):
            raise out
        return float(out)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(refused(), "cannot connect (NewConnectionError)", id="connection-refused"),
        pytest.param(ConnectionResetError(), "cannot connect (ConnectionResetError)", id="reset"),
        pytest.param(
            ApiException(status=503, reason="Service Unavailable"),
            "the API server answered 503 Service Unavailable",
            id="503",
        ),
        pytest.param(
            ApiException(status=429, reason="Too Many Requests"),
            "the API server answered 429 Too Many Requests",
            id="429",
        ),
        pytest.param(ApiException(status=403, reason="Forbidden"), None, id="403-is-not-an-outage"),
        pytest.param(KeyError("x"), None, id="a-bug"),
    ],
)
def test_unreachable_classifies_outages(exc: BaseException, expected: str | None) -> None:
    assert unreachable(exc) == expected


async def test_api_server_down_logs_one_line_per_tick_and_backs_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="vmgitops.applications")
    r = Reconciler([refused(), refused(), refused(), 3600])
    delays, failures = [], 0
    for _ in range(4):
        delay, failures = await handlers._tick(r, {}, "ns/web", failures)  # type: ignore[arg-type]
        delays.append(delay)
    assert delays == [10.0, 20.0, 40.0, 3600.0]
    assert failures == 0
    shown = [rec for rec in caplog.records if rec.levelno >= logging.INFO]
    assert [rec.getMessage() for rec in shown] == [
        f"ns/web: the Kubernetes API server is unreachable: cannot connect "
        f"(NewConnectionError); retrying in {d}s (failure {n} in a row)"
        for n, d in ((1, 10), (2, 20), (3, 40))
    ] + ["ns/web: reconciled again after 3 failed tick(s)"]
    assert all(rec.exc_info is None for rec in shown), "tracebacks only at DEBUG"
    debug = [rec for rec in caplog.records if rec.levelno == logging.DEBUG]
    assert len(debug) == 3 and all(rec.exc_info for rec in debug)
    assert "s3cret" not in caplog.text.split("Traceback")[0]


async def test_backoff_is_capped(caplog: pytest.LogCaptureFixture) -> None:
    r = Reconciler([refused()])
    delay, failures = await handlers._tick(r, {}, "ns/web", 20)  # type: ignore[arg-type]
    assert (delay, failures) == (handlers.API_BACKOFF_MAX, 21)


async def test_an_unexpected_error_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    r = Reconciler([KeyError("boom")])
    delay, failures = await handlers._tick(r, {}, "ns/web", 0)  # type: ignore[arg-type]
    assert (delay, failures) == (10.0, 1)
    [rec] = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert rec.exc_info is not None
