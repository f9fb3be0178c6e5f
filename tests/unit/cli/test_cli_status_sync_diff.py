"""The pure parts of `status`, `sync` and `diff`: rows from objects, where a sync request
stands, and how a diff reads. The commands themselves run against the real operator in
tests/e2e/test_cli.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from vmgitops.cli import cmd_status, cmd_sync
from vmgitops.cli.cmd_diff import TargetDiff, from_result, render_target
from vmgitops.cli.common import age, short_duration, short_sha
from vmgitops.cli.main import build_parser

SHA = "3f2a1c9b8e7d6f5a4b3c2d1e0f9a8b7c6d5e4f3a"
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (3599, "59m"),
        (3600 + 300, "1h5m"),
        (7 * 3600, "7h"),
        (3 * 86400, "3d"),
    ],
    ids=[
        "now",
        "under two minutes in seconds",
        "minutes",
        "just under an hour",
        "hours and minutes",
        "hours",
        "days",
    ],
)
def test_short_duration_reads_like_kubectl(seconds: int, text: str) -> None:
    assert short_duration(seconds) == text


def test_age_and_short_sha() -> None:
    assert age((NOW - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ"), NOW) == "3m"
    assert age(None) == "" and age("not a time") == ""
    assert short_sha(SHA) == SHA[:12] and short_sha("main") == "main" and short_sha(None) == ""


def app(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"namespace": "shop", "name": "web", "generation": 2},
        "spec": {"destination": {"selector": {"matchLabels": {"env": "staging"}}}, **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            app(),
            {
                "sync": "Unknown",
                "health": "Unknown",
                "message": "no status yet: is the operator running and watching this namespace?",
            },
        ),
        (
            app(
                {
                    "observedGeneration": 2,
                    "sync": {"status": "Synced", "revision": SHA},
                    "health": {"status": "Healthy"},
                    "summary": {"targets": 2, "synced": 2},
                }
            ),
            {"sync": "Synced", "health": "Healthy", "synced": 2, "targets": 2, "message": ""},
        ),
        (
            app(
                {
                    "observedGeneration": 2,
                    "sync": {"status": "Unknown"},
                    "health": {"status": "Unknown", "message": ""},
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "False",
                            "reason": "GitFetchFailed",
                            "message": "refused",
                        }
                    ],
                }
            ),
            {"message": "GitFetchFailed: refused"},
        ),
        (
            app(
                {
                    "observedGeneration": 1,
                    "sync": {"status": "Synced"},
                    "health": {"status": "Healthy"},
                }
            ),
            {"message": "the operator has not acted on the latest spec yet"},
        ),
        (
            app({"observedGeneration": 2}, paused=True, syncPolicy={"automated": {}}),
            {"paused": True, "automated": True},
        ),
    ],
    ids=[
        "no status says why",
        "synced",
        "a Git failure is the message",
        "stale generation",
        "paused and automated",
    ],
)
def test_app_row(obj: dict[str, Any], expected: dict[str, Any]) -> None:
    row = cmd_status.app_row(obj)
    assert {k: row[k] for k in expected} == expected


def target(
    name: str, labels: dict[str, str], ns: str = "shop", apps: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"namespace": ns, "name": name, "labels": labels},
        "spec": {"address": "10.0.0.1"},
        "status": {
            "conditions": [
                {
                    "type": "Reachable",
                    "status": "False",
                    "reason": "Timeout",
                    "message": "no answer",
                }
            ],
            "applications": apps or [],
        },
    }


@pytest.mark.parametrize(
    ("t", "selected"),
    [
        (target("a", {"env": "staging"}), True),
        (target("b", {"env": "prod"}), False),
        (target("c", {"env": "staging"}, ns="other"), False),
    ],
    ids=["labels match", "labels differ", "another namespace never"],
)
def test_selects(t: dict[str, Any], selected: bool) -> None:
    assert cmd_status.selects(app(), t) is selected


def test_target_row_with_the_application_entry() -> None:
    entry = {
        "name": "web",
        "sync": "OutOfSync",
        "health": "Degraded",
        "revision": SHA,
        "message": "unit failed",
    }
    row = cmd_status.target_row(target("a", {}, apps=[entry]), "web")
    assert (row["reachable"], row["reason"], row["message"]) == ("False", "Timeout", "no answer")
    assert row["app"]["sync"] == "OutOfSync" and row["app"]["message"] == "unit failed"
    assert cmd_status.target_row(target("a", {}), "other")["app"]["sync"] == "Unknown"


def test_register_section_inserts_once_before_a_key() -> None:
    class Extra:
        key = "extra-test-section"

        async def collect(self, query: Any) -> Any:
            return None

        def render(self, data: Any, console: Any, query: Any) -> None:
            pass

    before = list(cmd_status.SECTIONS)
    try:
        cmd_status.register_section(Extra(), before="targets")
        cmd_status.register_section(Extra(), before="targets")
        keys = [s.key for s in cmd_status.SECTIONS]
        assert keys.count("extra-test-section") == 1
        assert keys.index("extra-test-section") == keys.index("targets") - 1
    finally:
        cmd_status.SECTIONS[:] = before


def live(
    phase: str | None, started: str = "t1", finished: str = "", annotated: bool = False
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"annotations": {"vmgitops.io/sync": "x"} if annotated else {}},
        "status": {},
    }
    if phase is not None:
        obj["status"]["operation"] = {
            "phase": phase,
            "revision": SHA,
            "startedAt": started,
            "finishedAt": finished,
            "batches": {"current": 1, "total": 2},
            "targets": {"succeeded": 1, "failed": 0, "pending": 1},
        }
    return obj


DONE_BEFORE = cmd_sync.OpView.of(live("Succeeded", "t0", "t0e"))


@pytest.mark.parametrize(
    ("before", "now", "state"),
    [
        (DONE_BEFORE, live("Succeeded", "t0", "t0e", annotated=True), "pending"),
        (DONE_BEFORE, live("Running", "t1", annotated=True), "running"),
        (DONE_BEFORE, live("Succeeded", "t1", "t1e", annotated=True), "pending"),
        (DONE_BEFORE, live("Succeeded", "t1", "t1e"), "done"),
        (DONE_BEFORE, live("Failed", "t1", "t1e"), "done"),
        (DONE_BEFORE, live("Succeeded", "t0", "t0e"), "refused"),
        (None, live(None), "refused"),
        (None, live("Running", "t1"), "running"),
        (cmd_sync.OpView.of(live("Running", "t0")), live("Succeeded", "t0", "t0e"), "done"),
    ],
    ids=[
        "not picked up yet",
        "rolling out",
        "finished but the annotation is still there: the report is not final yet",
        "a new operation Succeeded",
        "a new operation Failed",
        "handled without a new operation (Git failed, nothing started)",
        "handled and there was never an operation",
        "a first operation is running",
        "the running operation it joined has finished",
    ],
)
def test_sync_request_state(before: Any, now: dict[str, Any], state: str) -> None:
    assert cmd_sync.outcome(before, now)[0] == state


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({}, None),
        ({"paused": True}, "spec.paused"),
        ({"managementPolicy": "ObserveOnly"}, "ObserveOnly"),
    ],
    ids=["syncable", "paused", "observe only"],
)
def test_sync_refusal(spec: dict[str, Any], reason: str | None) -> None:
    got = cmd_sync.refusal({"spec": spec})
    assert (got is None) if reason is None else (reason in str(got))


def engine_result(
    sync: str, health: str, *, steps: list[Any] | None = None, error: Any = None
) -> Any:
    plan = (
        None
        if steps is None
        else SimpleNamespace(steps=steps, issues=[], orphans=["file /etc/old"])
    )
    return SimpleNamespace(
        sync=sync, health=SimpleNamespace(health=health, message=""), error=error, plan=plan
    )


def step(kind: str, text: str, diff: str = "") -> Any:
    return SimpleNamespace(kind=kind, describe=lambda: text, diff=diff)


def test_diff_reads_per_vm() -> None:
    unified = "--- a/etc/x\n+++ b/etc/x\n@@ -1 +1 @@\n-old\n+new\n"
    d = from_result(
        "vm1",
        "10.0.0.1",
        engine_result(
            "OutOfSync",
            "Healthy",
            steps=[
                step("WriteInventory", "record the inventory"),
                step("WriteFile", "write /etc/x (0644)", unified),
            ],
        ),
    )
    text = render_target(d, SHA, bookkeeping=False).plain
    assert text.startswith(f"=== vm1 (10.0.0.1): OutOfSync, 1 step(s) to reach {SHA[:12]}\n")
    assert "# 1. write /etc/x (0644)\n" + unified in text
    assert "record the inventory" not in text
    assert "~ would prune file /etc/old (prune is off, so it stays)" in text
    assert "record the inventory" in render_target(d, SHA, bookkeeping=True).plain
    assert d.differs and d.to_dict()["steps"][1]["diff"] == unified

    same = from_result("vm2", "10.0.0.2", engine_result("Synced", "Healthy", steps=[]))
    assert (
        render_target(same, SHA, bookkeeping=False).plain
        == f"=== vm2 (10.0.0.2): Synced at {SHA[:12]}\n"
    )
    assert not same.differs

    down = TargetDiff("vm3", "10.0.0.3", error="ConnectionRefused: 10.0.0.3:22 refused")
    assert "not observed: ConnectionRefused" in render_target(down, SHA, bookkeeping=False).plain
    assert not down.differs


@pytest.mark.parametrize("command", ["status", "diff", "sync"])
def test_every_cluster_command_has_the_shared_options(command: str) -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            command,
            *(["web"] if command != "status" else []),
            "-n",
            "shop",
            "--kubeconfig",
            "k",
            "-o",
            "json",
        ]
    )
    assert (args.namespace, args.kubeconfig, args.output) == ("shop", "k", "json")
