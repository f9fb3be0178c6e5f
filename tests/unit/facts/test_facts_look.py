"""The observation and the health checks in one command: the real script, run locally."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vmgitops.facts.health import (
    HEALTH_SCRIPT,
    CheckResult,
    health_argv,
    health_timeout,
    parse_health,
)
from vmgitops.facts.look import LOOK_SCRIPT, look_argv
from vmgitops.facts.observe import OBSERVE_SCRIPT, ObserveRequest, parse_observation
from vmgitops.facts.observed import ObservedState
from vmgitops.facts.records import MalformedOutput
from vmgitops.manifest.desired import HealthCheck


def cmd(name: str, *argv: str, timeout: int = 5) -> HealthCheck:
    return HealthCheck(name, "command", timeout, command=argv)


def look(
    req: ObserveRequest, checks: list[HealthCheck], stdin: bytes | None = None
) -> tuple[subprocess.CompletedProcess[bytes], ObservedState, list[CheckResult]]:
    out = subprocess.run(
        look_argv(checks),
        input=req.stdin() if stdin is None else stdin,
        capture_output=True,
        timeout=30 + health_timeout(checks),
    )
    return out, parse_observation(out.stdout), parse_health(out.stdout, checks)


def request(tmp_path: Path, *files: Path) -> ObserveRequest:
    req = ObserveRequest(str(tmp_path / "state"))
    for f in files:
        req.files[str(f)] = "-"
    req.directories.append(str(tmp_path))
    return req


def test_one_command_answers_like_the_two_it_replaces(tmp_path: Path) -> None:
    conf = tmp_path / "app.conf"
    conf.write_text("port=80\n")
    req = request(tmp_path, conf, tmp_path / "missing.conf")
    checks = [
        cmd("ok", "true"),
        cmd("fails", "sh", "-c", "echo 'disk full' >&2; exit 3"),
        cmd("reads-stdin", "sh", "-c", "cat; echo read"),
    ]
    out, observed, results = look(req, checks)
    assert out.returncode == 0
    alone = subprocess.run(req.argv(), input=req.stdin(), capture_output=True, timeout=30)
    assert observed == parse_observation(alone.stdout)
    health = subprocess.run(health_argv(checks), capture_output=True, timeout=30)
    assert results == parse_health(health.stdout, checks)
    assert [(r.name, r.ok) for r in results] == [
        ("ok", True),
        ("fails", False),
        ("reads-stdin", True),  # its stdin is empty: it cannot eat the request
    ]
    assert observed.paths[str(conf)].kind == "file"
    assert observed.paths[str(tmp_path / "missing.conf")].kind == "missing"


def test_checks_cannot_reach_the_observation(tmp_path: Path) -> None:
    # A check's argv is data: no item of it runs as shell code, and none of the
    # observing functions' variables leak into what the check reports.
    canary = tmp_path / "pwned"
    req = request(tmp_path)
    checks = [cmd("quoting", "test", f"$(touch {canary})", "=", f"$(touch {canary})")]
    out, observed, results = look(req, checks)
    assert out.returncode == 0 and results[0].ok is True
    assert not canary.exists()
    assert observed.errors == ()


def test_no_checks_is_an_observation(tmp_path: Path) -> None:
    out, observed, results = look(request(tmp_path), [])
    assert out.returncode == 0 and results == []
    assert str(tmp_path) in observed.paths


def test_a_request_cut_short_runs_no_check(tmp_path: Path) -> None:
    canary = tmp_path / "ran"
    checks = [cmd("touch", "touch", str(canary))]
    cut = request(tmp_path).stdin()[:-2]  # no "." line: the request did not arrive whole
    out = subprocess.run(look_argv(checks), input=cut, capture_output=True, timeout=30)
    assert out.returncode == 3
    with pytest.raises(MalformedOutput):
        parse_observation(out.stdout)
    assert not canary.exists()


def test_the_scripts_share_their_parts() -> None:
    # The separate scripts are still what the combined one is made of, so a fix to one
    # part reaches both.
    body = LOOK_SCRIPT.removesuffix("r end\n")
    assert OBSERVE_SCRIPT.removesuffix("r end\n").strip() in body
    assert HEALTH_SCRIPT.removesuffix("r end\n").split("tmo()", 1)[1] in body
    assert look_argv([])[:6] == ["env", "LC_ALL=C", "sh", "-c", LOOK_SCRIPT, "vmgitops-look"]
