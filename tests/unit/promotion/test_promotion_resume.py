"""A promotion interrupted mid-way (a restart, Git failing for a while) resumes as it
was: a recorded rollback is finished, a push Git refused for a passing reason is tried
again with the reason in status, a refused gitCommit.repoURL fails before anything; and
the crash hook of the chaos tests dies only where and for whom it is armed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest
from promobuilders import NOW, R1, R2, app, facts, spec

from vmgitops.api.promotion import PromotionPhase
from vmgitops.promotion import crashpoints, policy
from vmgitops.promotion.engine import Deps, PromotionEngine
from vmgitops.promotion.objects import Objects
from vmgitops.promotion.policy import Action, Decision, Reason, WriteOutcome
from vmgitops.source import GitSource, SourcePolicy

P = PromotionPhase
GIT = spec(
    method="GitCommit",
    gitCommit={"repoURL": "https://git.example/config.git", "path": "envs"},
)


def test_a_recorded_rollback_is_finished_after_a_restart_though_the_failure_is_gone() -> None:
    final = Decision(
        P.ROLLED_BACK,
        Reason.VERIFICATION_FAILED,
        "prod: sync of the revision failed: unhealthy; rolled back prod to 111111111111",
        Action.ROLLBACK,
        updates={"finished_at": NOW},
    )
    underway = policy.rolling_back(final, P.VERIFYING)
    assert (underway.phase, underway.reason) == (P.VERIFYING, Reason.VERIFICATION_FAILED)
    assert "finished_at" not in underway.updates and not underway.final
    # After the restart prod is back at R1 (Synced, Healthy): nothing failed any more.
    f = facts(
        phase=P.VERIFYING,
        reason=underway.reason,
        message=underway.message,
        previous_revisions={"prod": R1},
        revision=R2,
        verifying_since=NOW,
    )
    d = policy.decide(f)
    assert (d.phase, d.reason, d.action) == (
        P.ROLLED_BACK,
        Reason.VERIFICATION_FAILED,
        Action.ROLLBACK,
    )
    assert d.message == final.message


def test_plain_verifying_and_promoting_are_not_taken_for_a_rollback() -> None:
    f = facts(
        phase=P.VERIFYING,
        reason=Reason.VERIFYING,
        message="waiting",
        revision=R2,
        previous_revisions={"prod": R1},
        verifying_since=NOW,
    )
    assert policy.decide(f).action is Action.NONE
    f = facts(
        phase=P.PROMOTING,
        reason=Reason.PROMOTING,
        message="writing",
        revision=R2,
        previous_revisions={"prod": R1},
    )
    assert policy.decide(f).action is Action.WRITE


def test_git_failing_for_a_while_keeps_promoting_with_the_reason_then_retries() -> None:
    f = facts(phase=P.PROMOTING, spec_=GIT, previous_revisions={"prod": R1}, revision=R2)
    down = WriteOutcome(error="cannot reach the server", reason="GitFetchFailed", retryable=True)
    d = policy.after_write(f, down)
    assert (d.phase, d.reason, d.action) == (P.PROMOTING, "GitFetchFailed", Action.NONE)
    assert d.requeue == policy.RETRY_GIT and "nothing was changed" in d.message
    # The next look writes again and keeps the reason until the write succeeds.
    again = policy.decide(
        replace(f, status=f.status.model_copy(update={"reason": d.reason, "message": d.message}))
    )
    assert (again.phase, again.reason, again.action) == (
        P.PROMOTING,
        "GitFetchFailed",
        Action.WRITE,
    )
    # A refusal that will not pass by itself fails at once.
    auth = WriteOutcome(error="authentication failed", reason="GitAuthenticationFailed")
    assert policy.after_write(f, auth).phase is P.FAILED


def test_a_rollback_git_refused_for_a_while_is_retried_not_given_up() -> None:
    final = Decision(
        P.ROLLED_BACK, Reason.VERIFICATION_FAILED, "x; rolled back prod to 1", Action.ROLLBACK
    )
    underway = policy.rolling_back(final, P.VERIFYING)
    d = policy.after_rollback(final, WriteOutcome(error="503", retryable=True), NOW, underway)
    assert (d.phase, d.reason, d.message) == (P.VERIFYING, underway.reason, underway.message)
    assert d.requeue == policy.RETRY_GIT


def test_a_refused_gitcommit_url_fails_before_anything_is_written() -> None:
    f = replace(
        facts(spec_=GIT, dests=[app("prod", R1)]),
        refused=("RepoURLRefused", "repoURL 'http://169.254.169.254/x.git' is refused"),
    )
    d = policy.decide(f)
    assert (d.phase, d.reason, d.action) == (P.FAILED, "RepoURLRefused", Action.NONE)
    assert "nothing was changed" in d.message


@pytest.mark.parametrize(
    ("value", "promotion", "point"),
    [
        pytest.param("", "p1", None, id="unset"),
        pytest.param("written", "p1", "written", id="any-promotion"),
        pytest.param("written@p2", "p2", "written", id="named-promotion"),
        pytest.param("written@p2", "p1", None, id="other-promotion-spared"),
    ],
)
def test_crash_hook_is_armed_by_point_and_promotion(
    monkeypatch: pytest.MonkeyPatch, value: str, promotion: str, point: str | None
) -> None:
    monkeypatch.delenv(crashpoints.CRASH_FILE_ENV, raising=False)
    monkeypatch.setenv(crashpoints.CRASH_ENV, value)
    assert crashpoints.armed_point(promotion) == point


def test_crash_hook_file_arms_and_disarms_a_running_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    f = tmp_path / "crash"
    monkeypatch.delenv(crashpoints.CRASH_ENV, raising=False)
    monkeypatch.setenv(crashpoints.CRASH_FILE_ENV, str(f))
    assert crashpoints.armed_point("p1") is None
    f.write_text("final@p1\n")
    assert crashpoints.armed_point("p1") == "final"
    crashpoints.reached("written", "p1")  # another point: returns
    f.write_text("")
    crashpoints.reached("final", "p1")  # disarmed: returns


def test_crash_hook_unset_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(crashpoints.CRASH_ENV, raising=False)
    monkeypatch.delenv(crashpoints.CRASH_FILE_ENV, raising=False)
    for point in crashpoints.POINTS:
        crashpoints.reached(point, "p1")


@pytest.mark.parametrize(
    ("url", "allow", "refused"),
    [
        pytest.param("http://169.254.169.254/x.git", False, True, id="metadata-refused"),
        pytest.param("git://[fe80::1]/x.git", False, True, id="link-local-refused"),
        pytest.param("http://169.254.169.254/x.git", True, False, id="metadata-allowed-by-setting"),
        pytest.param("https://git.example/config.git", False, False, id="ordinary-host-allowed"),
    ],
)
async def test_gitcommit_repo_url_policy_follows_the_operator_setting(
    tmp_path: Path, url: str, allow: bool, refused: bool
) -> None:
    source = GitSource(tmp_path, policy=SourcePolicy(allow_insecure_hosts=allow), workers=1)

    async def no_secret(namespace: str, name: str) -> None:
        return None

    deps = Deps(objects=cast(Objects, None), source=source, secret=no_secret)
    engine = PromotionEngine("ns", "p", deps)
    got = await engine._refused_target(
        spec(method="GitCommit", gitCommit={"repoURL": url, "path": "envs"})
    )
    assert (got is not None) == refused, got
    if got is not None:
        assert got[0] == "RepoURLRefused"
