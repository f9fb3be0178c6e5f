"""The plumbing the cluster commands share (cli.common): polling, lookups, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vmgitops.api import meta
from vmgitops.cli import cmd_sync
from vmgitops.cli.common import (
    EXIT_TIMEOUT,
    EXIT_USAGE,
    CliError,
    Cluster,
    fail,
    get_object,
    wait_until,
)
from vmgitops.kube.client import NotFound


class Clock:
    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_wait_until_returns_the_first_answer_or_none_after_the_limit() -> None:
    answers = iter([None, None, "yes"])
    seen: list[float] = []

    async def check() -> str | None:
        return next(answers)

    got = asyncio.run(wait_until(check, limit=60, interval=0, waiting=seen.append, clock=Clock(1)))
    assert got == "yes"
    assert seen == [1.0, 2.0]

    async def never() -> str | None:
        return None

    assert asyncio.run(wait_until(never, limit=3, interval=0, clock=Clock(1))) is None


class FakeKube:
    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    async def get(self, kind: Any, namespace: str, name: str) -> dict[str, Any]:
        if not self.objects:
            raise NotFound(name)
        return self.objects.pop(0) if len(self.objects) > 1 else self.objects[0]


def cluster_with(monkeypatch: pytest.MonkeyPatch, objects: list[dict[str, Any]]) -> Cluster:
    cluster = Cluster(api_client=None, namespace="shop", server="https://k")
    kube = FakeKube(objects)
    monkeypatch.setattr(Cluster, "kube", lambda self: kube)
    return cluster


def test_get_object_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = cluster_with(monkeypatch, [])
    with pytest.raises(CliError) as err:
        asyncio.run(get_object(cluster, meta.TARGET, "vm1"))
    assert err.value.code == EXIT_USAGE
    assert str(err.value) == "VirtualMachineTarget 'vm1' not found in namespace 'shop'"


def test_fail_prints_prog_and_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert fail("vmgitops x", "timed out", EXIT_TIMEOUT) == EXIT_TIMEOUT
    assert capsys.readouterr().err == "vmgitops x: timed out\n"


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def update(self, op: Any) -> None:
        self.lines.append(f"op {op.phase}")


def follow(
    monkeypatch: pytest.MonkeyPatch, app: dict[str, Any], clock: Clock
) -> tuple[str, Any, list[str]]:
    """cmd_sync.follow on an application that always reads as `app`."""
    cluster = cluster_with(monkeypatch, [app])
    reporter = Lines()
    state, last = asyncio.run(
        cmd_sync.follow(
            cluster,
            "web",
            None,
            limit=100,
            interval=0,
            reporter=reporter,  # type: ignore[arg-type]
            clock=clock,
        )
    )
    return state, last, reporter.lines


def test_follow_hints_once_and_times_out_with_the_last_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pending = {"metadata": {"annotations": {meta.ANNOTATION_SYNC: "now"}}}
    state, app, lines = follow(monkeypatch, pending, Clock(20))
    assert (state, app) == ("timeout", pending)
    assert len(lines) == 1
    assert lines[0].startswith("still waiting for the operator to pick up the request")


def test_follow_ends_when_the_operation_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    op = {"phase": "Succeeded", "startedAt": "t1", "finishedAt": "t2", "targets": {}}
    done = {"metadata": {}, "status": {"operation": op}}
    assert follow(monkeypatch, done, Clock(1)) == ("done", done, ["op Succeeded"])
