"""The promotion policy: gates, phase transitions and refusals, case by case."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from promobuilders import NOW, R1, R2, R3, ago, app, facts, spec

from vmgitops.api.promotion import ApplicationKind, PromotionPhase
from vmgitops.promotion import policy
from vmgitops.promotion.policy import (
    Action,
    Decision,
    Facts,
    PromotionRecord,
    Reason,
    RevisionCheck,
    WriteOutcome,
)

P = PromotionPhase
ARGO = ApplicationKind.ARGO_APPLICATION
TWO_DESTS = spec(to=[{"name": "prod"}, {"kind": "Application", "name": "prod-k8s"}])


def other(
    name: str, phase: PromotionPhase | None, created: datetime, dest: str = "prod"
) -> PromotionRecord:
    return PromotionRecord(name, created, phase, frozenset({("VMApplication", dest)}))


# -- Pending: the gates and the refusals, in the order they are checked ------------------

PENDING_CASES = [
    pytest.param(
        facts(dests=[app("prod", exists=False)]),
        P.FAILED,
        Reason.APPLICATION_NOT_FOUND,
        Action.NONE,
        id="unknown-destination-fails-and-changes-nothing",
    ),
    pytest.param(
        facts(source=app("staging", exists=False)),
        P.FAILED,
        Reason.APPLICATION_NOT_FOUND,
        Action.NONE,
        id="unknown-source-fails",
    ),
    pytest.param(
        facts(
            spec_=TWO_DESTS,
            dests=[app("prod"), app("prod-k8s", kind=ARGO, multi_source=True)],
        ),
        P.FAILED,
        Reason.UNSUPPORTED_DESTINATION,
        Action.NONE,
        id="argo-multi-source-destination-is-refused",
    ),
    pytest.param(
        facts(conflicts=(other("older", P.VERIFYING, ago(60)),)),
        P.FAILED,
        Reason.CONFLICTING_PROMOTION,
        Action.NONE,
        id="older-active-promotion-of-the-same-destination-wins",
    ),
    pytest.param(
        facts(check=RevisionCheck(error="commit 9 is not in git://x")),
        P.FAILED,
        Reason.REVISION_NOT_FOUND,
        Action.NONE,
        id="revision-not-in-the-repository-fails",
    ),
    pytest.param(
        facts(dests=[app("prod", R2)]),
        P.SUCCEEDED,
        Reason.ALREADY_AT_REVISION,
        Action.NONE,
        id="destination-already-at-the-revision-is-a-no-op-success",
    ),
    pytest.param(
        facts(source=app("staging", R2, health="Degraded")),
        P.PENDING,
        Reason.SOURCE_NOT_HEALTHY,
        Action.NONE,
        id="source-not-healthy-waits-without-a-revision",
    ),
    pytest.param(
        facts(source=app("staging", R2, running=True)),
        P.PENDING,
        Reason.SOURCE_NOT_HEALTHY,
        Action.NONE,
        id="source-mid-rollout-is-not-healthy-yet",
    ),
    pytest.param(
        facts(source=app("staging", R2, current=False)),
        P.PENDING,
        Reason.SOURCE_NOT_HEALTHY,
        Action.NONE,
        id="source-status-older-than-its-spec-waits",
    ),
    pytest.param(
        facts(spec_=spec(revision=R3), check=RevisionCheck(commit=R3)),
        P.PENDING,
        Reason.SOURCE_NOT_AT_REVISION,
        Action.NONE,
        id="explicit-revision-waits-until-source-runs-it",
    ),
    pytest.param(
        facts(
            spec_=spec(verification={"soakTime": "10m"}),
            source=app("staging", R2, since=ago(120)),
        ),
        P.PENDING,
        Reason.SOAKING,
        Action.NONE,
        id="soak-time-not-reached-waits",
    ),
    pytest.param(
        facts(
            spec_=spec(verification={"soakTime": "10m"}),
            source=app("staging", R2, since=ago(601)),
        ),
        P.PROMOTING,
        Reason.PROMOTING,
        Action.WRITE,
        id="soak-time-reached-promotes",
    ),
    pytest.param(
        facts(
            spec_=spec(verification={"soakTime": "1m"}),
            source=app("staging", R2, since=None),
            check=RevisionCheck(commit=R2),
            soak_started_at=ago(30),
            revision=R2,
        ),
        P.PENDING,
        Reason.SOAKING,
        Action.NONE,
        id="soak-counts-from-first-sighting-when-the-source-does-not-say",
    ),
    pytest.param(
        facts(
            spec_=spec(verification={"soakTime": "1m"}),
            source=app("staging", R2, since=None),
            check=RevisionCheck(commit=R2),
            soak_started_at=ago(61),
            revision=R2,
        ),
        P.PROMOTING,
        Reason.PROMOTING,
        Action.WRITE,
        id="soak-from-first-sighting-then-promotes",
    ),
    pytest.param(
        facts(spec_=spec(approval={"required": True})),
        P.WAITING_FOR_APPROVAL,
        Reason.WAITING_FOR_APPROVAL,
        Action.NONE,
        id="approval-required-waits-after-the-gates",
    ),
    pytest.param(
        facts(spec_=spec(approval={"required": True}), approved_by="alice"),
        P.PROMOTING,
        Reason.PROMOTING,
        Action.WRITE,
        id="approved-in-advance-goes-straight-to-promoting",
    ),
    pytest.param(
        facts(
            spec_=spec(approval={"required": True}, verification={"soakTime": "1h"}),
            approved_by="alice",
            source=app("staging", R2, since=ago(10)),
        ),
        P.PENDING,
        Reason.SOAKING,
        Action.NONE,
        id="approval-does-not-skip-the-soak",
    ),
    pytest.param(facts(), P.PROMOTING, Reason.PROMOTING, Action.WRITE, id="no-gates-promotes"),
]


@pytest.mark.parametrize(("f", "phase", "reason", "action"), PENDING_CASES)
def test_pending(f: Facts, phase: PromotionPhase, reason: Reason, action: Action) -> None:
    d = policy.decide(f)
    assert (d.phase, d.reason, d.action) == (phase, reason, action), d.message
    if phase is P.FAILED:
        assert "nothing was changed" in d.message
        assert d.updates.get("finished_at") == NOW


def test_source_is_destination_is_refused_by_the_policy_too() -> None:
    s = spec()
    s.to[0].name = "staging"  # what the API server's CEL rule would have refused
    f = facts(spec_=s, dests=[app("staging")])
    d = policy.decide(f)
    assert (d.phase, d.reason) == (P.FAILED, Reason.SOURCE_IS_DESTINATION)


def test_promoting_records_previous_revisions_before_writing() -> None:
    f = facts(
        spec_=TWO_DESTS,
        dests=[app("prod", R1), app("prod-k8s", R3, kind=ARGO)],
    )
    d = policy.decide(f)
    assert d.action is Action.WRITE
    assert d.updates["previous_revisions"] == {"prod": R1, "prod-k8s": R3}
    assert d.updates["revision"] == R2


def test_previous_revision_is_the_commit_not_the_branch() -> None:
    f = facts(dests=[app("prod", R1, target="main")])
    assert policy.decide(f).updates["previous_revisions"] == {"prod": R1}


def test_previous_revision_of_an_unsynced_destination_is_its_target() -> None:
    f = facts(dests=[app("prod", R1, sync="OutOfSync", target="v1.0")])
    assert policy.decide(f).updates["previous_revisions"] == {"prod": "v1.0"}


def test_same_name_vmapp_and_argo_app_get_distinct_keys() -> None:
    s = spec(to=[{"name": "prod"}, {"kind": "Application", "name": "prod"}])
    f = facts(spec_=s, dests=[app("prod", R1), app("prod", R3, kind=ARGO)])
    assert policy.decide(f).updates["previous_revisions"] == {"prod": R1, "Application/prod": R3}


def test_approval_is_recorded_with_who_and_when() -> None:
    f = facts(
        phase=P.WAITING_FOR_APPROVAL,
        spec_=spec(approval={"required": True}),
        approved_by="alice",
        revision=R2,
    )
    d = policy.decide(f)
    assert (d.phase, d.action) == (P.PROMOTING, Action.WRITE)
    assert d.updates["approved_by"] == "alice"
    assert d.updates["approved_at"] == NOW


def test_soak_resets_when_the_revision_changes() -> None:
    f = facts(
        spec_=spec(verification={"soakTime": "1m"}),
        source=app("staging", R3, since=None),
        check=RevisionCheck(commit=R3),
        soak_started_at=ago(600),
        revision=R2,
    )
    d = policy.decide(f)
    assert d.reason is Reason.SOAKING
    assert d.updates["soak_started_at"] == NOW


# -- WaitingForApproval ------------------------------------------------------------------

APPROVAL_CASES = [
    pytest.param(
        facts(phase=P.WAITING_FOR_APPROVAL, spec_=spec(approval={"required": True})),
        P.WAITING_FOR_APPROVAL,
        Action.NONE,
        id="without-the-annotation-it-keeps-waiting",
    ),
    pytest.param(
        facts(
            phase=P.WAITING_FOR_APPROVAL,
            spec_=spec(approval={"required": True}),
            approved_by="bob",
            revision=R2,
        ),
        P.PROMOTING,
        Action.WRITE,
        id="the-annotation-resumes-it",
    ),
    pytest.param(
        facts(
            phase=P.WAITING_FOR_APPROVAL,
            spec_=spec(approval={"required": True}),
            approved_by="bob",
            dests=[app("prod", R2)],
            revision=R2,
        ),
        P.SUCCEEDED,
        Action.NONE,
        id="destination-reached-the-revision-meanwhile",
    ),
    pytest.param(
        facts(
            phase=P.WAITING_FOR_APPROVAL,
            spec_=spec(approval={"required": True}),
            dests=[app("prod", exists=False)],
        ),
        P.FAILED,
        Action.NONE,
        id="destination-deleted-while-waiting",
    ),
]


@pytest.mark.parametrize(("f", "phase", "action"), APPROVAL_CASES)
def test_waiting_for_approval(f: Facts, phase: PromotionPhase, action: Action) -> None:
    d = policy.decide(f)
    assert (d.phase, d.action) == (phase, action), d.message


# -- Promoting and the outcome of the write ---------------------------------------------


def test_promoting_after_a_restart_writes_again_and_keeps_previous() -> None:
    f = facts(phase=P.PROMOTING, previous_revisions={"prod": R1}, revision=R2)
    d = policy.decide(f)
    assert (d.phase, d.action) == (P.PROMOTING, Action.WRITE)
    assert "previous_revisions" not in d.updates


WRITE_CASES = [
    pytest.param(
        WriteOutcome(written=("prod",)), True, P.VERIFYING, Action.NONE, id="written-verifies"
    ),
    pytest.param(
        WriteOutcome(error="refused", reason="GitAuthenticationFailed"),
        True,
        P.FAILED,
        Action.NONE,
        id="nothing-written-fails-without-rollback",
    ),
    pytest.param(
        WriteOutcome(error="API 500", reason="PatchFailed", written=("prod",)),
        True,
        P.ROLLED_BACK,
        Action.ROLLBACK,
        id="partial-write-rolls-back",
    ),
    pytest.param(
        WriteOutcome(error="API 500", reason="PatchFailed", written=("prod",)),
        False,
        P.FAILED,
        Action.NONE,
        id="partial-write-without-rollback-fails-and-says-so",
    ),
]


@pytest.mark.parametrize(("outcome", "rollback", "phase", "action"), WRITE_CASES)
def test_after_write(
    outcome: WriteOutcome, rollback: bool, phase: PromotionPhase, action: Action
) -> None:
    f = facts(
        phase=P.PROMOTING,
        spec_=spec(rollbackOnFailure=rollback),
        previous_revisions={"prod": R1},
        revision=R2,
    )
    d = policy.after_write(f, outcome)
    assert (d.phase, d.action) == (phase, action), d.message
    if outcome.error:
        assert d.reason == outcome.reason
    else:
        assert d.updates["verifying_since"] == NOW


# -- Verifying ---------------------------------------------------------------------------


def verifying(dests: list[Any], *, since: float = 10, rollback: bool = True, **kw: Any) -> Facts:
    return facts(
        phase=P.VERIFYING,
        spec_=kw.pop("spec_", spec(rollbackOnFailure=rollback, verification={"timeout": "5m"})),
        dests=dests,
        verifying_since=ago(since),
        previous_revisions={"prod": R1},
        revision=R2,
        **kw,
    )


VERIFY_CASES = [
    pytest.param(
        verifying([app("prod", R2)]),
        P.SUCCEEDED,
        Reason.PROMOTED,
        Action.NONE,
        id="synced-healthy-at-revision-succeeds",
    ),
    pytest.param(
        verifying([app("prod", R2, current=False)]),
        P.VERIFYING,
        Reason.VERIFYING,
        Action.NONE,
        id="status-of-an-older-spec-does-not-count",
    ),
    pytest.param(
        verifying([app("prod", R2, health="Progressing")]),
        P.VERIFYING,
        Reason.VERIFYING,
        Action.NONE,
        id="progressing-keeps-verifying",
    ),
    pytest.param(
        verifying([app("prod", R1)]),
        P.VERIFYING,
        Reason.VERIFYING,
        Action.NONE,
        id="still-at-the-old-revision-keeps-verifying",
    ),
    pytest.param(
        verifying([app("prod", R2, sync="OutOfSync", failed=R2)]),
        P.ROLLED_BACK,
        Reason.VERIFICATION_FAILED,
        Action.ROLLBACK,
        id="failed-rollout-of-the-revision-rolls-back-at-once",
    ),
    pytest.param(
        verifying([app("prod", R2, sync="OutOfSync", failed=R1)]),
        P.VERIFYING,
        Reason.VERIFYING,
        Action.NONE,
        id="an-older-failed-rollout-does-not-count",
    ),
    pytest.param(
        verifying([app("prod", R2, health="Degraded")], since=301),
        P.ROLLED_BACK,
        Reason.VERIFICATION_TIMED_OUT,
        Action.ROLLBACK,
        id="timeout-rolls-back",
    ),
    pytest.param(
        verifying([app("prod", R2, health="Degraded")], since=301, rollback=False),
        P.FAILED,
        Reason.VERIFICATION_TIMED_OUT,
        Action.NONE,
        id="timeout-without-rollback-fails",
    ),
    pytest.param(
        verifying([app("prod", exists=False)]),
        P.ROLLED_BACK,
        Reason.VERIFICATION_FAILED,
        Action.ROLLBACK,
        id="deleted-destination-fails-verification",
    ),
    pytest.param(
        verifying(
            [app("prod", R2), app("prod-k8s", R2, kind=ARGO, health="Progressing")],
            spec_=spec(
                to=[{"name": "prod"}, {"kind": "Application", "name": "prod-k8s"}],
                verification={"timeout": "5m"},
            ),
        ),
        P.VERIFYING,
        Reason.VERIFYING,
        Action.NONE,
        id="every-destination-must-be-healthy",
    ),
]


@pytest.mark.parametrize(("f", "phase", "reason", "action"), VERIFY_CASES)
def test_verifying(f: Facts, phase: PromotionPhase, reason: Reason, action: Action) -> None:
    d = policy.decide(f)
    assert (d.phase, d.reason, d.action) == (phase, reason, action), d.message


def test_after_rollback_success_keeps_rolled_back_and_failure_says_restore_by_hand() -> None:
    d = Decision(
        P.ROLLED_BACK, Reason.VERIFICATION_FAILED, "x; rolled back prod to 111", Action.ROLLBACK
    )
    ok = policy.after_rollback(d, WriteOutcome(commit=R3), NOW)
    assert (ok.phase, ok.updates["commit"]) == (P.ROLLED_BACK, R3)
    bad = policy.after_rollback(d, WriteOutcome(error="git down"), NOW)
    assert (bad.phase, bad.reason) == (P.FAILED, Reason.ROLLBACK_FAILED)
    assert "by hand" in bad.message


@pytest.mark.parametrize(
    "phase", [P.SUCCEEDED, P.FAILED, P.ROLLED_BACK], ids=lambda p: f"{p.value}-is-final"
)
def test_final_phases_do_nothing(phase: PromotionPhase) -> None:
    d = policy.decide(facts(phase=phase, reason="X"))
    assert (d.phase, d.action, d.requeue) == (phase, Action.NONE, None)


# -- conflicts ---------------------------------------------------------------------------

CONFLICT_CASES = [
    pytest.param(other("a", P.PROMOTING, ago(10)), True, id="older-promoting-conflicts"),
    pytest.param(other("a", None, ago(10)), True, id="older-not-yet-reconciled-conflicts"),
    pytest.param(
        other("a", P.WAITING_FOR_APPROVAL, ago(10)), True, id="older-awaiting-approval-conflicts"
    ),
    pytest.param(other("a", P.SUCCEEDED, ago(10)), False, id="finished-does-not-conflict"),
    pytest.param(
        other("z", P.PENDING, NOW + (NOW - ago(10))), False, id="newer-pending-does-not-conflict"
    ),
    pytest.param(
        other("a", P.PROMOTING, ago(10), dest="other"),
        False,
        id="other-destination-does-not-conflict",
    ),
    pytest.param(other("a", P.PENDING, NOW), True, id="same-second-older-name-wins"),
    pytest.param(other("z", P.PENDING, NOW), False, id="same-second-newer-name-loses"),
    pytest.param(
        other("z", P.WAITING_FOR_APPROVAL, NOW + (NOW - ago(10))),
        True,
        id="one-past-pending-owns-the-destination-whatever-its-age",
    ),
    pytest.param(other("z", P.VERIFYING, NOW), True, id="same-second-but-already-writing-wins"),
]


@pytest.mark.parametrize(("o", "conflicts"), CONFLICT_CASES)
def test_conflicting(o: PromotionRecord, conflicts: bool) -> None:
    mine = frozenset({("VMApplication", "prod")})
    assert bool(policy.conflicting("m", NOW, mine, [o])) is conflicts


def test_revision_to_check() -> None:
    assert policy.revision_to_check(spec(revision=" v2 "), app("s", R1)) == "v2"
    assert policy.revision_to_check(spec(), app("s", R1)) == R1
    assert policy.revision_to_check(spec(), app("s", R1, health="Degraded")) is None
