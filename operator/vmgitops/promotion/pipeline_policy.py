"""How a PromotionPipeline moves revisions from stage to stage. Pure.

For each stage after the first, every look (`plan`) asks, in order:

1. Did the user clear the stage's hold (annotation vmgitops.io/clear-hold)?
2. Did the pipeline's last Promotion into the stage fail (Failed or RolledBack)? Hold.
3. Does the stage now run a revision that neither the pipeline's last Promotion into it
   nor the previous stage explains? Someone changed it by hand (a rollback): hold.
4. Is the previous stage Synced and Healthy at a revision this stage does not run? Then,
   unless the stage is held or has `auto: false`, a Promotion moves it (one at a time; a
   newer revision replaces a Promotion that has not started writing yet). The Promotion
   itself enforces the soak time of the previous stage and the approval of this one.

A hold stays until a user clears it, so that a rollback is not undone by the next
automatic promotion.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from vmgitops.api.pipeline import (
    PipelineStage,
    PromotionPipelineSpec,
    PromotionPipelineStatus,
    StageHold,
    StageStatus,
)
from vmgitops.api.promotion import ApplicationRef, PromotionPhase
from vmgitops.promotion.policy import short
from vmgitops.promotion.state import AppState

HOLD_MANUAL_ROLLBACK = "ManualRollback"
HOLD_PROMOTION_FAILED = "PromotionFailed"
WAIT_PREVIOUS_STAGE = "PreviousStageNotReady"
WAIT_AUTO_DISABLED = "AutoPromotionDisabled"
WAIT_PROMOTING = "Promoting"
WAIT_APPROVAL = "WaitingForApproval"
CLEAR_ALL = "*"
_FAILED = frozenset({PromotionPhase.FAILED, PromotionPhase.ROLLED_BACK})
_WRITING = frozenset({PromotionPhase.PROMOTING, PromotionPhase.VERIFYING})
_NOT_STARTED = frozenset({None, PromotionPhase.PENDING, PromotionPhase.WAITING_FOR_APPROVAL})
MAX_NAME = 253


@dataclass(frozen=True)
class OwnedPromotion:
    """A Promotion this pipeline created."""

    name: str
    stage: str
    revision: str
    phase: PromotionPhase | None
    created: datetime | None = None
    reason: str | None = None
    message: str = ""
    previous: Mapping[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.phase is None or not self.phase.is_final


@dataclass(frozen=True)
class NewPromotion:
    """A Promotion to create: from one stage into the next, at one revision."""

    name: str
    stage: PipelineStage
    previous_stage: PipelineStage
    revision: str


@dataclass(frozen=True)
class PipelineFacts:
    name: str
    now: datetime
    spec: PromotionPipelineSpec
    states: Sequence[AppState]
    """One per spec.stages entry, in order."""
    status: PromotionPipelineStatus
    promotions: Sequence[OwnedPromotion]
    clear: frozenset[str] = frozenset()
    """Stage names from the clear-hold annotation ("*": all)."""


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


@dataclass
class PipelinePlan:
    """The pipeline's new status and what to create and delete."""

    stages: list[StageStatus]
    create: list[NewPromotion] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def holds(self) -> int:
        return sum(1 for s in self.stages if s.hold is not None)

    def summary(self) -> str:
        parts = []
        for s in self.stages:
            part = f"{s.name}@{short(s.revision)[:7]}"
            if s.hold is not None:
                part += " (held)"
            elif s.waiting is not None and s.waiting.reason == WAIT_APPROVAL:
                part += " (approval)"
            parts.append(part)
        return " > ".join(parts)


def promotion_name(pipeline: str, stage: str, revision: str, attempt: int) -> str:
    """<pipeline>-<stage>-<7 hex>[-<attempt>], shortened with a hash when too long."""
    base = f"{pipeline}-{stage}-{revision[:7].lower()}"
    if attempt:
        base += f"-{attempt}"
    if len(base) <= MAX_NAME:
        return base
    digest = hashlib.sha256(base.encode()).hexdigest()[:10]
    return f"{base[: MAX_NAME - 11].rstrip('-.')}-{digest}"


def _ref(stage: PipelineStage) -> ApplicationRef:
    return ApplicationRef(kind=stage.kind, name=stage.name)


def plan(facts: PipelineFacts) -> PipelinePlan:
    """The next step for every stage."""
    old = {s.name: s for s in facts.status.stages}
    out = PipelinePlan(stages=[])
    for index, stage in enumerate(facts.spec.stages):
        state = facts.states[index]
        previous = old.get(stage.name) or StageStatus(name=stage.name)
        current = previous.model_copy(deep=True)
        current.revision = state.revision
        if index == 0:
            current.hold = current.waiting = None
            current.accepted_revision = state.revision or previous.accepted_revision
            out.stages.append(current)
            continue
        _stage(facts, index, previous, current, out)
        out.stages.append(current)
    return out


def _stage(
    facts: PipelineFacts, index: int, old: StageStatus, st: StageStatus, out: PipelinePlan
) -> None:
    stage, before = facts.spec.stages[index], facts.spec.stages[index - 1]
    state, prev = facts.states[index], facts.states[index - 1]
    now = facts.now
    mine = sorted(
        (p for p in facts.promotions if p.stage == stage.name),
        key=lambda p: (p.created is None, p.created or now, p.name),
    )
    latest = mine[-1] if mine else None
    candidate = prev.revision if prev.synced_healthy else None

    # 1. a user cleared the hold
    if st.hold is not None and (stage.name in facts.clear or CLEAR_ALL in facts.clear):
        out.events.append(
            Event("Normal", "HoldCleared", f"{stage.name}: hold ({st.hold.reason}) cleared")
        )
        st.hold = None

    # 2. the last promotion into the stage failed
    if latest is not None:
        newly_failed = latest.phase in _FAILED and (
            old.promotion != latest.name or old.phase not in _FAILED
        )
        if newly_failed and st.hold is None:
            st.hold = StageHold(
                reason=HOLD_PROMOTION_FAILED,
                since=now,
                message=(
                    f"Promotion {latest.name} of {short(latest.revision)} ended "
                    f"{(latest.phase or PromotionPhase.FAILED).value}"
                    + (f" ({latest.reason})" if latest.reason else "")
                    + f"; clear with vmgitops.io/clear-hold={stage.name}"
                ),
                promotion=latest.name,
            )
            out.events.append(Event("Warning", "StageHeld", f"{stage.name}: {st.hold.message}"))
        st.promotion, st.phase = latest.name, latest.phase

    # 3. a change nobody in the pipeline made
    live = state.revision if state.exists and state.sync == "Synced" else None
    if live is not None and old.accepted_revision is None:
        st.accepted_revision = live
    elif live is not None and live != old.accepted_revision:
        ours = latest is not None and latest.revision == live and latest.phase not in _FAILED
        restored = (
            latest is not None
            and latest.phase is PromotionPhase.ROLLED_BACK
            and live in latest.previous.values()
        )
        in_flight = latest is not None and latest.phase in _WRITING
        if ours or restored or live == candidate:
            st.accepted_revision = live
        elif not in_flight:
            st.accepted_revision = live
            if st.hold is None:
                st.hold = StageHold(
                    reason=HOLD_MANUAL_ROLLBACK,
                    since=now,
                    message=(
                        f"{stage.name} was moved by hand from "
                        f"{short(old.accepted_revision)} to {short(live)}; automatic "
                        f"promotion into it is held until vmgitops.io/clear-hold={stage.name}"
                    ),
                )
                out.events.append(Event("Warning", "StageHeld", f"{stage.name}: {st.hold.message}"))

    # 4. move the previous stage's revision in
    st.waiting = _waiting_and_create(facts, stage, before, state, candidate, st, mine, out)


def _waiting_and_create(
    facts: PipelineFacts,
    stage: PipelineStage,
    before: PipelineStage,
    state: AppState,
    candidate: str | None,
    st: StageStatus,
    mine: Sequence[OwnedPromotion],
    out: PipelinePlan,
) -> StageHold | None:
    now = facts.now

    def wait(reason: str, message: str, promotion: str | None = None) -> StageHold:
        keep = st.waiting is not None and st.waiting.reason == reason
        since = st.waiting.since if keep and st.waiting is not None else now
        return StageHold(reason=reason, since=since, message=message, promotion=promotion)

    if candidate is None:
        return wait(
            WAIT_PREVIOUS_STAGE,
            f"{before.name} is not Synced and Healthy; nothing to promote from it",
        )
    if state.revision == candidate and state.sync == "Synced":
        return None
    if st.hold is not None:
        return None
    active = [p for p in mine if p.active]
    if active:
        a = active[-1]
        if a.revision != candidate and a.phase in _NOT_STARTED:
            out.delete.append(a.name)
            out.events.append(
                Event(
                    "Normal",
                    "PromotionSuperseded",
                    f"{stage.name}: {short(candidate)} replaces {short(a.revision)} "
                    f"(Promotion {a.name} had not started)",
                )
            )
        elif a.phase is PromotionPhase.WAITING_FOR_APPROVAL:
            return wait(
                WAIT_APPROVAL,
                f"{short(a.revision)} waits for approval: vmgitops approve {a.name}",
                a.name,
            )
        elif a.phase in _WRITING:
            return wait(WAIT_PROMOTING, f"Promotion {a.name} is {a.phase.value}", a.name)
        else:
            return wait(
                a.reason or "Pending",
                a.message or f"Promotion {a.name} is pending",
                a.name,
            )
    if not stage.auto:
        return wait(
            WAIT_AUTO_DISABLED,
            f"{short(candidate)} is in {before.name}; auto is off: vmgitops promote "
            f"--from {before.name} --to {stage.name} --revision {candidate}",
        )
    attempt = sum(1 for p in mine if p.revision == candidate)
    name = promotion_name(facts.name, stage.name, candidate, attempt)
    taken = {p.name for p in facts.promotions}
    while name in taken:
        attempt += 1
        name = promotion_name(facts.name, stage.name, candidate, attempt)
    out.create.append(NewPromotion(name, stage, before, candidate))
    out.events.append(
        Event(
            "Normal",
            "PromotionCreated",
            f"{stage.name}: Promotion {name} of {short(candidate)} from {before.name}",
        )
    )
    st.promotion, st.phase = name, PromotionPhase.PENDING
    return wait("PromotionCreated", f"Promotion {name} created", name)


def stage_ref(stage: PipelineStage) -> ApplicationRef:
    """The stage as a promotion's from or to."""
    return _ref(stage)
