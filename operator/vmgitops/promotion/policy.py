"""A Promotion's gates and phase transitions. Pure: no Kubernetes, Git or kopf.

The engine gathers `Facts` (the promotion, `from`, each destination, other promotions,
what Git said of the revision), asks `decide` what to do, does it (write the revision,
or restore the previous ones), and reports back through `after_write` and
`after_rollback`. Every answer is a `Decision`: the phase, a CamelCase reason, a message
for humans, the status fields to set and when to look again.

    Pending ──gates──▶ WaitingForApproval ──approved──▶ Promoting ──▶ Verifying ──▶ Succeeded
       │                                                   │             │
       └─▶ Failed (bad input), Succeeded (no-op)           └─▶ Failed    └─▶ RolledBack | Failed

Bad input fails before anything is written. `previousRevisions` is recorded in the same
status write that enters Promoting, before the first destination changes, so a restart
in the middle resumes with the right revisions to roll back to. A rollback is recorded
(`rolling_back`) before the previous revisions are written back, so a restart in the
middle finishes it (`decide` resumes it) instead of waiting for a failure the rollback
already hid. A Git server that is down or failing leaves the write (or the rollback) to
be tried again every `RETRY_GIT` seconds, its reason in status; refusals fail at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from vmgitops.api.promotion import (
    DEFAULT_REVISION_KEY,
    ApplicationKind,
    ApplicationRef,
    PromotionMethod,
    PromotionPhase,
    PromotionSpec,
    PromotionStatus,
)
from vmgitops.api.units import parse_duration
from vmgitops.promotion.state import AppState

Phase = PromotionPhase


class Reason(StrEnum):
    """Why a promotion is in its phase; goes to status.reason and the Ready condition."""

    # Pending
    SOURCE_NOT_HEALTHY = "SourceNotHealthy"
    SOURCE_NOT_AT_REVISION = "SourceNotAtRevision"
    SOAKING = "Soaking"
    # WaitingForApproval
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    # Promoting, Verifying
    PROMOTING = "Promoting"
    VERIFYING = "Verifying"
    # Succeeded
    PROMOTED = "Promoted"
    ALREADY_AT_REVISION = "AlreadyAtRevision"
    # Failed, before anything was written
    INVALID_SPEC = "InvalidSpec"
    SOURCE_IS_DESTINATION = "SourceIsDestination"
    APPLICATION_NOT_FOUND = "ApplicationNotFound"
    REVISION_NOT_FOUND = "RevisionNotFound"
    CONFLICTING_PROMOTION = "ConflictingPromotion"
    UNSUPPORTED_DESTINATION = "UnsupportedDestination"
    # Failed or RolledBack, after writing
    WRITE_FAILED = "WriteFailed"
    VERIFICATION_FAILED = "VerificationFailed"
    VERIFICATION_TIMED_OUT = "VerificationTimedOut"
    ROLLBACK_FAILED = "RollbackFailed"


class Action(StrEnum):
    """The side effect the engine performs after persisting the decision."""

    NONE = "None"
    WRITE = "Write"
    """Write status.revision to every destination (spec.method)."""
    ROLLBACK = "Rollback"
    """Write status.previousRevisions back to the destinations."""


#: Seconds between looks while waiting on something that has no event of ours.
POLL_SOURCE = 5.0
POLL_APPROVAL = 30.0
POLL_VERIFY = 3.0
#: Seconds before a write (or rollback) that Git refused for a passing reason is retried.
RETRY_GIT = 15.0
#: Starts the message of a rollback recorded but not yet done (see `rolling_back`).
ROLLING_BACK = "restoring the previous revisions: "


@dataclass(frozen=True)
class RevisionCheck:
    """What Git said of the revision to promote: a full commit, or why there is none."""

    commit: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class PromotionRecord:
    """Another Promotion of the namespace, for conflict detection."""

    name: str
    created: datetime | None
    phase: PromotionPhase | None
    destinations: frozenset[tuple[str, str]]

    def order(self) -> tuple[datetime | None, str]:
        return (self.created, self.name)

    @property
    def active(self) -> bool:
        return self.phase is None or not self.phase.is_final


@dataclass(frozen=True)
class Facts:
    """Everything a decision depends on, observed just before it."""

    name: str
    now: datetime
    spec: PromotionSpec
    status: PromotionStatus
    source: AppState
    destinations: Mapping[tuple[str, str], AppState]
    approved_by: str | None = None
    """The vmgitops.io/approved-by annotation (None or "" when absent)."""
    revision: RevisionCheck | None = None
    """Git's answer for `revision_to_check`; None when no check was needed or possible."""
    conflicts: Sequence[PromotionRecord] = ()
    """Older active Promotions that write one of the same destinations."""
    refused: tuple[str, str] | None = None
    """GitCommit: (reason, message) when the operator's Git URL policy refuses
    gitCommit.repoURL (RepoURLRefused); None when allowed or not checked."""

    @property
    def phase(self) -> PromotionPhase:
        return self.status.phase or PromotionPhase.PENDING

    def dest(self, ref: ApplicationRef) -> AppState:
        return self.destinations[ref.key]


@dataclass(frozen=True)
class Decision:
    """What the promotion becomes, and what the engine does next."""

    phase: PromotionPhase
    reason: str
    message: str
    action: Action = Action.NONE
    updates: Mapping[str, Any] = field(default_factory=dict)
    """PromotionStatus fields (snake_case) to set besides phase, reason and message."""
    requeue: float | None = None
    """Seconds until the next look; None once the phase is final."""

    @property
    def final(self) -> bool:
        return self.phase.is_final


@dataclass(frozen=True)
class WriteOutcome:
    """How writing (or restoring) revisions went."""

    error: str | None = None
    """None on success; else what failed, for the message (no secrets)."""
    reason: str = Reason.WRITE_FAILED
    written: tuple[str, ...] = ()
    """Destinations (previousRevisions keys) that were changed before the error."""
    commit: str | None = None
    """GitCommit: the commit pushed."""
    retryable: bool = False
    """The error may pass by itself (Git down, 5xx, timeout): try again later."""


# -- helpers ---------------------------------------------------------------------------


def short(revision: str | None) -> str:
    return (revision or "")[:12] or "(none)"


def describe(ref: ApplicationRef) -> str:
    if ref.kind is ApplicationKind.ARGO_APPLICATION:
        return f"Application {ref.name}"
    return ref.name


def dest_key(ref: ApplicationRef, refs: Sequence[ApplicationRef]) -> str:
    """A destination's key in status.previousRevisions: its name, or `Application/<name>`
    for an Argo CD Application that shares its name with a VMApplication destination."""
    if ref.kind is ApplicationKind.ARGO_APPLICATION and any(
        r.name == ref.name and r.kind is not ref.kind for r in refs
    ):
        return f"Application/{ref.name}"
    return ref.name


def _names(refs: Sequence[ApplicationRef]) -> str:
    return ", ".join(describe(r) for r in refs)


def _state_words(state: AppState) -> str:
    if not state.exists:
        return "not found"
    words = f"sync {state.sync or 'Unknown'}, health {state.health or 'Unknown'}"
    if state.revision:
        words += f", at {short(state.revision)}"
    if not state.current:
        words += ", status not yet updated for the current spec"
    if state.operation_running:
        words += ", a sync is running"
    return words


def revision_to_check(spec: PromotionSpec, source: AppState) -> str | None:
    """What the engine must ask Git about before `decide` in Pending: spec.revision, or
    the revision `from` is Synced and Healthy at; None when there is none yet."""
    if spec.revision.strip():
        return spec.revision.strip()
    return source.revision if source.synced_healthy else None


def conflicting(
    me: str,
    created: datetime | None,
    mine: frozenset[tuple[str, str]],
    others: Sequence[PromotionRecord],
) -> list[PromotionRecord]:
    """Active Promotions that share a destination with this one and come first: one
    that has left Pending (it owns the destination: it passed this same check), or an
    older one still Pending (creation time, then name, since timestamps have second
    precision). Each Promotion checks while Pending, so of two created together
    exactly one goes on."""

    def first(o: PromotionRecord) -> bool:
        if o.phase not in (None, PromotionPhase.PENDING):
            return True
        if o.created is None or created is None:
            return o.name < me
        return (o.created, o.name) < (created, me)

    return sorted(
        (o for o in others if o.name != me and o.active and o.destinations & mine and first(o)),
        key=lambda o: o.name,
    )


def previous_revisions(facts: Facts) -> dict[str, str]:
    """What each destination runs now (its synced commit, else its targetRevision)."""
    out: dict[str, str] = {}
    for ref in facts.spec.to:
        state = facts.dest(ref)
        revision = state.revision if state.sync == "Synced" and state.revision else None
        value = revision or state.target_revision
        if value:
            out[dest_key(ref, facts.spec.to)] = value
    return out


def _fail(reason: str, message: str, now: datetime) -> Decision:
    return Decision(Phase.FAILED, reason, message, updates={"finished_at": now})


def _done(reason: str, message: str, now: datetime, **updates: Any) -> Decision:
    return Decision(Phase.SUCCEEDED, reason, message, updates={"finished_at": now, **updates})


# -- the decision ----------------------------------------------------------------------


def decide(facts: Facts) -> Decision:
    """The next step of the promotion, from what was just observed."""
    phase = facts.phase
    if phase.is_final:
        return Decision(phase, facts.status.reason or phase.value, facts.status.message)
    resumed = _resume_rollback(facts)
    if resumed is not None:
        return resumed
    if phase is Phase.PENDING:
        return _pending(facts)
    if phase is Phase.WAITING_FOR_APPROVAL:
        return _waiting_for_approval(facts)
    if phase is Phase.PROMOTING:
        return _promoting(facts)
    return _verifying(facts)


def _bad_input(facts: Facts) -> Decision | None:
    """Refusals that need nothing but the objects: each leaves everything unchanged."""
    spec, now = facts.spec, facts.now
    if any(r.key == spec.from_.key for r in spec.to):
        return _fail(
            Reason.SOURCE_IS_DESTINATION,
            f"{describe(spec.from_)} is both `from` and a destination; promote it to "
            "another application",
            now,
        )
    if facts.refused is not None:
        reason, message = facts.refused
        return _fail(reason, f"gitCommit.repoURL: {message}; nothing was changed", now)
    lost = [r for r in [spec.from_, *spec.to] if not _state(facts, r).exists]
    if lost:
        what = ", ".join(
            f"{'Application' if r.kind is ApplicationKind.ARGO_APPLICATION else 'VMApplication'}"
            f" {r.name}"
            for r in lost
        )
        return _fail(
            Reason.APPLICATION_NOT_FOUND,
            f"{what} not found in this namespace; nothing was changed",
            now,
        )
    multi = [r for r in spec.to if facts.dest(r).multi_source and not _explicit_key(spec, r)]
    if multi:
        return _fail(
            Reason.UNSUPPORTED_DESTINATION,
            f"{_names(multi)} has spec.sources (several sources): which targetRevision to set "
            "is ambiguous; use spec.source, or method GitCommit with gitCommit.files naming "
            "the key; nothing was changed",
            now,
        )
    return None


def _explicit_key(spec: PromotionSpec, ref: ApplicationRef) -> bool:
    """GitCommit names where this destination's revision lives (not the default key)."""
    target = spec.git_commit
    if spec.method is not PromotionMethod.GIT_COMMIT or target is None:
        return False
    return target.file_for(ref) is not None or target.key != DEFAULT_REVISION_KEY


def _state(facts: Facts, ref: ApplicationRef) -> AppState:
    return facts.source if ref.key == facts.spec.from_.key else facts.dest(ref)


def _pending(facts: Facts) -> Decision:
    refused = _bad_input(facts)
    if refused is not None:
        return refused
    spec, now, source = facts.spec, facts.now, facts.source
    if facts.conflicts:
        other = facts.conflicts[0]
        return _fail(
            Reason.CONFLICTING_PROMOTION,
            f"Promotion {other.name} ({(other.phase or Phase.PENDING).value}) is already "
            f"promoting {_names([r for r in spec.to if r.key in other.destinations])}; "
            "wait for it to finish (or delete it) and create this one again; nothing was "
            "changed",
            now,
        )
    wanted = revision_to_check(spec, source)
    if wanted is None:
        return Decision(
            Phase.PENDING,
            Reason.SOURCE_NOT_HEALTHY,
            f"waiting for {describe(spec.from_)} to be Synced and Healthy ({_state_words(source)})",
            updates={"started_at": facts.status.started_at or now, "soak_started_at": None},
            requeue=POLL_SOURCE,
        )
    check = facts.revision
    if check is not None and check.error is not None:
        return _fail(Reason.REVISION_NOT_FOUND, f"{check.error}; nothing was changed", now)
    revision = check.commit if check is not None and check.commit else wanted
    started = {"started_at": facts.status.started_at or now, "revision": revision}
    if all(facts.dest(r).at(revision) for r in spec.to):
        return _done(
            Reason.ALREADY_AT_REVISION,
            f"{_names(spec.to)} already Synced and Healthy at {short(revision)}; nothing to do",
            now,
            **started,
        )
    if not source.at(revision):
        return Decision(
            Phase.PENDING,
            Reason.SOURCE_NOT_AT_REVISION,
            f"waiting for {describe(spec.from_)} to be Synced and Healthy at "
            f"{short(revision)} ({_state_words(source)})",
            updates={**started, "soak_started_at": None},
            requeue=POLL_SOURCE,
        )
    soak = parse_duration(spec.verification.soak_time)
    same = facts.status.revision == revision and facts.status.soak_started_at is not None
    seen = facts.status.soak_started_at if same and facts.status.soak_started_at else now
    since = source.healthy_since or seen
    started["soak_started_at"] = seen
    remaining = soak - (now - since).total_seconds()
    if remaining > 0:
        return Decision(
            Phase.PENDING,
            Reason.SOAKING,
            f"{describe(spec.from_)} has been Synced and Healthy at {short(revision)} for "
            f"{max(0, int(soak - remaining))}s of the {spec.verification.soak_time} soak time",
            updates=started,
            requeue=min(remaining, 30.0) + 0.5,
        )
    return _approval_gate(facts, revision, started)


def _approval_gate(facts: Facts, revision: str, updates: dict[str, Any]) -> Decision:
    spec = facts.spec
    if spec.approval.required and not facts.approved_by:
        return Decision(
            Phase.WAITING_FOR_APPROVAL,
            Reason.WAITING_FOR_APPROVAL,
            f"{short(revision)} is ready to go to {_names(spec.to)}: approve with "
            f"`vmgitops approve {facts.name}` (annotation vmgitops.io/approved-by=<who>)",
            updates=updates,
            requeue=POLL_APPROVAL,
        )
    return _start_promoting(facts, revision, updates)


def _start_promoting(facts: Facts, revision: str, updates: Mapping[str, Any]) -> Decision:
    spec = facts.spec
    out = dict(updates)
    out["revision"] = revision
    out["previous_revisions"] = previous_revisions(facts)
    if spec.approval.required and facts.approved_by:
        out["approved_by"] = facts.approved_by
        out["approved_at"] = facts.now
    return Decision(
        Phase.PROMOTING,
        Reason.PROMOTING,
        f"writing {short(revision)} to {_names(spec.to)} ({spec.method.value})",
        action=Action.WRITE,
        updates=out,
        requeue=0.0,
    )


def _waiting_for_approval(facts: Facts) -> Decision:
    refused = _bad_input(facts)
    if refused is not None:
        return refused
    revision = facts.status.revision or ""
    if facts.spec.approval.required and not facts.approved_by:
        return Decision(
            Phase.WAITING_FOR_APPROVAL,
            Reason.WAITING_FOR_APPROVAL,
            facts.status.message
            or f"approve with `vmgitops approve {facts.name}` to promote {short(revision)}",
            requeue=POLL_APPROVAL,
        )
    if all(facts.dest(r).at(revision) for r in facts.spec.to):
        return _done(
            Reason.ALREADY_AT_REVISION,
            f"{_names(facts.spec.to)} reached {short(revision)} while this promotion waited "
            "for approval; nothing to do",
            facts.now,
            approved_by=facts.approved_by,
            approved_at=facts.now,
        )
    return _start_promoting(facts, revision, {})


def _promoting(facts: Facts) -> Decision:
    """Resumes a write that a restart (or an error) interrupted; writes are idempotent."""
    revision = facts.status.revision or ""
    updates: dict[str, Any] = {}
    if not facts.status.previous_revisions:
        updates["previous_revisions"] = previous_revisions(facts)
    if facts.status.reason and facts.status.reason != Reason.PROMOTING:
        # A retry after Git failed: the reason stays in status until the write succeeds
        # (no flapping back to Promoting between two failed attempts).
        return Decision(
            Phase.PROMOTING,
            facts.status.reason,
            facts.status.message,
            action=Action.WRITE,
            updates=updates,
            requeue=0.0,
        )
    return Decision(
        Phase.PROMOTING,
        Reason.PROMOTING,
        f"writing {short(revision)} to {_names(facts.spec.to)} ({facts.spec.method.value})",
        action=Action.WRITE,
        updates=updates,
        requeue=0.0,
    )


def after_write(facts: Facts, outcome: WriteOutcome) -> Decision:
    """Once the revision was written (or not): verify, or fail and undo what was written."""
    revision = facts.status.revision or ""
    commit = {"commit": outcome.commit} if outcome.commit else {}
    if outcome.error is None:
        return Decision(
            Phase.VERIFYING,
            Reason.VERIFYING,
            f"waiting for {_names(facts.spec.to)} to be Synced and Healthy at "
            f"{short(revision)} (timeout {facts.spec.verification.timeout})",
            updates={"verifying_since": facts.now, **commit},
            requeue=POLL_VERIFY,
        )
    message = f"writing {short(revision)} failed: {outcome.error}"
    if outcome.retryable and not outcome.written:
        return Decision(
            Phase.PROMOTING,
            outcome.reason,
            f"{message}; nothing was changed; trying again every {RETRY_GIT:.0f}s "
            "(delete the Promotion to give up)",
            requeue=RETRY_GIT,
        )
    if outcome.written and facts.spec.rollback_on_failure:
        return Decision(
            Phase.ROLLED_BACK,
            outcome.reason,
            message + f"; restoring the previous revision of {', '.join(outcome.written)}",
            action=Action.ROLLBACK,
            updates={"finished_at": facts.now, **commit},
        )
    if outcome.written:
        message += f"; {', '.join(outcome.written)} already changed (rollbackOnFailure is off)"
    else:
        message += "; nothing was changed"
    return Decision(Phase.FAILED, outcome.reason, message, updates={"finished_at": facts.now})


def _verifying(facts: Facts) -> Decision:
    spec, now = facts.spec, facts.now
    revision = facts.status.revision or ""
    states = [(r, facts.dest(r)) for r in spec.to]
    if all(s.at(revision) for _, s in states):
        return _done(
            Reason.PROMOTED,
            f"{_names(spec.to)} Synced and Healthy at {short(revision)}",
            now,
        )
    failed = [(r, s) for r, s in states if s.failed_at(revision) or not s.exists]
    if failed:
        details = "; ".join(
            f"{describe(r)}: "
            + (("sync of the revision failed: " + s.failure_message) if s.exists else "deleted")
            for r, s in failed
        )
        return _verification_failed(facts, Reason.VERIFICATION_FAILED, details)
    since = facts.status.verifying_since or now
    timeout = parse_duration(spec.verification.timeout)
    waiting = [(r, s) for r, s in states if not s.at(revision)]
    words = "; ".join(f"{describe(r)}: {_state_words(s)}" for r, s in waiting)
    if (now - since).total_seconds() > timeout:
        return _verification_failed(
            facts,
            Reason.VERIFICATION_TIMED_OUT,
            f"not Synced and Healthy at {short(revision)} within {spec.verification.timeout}: "
            + words,
        )
    return Decision(
        Phase.VERIFYING,
        Reason.VERIFYING,
        f"waiting for Synced and Healthy at {short(revision)}: {words}",
        updates={} if facts.status.verifying_since else {"verifying_since": now},
        requeue=POLL_VERIFY,
    )


def _verification_failed(facts: Facts, reason: str, details: str) -> Decision:
    if facts.spec.rollback_on_failure and facts.status.previous_revisions:
        restored = ", ".join(
            f"{k} to {short(v)}" for k, v in sorted(facts.status.previous_revisions.items())
        )
        return Decision(
            Phase.ROLLED_BACK,
            reason,
            f"{details}; rolled back {restored}",
            action=Action.ROLLBACK,
            updates={"finished_at": facts.now},
        )
    return _fail(reason, details, facts.now)


def rolling_back(decision: Decision, phase: PromotionPhase) -> Decision:
    """What status says while a rollback is under way: still `phase` (not final), the
    failure's reason, and the final message behind `ROLLING_BACK`. Written before the
    previous revisions are, so that a restart finishes the rollback (see
    `_resume_rollback`): the failure that caused it may no longer be visible by then."""
    return Decision(
        phase,
        decision.reason,
        ROLLING_BACK + decision.message,
        updates={k: v for k, v in decision.updates.items() if k != "finished_at"},
        requeue=RETRY_GIT,
    )


def _resume_rollback(facts: Facts) -> Decision | None:
    """The rollback a restart (or a Git failure) interrupted, decided again as it was."""
    status = facts.status
    if facts.phase not in (Phase.PROMOTING, Phase.VERIFYING):
        return None
    if not status.message.startswith(ROLLING_BACK) or status.reason in (
        None,
        Reason.PROMOTING,
        Reason.VERIFYING,
    ):
        return None
    return Decision(
        Phase.ROLLED_BACK,
        status.reason,
        status.message.removeprefix(ROLLING_BACK),
        action=Action.ROLLBACK,
        updates={"finished_at": facts.now},
    )


def after_rollback(
    decision: Decision,
    outcome: WriteOutcome,
    now: datetime,
    underway: Decision | None = None,
) -> Decision:
    """RolledBack when the previous revisions were written back; when Git failed for a
    passing reason, `underway` (the recorded rollback) again, to retry; else Failed."""
    if outcome.retryable and underway is not None:
        return Decision(
            underway.phase,
            underway.reason,
            underway.message,
            updates=underway.updates,
            requeue=RETRY_GIT,
        )
    if outcome.error is None:
        commit = {"commit": outcome.commit} if outcome.commit else {}
        return Decision(
            decision.phase,
            decision.reason,
            decision.message,
            updates={**decision.updates, **commit},
        )
    return Decision(
        Phase.FAILED,
        Reason.ROLLBACK_FAILED,
        f"{decision.message.split('; rolled back')[0].split('; restoring')[0]}; restoring the "
        f"previous revisions failed: {outcome.error}; restore them by hand",
        updates={"finished_at": now},
    )
