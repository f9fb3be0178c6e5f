"""How a pipeline moves revisions: creation, supersession, waits and holds."""

from __future__ import annotations

from typing import Any

import pytest
from promobuilders import NOW, R1, R2, R3, app

from vmgitops.api.pipeline import (
    PromotionPipelineSpec,
    PromotionPipelineStatus,
    StageHold,
    StageStatus,
)
from vmgitops.api.promotion import PromotionPhase
from vmgitops.promotion import pipeline_policy as pp
from vmgitops.promotion.pipeline_policy import OwnedPromotion, PipelineFacts
from vmgitops.promotion.state import AppState

P = PromotionPhase
SPEC = PromotionPipelineSpec.model_validate(
    {
        "stages": [
            {"name": "dev"},
            {"name": "staging", "soakTime": "1m"},
            {"name": "prod", "approval": {"required": True}},
        ]
    }
)


def stage(name: str, accepted: str | None, **kw: Any) -> StageStatus:
    return StageStatus(name=name, revision=accepted, accepted_revision=accepted, **kw)


def run(
    states: list[AppState],
    *,
    stages: list[StageStatus] | None = None,
    promos: list[OwnedPromotion] | None = None,
    clear: frozenset[str] = frozenset(),
    spec: PromotionPipelineSpec = SPEC,
) -> pp.PipelinePlan:
    status = PromotionPipelineStatus(stages=stages or [])
    return pp.plan(
        PipelineFacts(
            name="web",
            now=NOW,
            spec=spec,
            states=states,
            status=status,
            promotions=promos or [],
            clear=clear,
        )
    )


def by_name(plan: pp.PipelinePlan, name: str) -> StageStatus:
    return next(s for s in plan.stages if s.name == name)


def promo(
    stage_: str, rev: str, phase: PromotionPhase | None, n: int = 0, **kw: Any
) -> OwnedPromotion:
    return OwnedPromotion(
        name=pp.promotion_name("web", stage_, rev, n), stage=stage_, revision=rev, phase=phase, **kw
    )


def test_new_revision_in_dev_creates_a_promotion_into_staging_only() -> None:
    plan = run(
        [app("dev", R2), app("staging", R1), app("prod", R1)],
        stages=[stage("staging", R1), stage("prod", R1)],
    )
    assert [(c.stage.name, c.previous_stage.name, c.revision) for c in plan.create] == [
        ("staging", "dev", R2)
    ]
    assert plan.create[0].name == f"web-staging-{R2[:7]}"
    assert by_name(plan, "prod").waiting is None  # staging and prod agree


def test_unhealthy_previous_stage_creates_nothing() -> None:
    plan = run([app("dev", R2, health="Degraded"), app("staging", R1), app("prod", R1)])
    assert plan.create == []
    waiting = by_name(plan, "staging").waiting
    assert waiting is not None and waiting.reason == pp.WAIT_PREVIOUS_STAGE


def test_promotion_waiting_for_approval_is_reported_with_the_command() -> None:
    p = promo("prod", R2, P.WAITING_FOR_APPROVAL)
    plan = run(
        [app("dev", R2), app("staging", R2), app("prod", R1)],
        stages=[stage("staging", R2), stage("prod", R1)],
        promos=[p],
    )
    assert plan.create == []
    waiting = by_name(plan, "prod").waiting
    assert waiting is not None and waiting.reason == pp.WAIT_APPROVAL
    assert f"vmgitops approve {p.name}" in waiting.message
    assert "(approval)" in plan.summary()


def test_newer_revision_supersedes_a_promotion_that_has_not_started() -> None:
    old = promo("staging", R2, P.PENDING)
    plan = run(
        [app("dev", R3), app("staging", R1), app("prod", R1)],
        stages=[stage("staging", R1), stage("prod", R1)],
        promos=[old],
    )
    assert plan.delete == [old.name]
    assert [c.revision for c in plan.create] == [R3]


def test_a_promotion_writing_is_never_superseded() -> None:
    old = promo("staging", R2, P.VERIFYING)
    plan = run(
        [app("dev", R3), app("staging", R1), app("prod", R1)],
        stages=[stage("staging", R1), stage("prod", R1)],
        promos=[old],
    )
    assert (plan.delete, plan.create) == ([], [])
    waiting = by_name(plan, "staging").waiting
    assert waiting is not None and waiting.reason == pp.WAIT_PROMOTING


def test_auto_off_waits_and_says_how_to_promote() -> None:
    spec = PromotionPipelineSpec.model_validate(
        {"stages": [{"name": "staging"}, {"name": "prod", "auto": False}]}
    )
    plan = run([app("staging", R2), app("prod", R1)], stages=[stage("prod", R1)], spec=spec)
    waiting = by_name(plan, "prod").waiting
    assert plan.create == [] and waiting is not None and waiting.reason == pp.WAIT_AUTO_DISABLED
    assert "vmgitops promote --from staging --to prod" in waiting.message


def test_failed_promotion_places_a_hold_once() -> None:
    failed = promo(
        "staging", R2, P.ROLLED_BACK, reason="VerificationFailed", previous={"staging": R1}
    )
    states = [app("dev", R2), app("staging", R1), app("prod", R1)]
    plan = run(
        states,
        stages=[stage("staging", R1, promotion=failed.name, phase=P.VERIFYING), stage("prod", R1)],
        promos=[failed],
    )
    hold = by_name(plan, "staging").hold
    assert (
        hold is not None
        and hold.reason == pp.HOLD_PROMOTION_FAILED
        and hold.promotion == failed.name
    )
    assert plan.create == [] and plan.holds == 1
    # Once cleared, the same failure does not hold again, and the revision is tried again.
    cleared = run(states, stages=plan.stages, promos=[failed], clear=frozenset({"staging"}))
    assert by_name(cleared, "staging").hold is None
    assert [(c.revision, c.name) for c in cleared.create] == [(R2, f"web-staging-{R2[:7]}-1")]
    assert any(e.reason == "HoldCleared" for e in cleared.events)


def test_rolled_back_revision_is_not_a_manual_change() -> None:
    failed = promo("staging", R2, P.ROLLED_BACK, previous={"staging": R1})
    plan = run(
        [app("dev", R2), app("staging", R1), app("prod", R1)],
        stages=[
            stage(
                "staging",
                R2,
                promotion=failed.name,
                phase=P.ROLLED_BACK,
                hold=StageHold(reason="PromotionFailed"),
            ),
            stage("prod", R1),
        ],
        promos=[failed],
    )
    st = by_name(plan, "staging")
    assert st.hold is not None and st.hold.reason == "PromotionFailed"
    assert st.accepted_revision == R1


MANUAL_CASES = [
    pytest.param(
        [promo("prod", R2, P.SUCCEEDED)],
        R1,
        True,
        id="moved-back-after-our-promotion-is-a-manual-rollback",
    ),
    pytest.param(
        [promo("prod", R2, P.SUCCEEDED)], R2, False, id="where-our-promotion-put-it-is-fine"
    ),
    pytest.param(
        [promo("prod", R3, P.VERIFYING)], R3, False, id="our-promotion-in-flight-moved-it"
    ),
    pytest.param(
        [promo("prod", R2, P.PROMOTING)], R1, False, id="transient-while-our-promotion-writes"
    ),
    pytest.param([], R3, True, id="moved-to-a-revision-nobody-offered"),
]


@pytest.mark.parametrize(("promos", "live", "held"), MANUAL_CASES)
def test_manual_change_holds(promos: list[OwnedPromotion], live: str, held: bool) -> None:
    spec = PromotionPipelineSpec.model_validate({"stages": [{"name": "staging"}, {"name": "prod"}]})
    plan = run(
        [app("staging", R2), app("prod", live)],
        stages=[stage("prod", R2)],
        promos=promos,
        spec=spec,
    )
    hold = by_name(plan, "prod").hold
    assert (hold is not None and hold.reason == pp.HOLD_MANUAL_ROLLBACK) is held
    if held:
        assert plan.create == []
        assert "vmgitops.io/clear-hold=prod" in (hold.message if hold else "")


def test_moving_to_the_previous_stages_revision_by_hand_is_accepted() -> None:
    spec = PromotionPipelineSpec.model_validate({"stages": [{"name": "staging"}, {"name": "prod"}]})
    plan = run([app("staging", R2), app("prod", R2)], stages=[stage("prod", R1)], spec=spec)
    st = by_name(plan, "prod")
    assert st.hold is None and st.accepted_revision == R2 and plan.create == []


def test_first_look_accepts_what_runs() -> None:
    plan = run([app("dev", R1), app("staging", R1), app("prod", R3)])
    assert by_name(plan, "prod").accepted_revision == R3
    assert plan.holds == 0


def test_clear_all() -> None:
    held = StageHold(reason="ManualRollback")
    plan = run(
        [app("dev", R1), app("staging", R1), app("prod", R1)],
        stages=[stage("staging", R1, hold=held), stage("prod", R1, hold=held)],
        clear=frozenset({pp.CLEAR_ALL}),
    )
    assert plan.holds == 0


def test_long_names_are_shortened_with_a_hash() -> None:
    name = pp.promotion_name("p" * 200, "s" * 200, R1, 0)
    assert len(name) <= 253 and name != pp.promotion_name("p" * 200, "s" * 199, R1, 0)
