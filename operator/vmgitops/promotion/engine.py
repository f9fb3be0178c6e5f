"""One Promotion's reconcile: observe, ask the policy, do what it says, record it.

Each `tick` reads the Promotion, `from` and the destinations, asks Git about the
revision while the promotion is Pending, and hands everything to `policy.decide`. The
status is written before a side effect (so a restart resumes it, with the revisions to
roll back to already recorded) and again after it. Side effects are idempotent: a patch
to the same revision changes nothing, and a Git commit is only made when a file's value
differs (a restart after a push that status does not know of finds the pushed commit
by its message and pushes nothing).

`crashpoints.reached` marks where the chaos tests may kill the process (a no-op unless
their environment variable is set).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from vmgitops.api import meta
from vmgitops.api.base import parse_time
from vmgitops.api.conditions import Condition, ConditionStatus, set_condition
from vmgitops.api.promotion import (
    FROM_IN_TO,
    ApplicationKind,
    ApplicationRef,
    PromotionMethod,
    PromotionPhase,
    PromotionSpec,
    PromotionStatus,
)
from vmgitops.kube.client import NotFound
from vmgitops.promotion import crashpoints, policy
from vmgitops.promotion.gitcommit import Edit, GitCommitError, commit_revisions
from vmgitops.promotion.objects import Objects, status_patch
from vmgitops.promotion.policy import (
    Action,
    Decision,
    Facts,
    PromotionRecord,
    Reason,
    RevisionCheck,
    WriteOutcome,
    dest_key,
    short,
)
from vmgitops.promotion.state import AppState, app_state
from vmgitops.promotion.yamledit import DocumentMatch
from vmgitops.source import GitSource, RevisionNotFound, SourceError, credentials_from_secret
from vmgitops.source.resolver import refuse_unsafe_resolution
from vmgitops.source.urls import RepoURL, URLRefused, parse_repo_url

log = logging.getLogger("vmgitops.promotions")

EventPoster = Callable[[str, str, str], None]
SecretGetter = Callable[[str, str], Awaitable[Mapping[str, Any] | None]]
WRITE_ATTEMPTS = 3
READY = "Ready"
_GROUP = {
    ApplicationKind.VM_APPLICATION: meta.GROUP,
    ApplicationKind.ARGO_APPLICATION: "argoproj.io",
}


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    objects: Objects
    source: GitSource
    secret: SecretGetter
    event: EventPoster = lambda type_, reason, message: None
    git_timeout: float = 120.0
    retry_delay: float = 2.0
    clock: Callable[[], datetime] = now_utc


@dataclass
class _Memo:
    """What a daemon remembers between ticks: Git's answers (a revision's commit does not
    change while the promotion is Pending, and asking every few seconds costs a round trip)."""

    revisions: dict[str, RevisionCheck] = field(default_factory=dict)
    #: gitCommit.repoURL -> (reason, message) when the URL policy refuses it, else None.
    refused: dict[str, tuple[str, str] | None] = field(default_factory=dict)


class PromotionEngine:
    """Reconciles one Promotion; one instance per Promotion daemon."""

    def __init__(self, namespace: str, name: str, deps: Deps) -> None:
        self.namespace, self.name, self.deps = namespace, name, deps
        self.memo = _Memo()
        #: The status as last written in this tick (the body's is older by then).
        self._stored: dict[str, Any] | None = None

    # -- observe ------------------------------------------------------------------------

    async def _states(
        self, spec: PromotionSpec
    ) -> tuple[AppState, dict[tuple[str, str], AppState]]:
        refs = [spec.from_, *spec.to]
        bodies = await asyncio.gather(*(self.deps.objects.get_app(self.namespace, r) for r in refs))
        states = [app_state(r, b) for r, b in zip(refs, bodies, strict=True)]
        return states[0], {r.key: s for r, s in zip(spec.to, states[1:], strict=True)}

    async def _conflicts(
        self, created: datetime | None, spec: PromotionSpec
    ) -> list[PromotionRecord]:
        records = [_record(p) for p in await self.deps.objects.promotions(self.namespace)]
        mine = frozenset(r.key for r in spec.to)
        return policy.conflicting(self.name, created, mine, [r for r in records if r])

    async def _credentials(self, secret_name: str | None) -> Mapping[str, Any] | None:
        if not secret_name:
            return None
        secret = await self.deps.secret(self.namespace, secret_name)
        if secret is None:
            raise RevisionLookupFailed(
                "GitCredentialsInvalid",
                f"Secret {self.namespace}/{secret_name} (the credentials) does not exist",
            )
        return secret

    async def _check_revision(
        self, source: AppState, apps: Sequence[tuple[AppState, str | None]], wanted: str
    ) -> RevisionCheck:
        """The commit `wanted` names in the repositories of the VMApplications involved
        (`apps`: each with the name of its credentials Secret)."""
        if wanted in self.memo.revisions:
            return self.memo.revisions[wanted]
        repos: dict[str, tuple[str, str | None]] = {}
        for state, creds_name in apps:
            if state.kind is ApplicationKind.VM_APPLICATION and state.repo_url:
                repos.setdefault(state.repo_url, (state.name, creds_name))
        if not repos and source.repo_url:
            repos[source.repo_url] = (source.name, None)
        commit: str | None = None
        for url, (owner, creds_name) in repos.items():
            creds = await self._credentials(creds_name)
            try:
                resolved = await self.deps.source.resolve(url, wanted, creds)
            except RevisionNotFound as exc:
                said = exc.message.replace("spec.source.targetRevision", "spec.revision")
                check = RevisionCheck(
                    error=f"revision {wanted[:200]!r} is not in the repository of {owner}: {said}"
                )
                self.memo.revisions[wanted] = check
                return check
            if commit is not None and resolved.commit != commit:
                check = RevisionCheck(
                    error=f"revision {wanted[:200]!r} names different commits in the "
                    f"repositories involved ({short(commit)} and {short(resolved.commit)} "
                    f"in that of {owner}); promote a commit"
                )
                self.memo.revisions[wanted] = check
                return check
            commit = resolved.commit
        check = RevisionCheck(commit=commit or wanted)
        self.memo.revisions[wanted] = check
        return check

    # -- the tick -----------------------------------------------------------------------

    async def tick(self) -> float | None:
        """One reconcile; seconds until the next, or None when the promotion is final.

        The Promotion is read afresh (a watch event may lag our own last status write,
        and acting on an older phase would repeat a step); NotFound once it is deleted."""
        self._stored = None
        body = await self.deps.objects.kube.get(meta.PROMOTION, self.namespace, self.name)
        meta_ = body.get("metadata") or {}
        raw_status = dict(body.get("status") or {})
        try:
            status = PromotionStatus.model_validate(raw_status)
        except ValidationError:
            status = PromotionStatus()
        if status.phase is not None and status.phase.is_final:
            return None
        now = self.deps.clock()
        try:
            spec = PromotionSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            text = str(first.get("msg", "invalid spec")).removeprefix("Value error, ")
            reason = Reason.SOURCE_IS_DESTINATION if FROM_IN_TO in text else Reason.INVALID_SPEC
            decision = Decision(
                PromotionPhase.FAILED,
                reason,
                f"{text}; nothing was changed",
                updates={"finished_at": now, "started_at": status.started_at or now},
            )
            await self._record(body, status, decision)
            return None

        source, dests = await self._states(spec)
        approved = str(
            (meta_.get("annotations") or {}).get(meta.ANNOTATION_APPROVED_BY) or ""
        ).strip()
        facts = Facts(
            name=self.name,
            now=now,
            spec=spec,
            status=status,
            source=source,
            destinations=dests,
            approved_by=approved or None,
        )
        if facts.phase in (PromotionPhase.PENDING, PromotionPhase.WAITING_FOR_APPROVAL):
            # A refused gitCommit.repoURL fails the promotion before anything is written
            # (not after the soak and the approval, at the first push).
            facts = replace(facts, refused=await self._refused_target(spec))
        if facts.phase is PromotionPhase.PENDING:
            created = parse_time(meta_.get("creationTimestamp"))
            facts = replace(facts, conflicts=await self._conflicts(created, spec))
            wanted = policy.revision_to_check(spec, source)
            if wanted is not None and not facts.conflicts and _all_exist(facts):
                try:
                    apps = await self._repo_creds(spec, source, dests)
                    check = await self._check_revision(source, apps, wanted)
                except (SourceError, RevisionLookupFailed) as exc:
                    why, message = str(exc.reason), exc.message
                    decision = Decision(
                        PromotionPhase.PENDING,
                        why,
                        f"cannot check revision {wanted[:200]!r} in Git yet: {message}",
                        updates={"started_at": status.started_at or now},
                        requeue=15.0,
                    )
                    await self._record(body, status, decision)
                    return decision.requeue
                facts = replace(facts, revision=check)
        decision = policy.decide(facts)
        if decision.action is Action.WRITE and facts.phase is not PromotionPhase.PROMOTING:
            crashpoints.reached("decided", self.name)
        if facts.phase is PromotionPhase.VERIFYING:
            # Any pass in Verifying, also the one that finds it done: a healthy Patch is
            # often verified on the first look, and the point must be reachable then too.
            crashpoints.reached("verifying", self.name)
        if decision.action is not Action.ROLLBACK:
            # Recorded before the write: previousRevisions must be stored first.
            status = await self._record(body, status, decision)
        if decision.action is Action.WRITE:
            crashpoints.reached("promoting", self.name)
            facts = replace(facts, status=status)
            outcome = await self._write(spec, status, facts)
            crashpoints.reached("written", self.name)
            decision = policy.after_write(replace(facts, now=self.deps.clock()), outcome)
        if decision.action is Action.ROLLBACK:
            # The rollback is recorded first and the final phase written only once the
            # previous revisions are back: a restart in between finishes the rollback.
            underway = policy.rolling_back(decision, status.phase or PromotionPhase.VERIFYING)
            status = await self._record(body, status, underway)
            crashpoints.reached("rollback", self.name)
            outcome = await self._rollback(spec, status, decision, dests)
            crashpoints.reached("restored", self.name)
            decision = policy.after_rollback(decision, outcome, self.deps.clock(), underway)
        status = await self._record(body, status, decision)
        return decision.requeue

    async def _refused_target(self, spec: PromotionSpec) -> tuple[str, str] | None:
        """(reason, message) when the URL policy refuses gitCommit.repoURL (memoized: the
        host name check asks DNS)."""
        target = spec.git_commit
        if spec.method is not PromotionMethod.GIT_COMMIT or target is None:
            return None
        url = target.repo_url
        if url not in self.memo.refused:
            try:
                await self._checked_repo(url)
                self.memo.refused[url] = None
            except URLRefused as exc:
                self.memo.refused[url] = ("RepoURLRefused", str(exc))
            except SourceError as exc:
                self.memo.refused[url] = (str(exc.reason), exc.message)
        return self.memo.refused[url]

    async def _checked_repo(self, url: str) -> RepoURL:
        """The parsed URL when the operator's Git URL policy allows it (raises URLRefused
        or RepoURLRefused): link-local and metadata hosts, by literal or by name, only
        with VMGITOPS_GIT_ALLOW_INSECURE_HOSTS, as for a VMApplication's repoURL."""
        repo = parse_repo_url(url, self.deps.source.policy)
        if not self.deps.source.policy.allow_insecure_hosts:
            await asyncio.to_thread(refuse_unsafe_resolution, repo)
        return repo

    async def _repo_creds(
        self, spec: PromotionSpec, source: AppState, dests: Mapping[tuple[str, str], AppState]
    ) -> list[tuple[AppState, str | None]]:
        """(state, credentials Secret name) of `from` and each VMApplication destination."""
        out: list[tuple[AppState, str | None]] = []
        for ref, state in [(spec.from_, source), *((r, dests[r.key]) for r in spec.to)]:
            if ref.kind is not ApplicationKind.VM_APPLICATION:
                continue
            body = await self.deps.objects.get_app(self.namespace, ref)
            creds = (((body or {}).get("spec") or {}).get("source") or {}).get("credentials") or {}
            out.append((state, (creds.get("secretRef") or {}).get("name")))
        return out

    # -- status -------------------------------------------------------------------------

    async def _record(
        self, body: Mapping[str, Any], status: PromotionStatus, decision: Decision
    ) -> PromotionStatus:
        """Writes the decision to status (when it changes anything); returns the new status."""
        now = self.deps.clock()
        raw = self._stored if self._stored is not None else dict(body.get("status") or {})
        updates = dict(decision.updates)
        new = status.model_copy(
            update={
                "phase": decision.phase,
                "reason": decision.reason,
                "message": decision.message[:4096],
                "observed_generation": (body.get("metadata") or {}).get("generation"),
                **updates,
            }
        )
        if new.started_at is None:
            new.started_at = now
        ready = (
            ConditionStatus.TRUE
            if decision.phase is PromotionPhase.SUCCEEDED
            else ConditionStatus.FALSE
            if decision.final
            else ConditionStatus.UNKNOWN
        )
        new.conditions = set_condition(
            status.conditions,
            Condition(
                type=READY,
                status=ready,
                reason=decision.reason,
                message=decision.message[:4096],
                observed_generation=new.observed_generation,
            ),
            now,
        )
        stored = new.to_dict()
        patch = status_patch(raw, stored)
        if patch:
            if decision.final:
                crashpoints.reached("final", self.name)
            await self.deps.objects.kube.patch_status(
                meta.PROMOTION, self.namespace, self.name, patch
            )
            if status.phase != decision.phase:
                self._announce(decision)
        self._stored = stored
        return new

    def _announce(self, decision: Decision) -> None:
        kind = (
            "Warning"
            if decision.phase in (PromotionPhase.FAILED, PromotionPhase.ROLLED_BACK)
            else "Normal"
        )
        log.info(
            "%s/%s: %s (%s) %s",
            self.namespace,
            self.name,
            decision.phase.value,
            decision.reason,
            decision.message,
        )
        self.deps.event(
            kind, f"{decision.phase.value}", f"{decision.reason}: {decision.message}"[:1024]
        )

    # -- side effects -------------------------------------------------------------------

    async def _write(
        self, spec: PromotionSpec, status: PromotionStatus, facts: Facts
    ) -> WriteOutcome:
        revision = status.revision or ""
        values = {dest_key(r, spec.to): revision for r in spec.to}
        message = (
            f"Promote {', '.join(r.name for r in spec.to)} to {revision[:12]}\n\n"
            f"Promotion: {self.namespace}/{self.name}\n"
            f"From: {spec.from_.name}\n"
            f"Revision: {revision}\n"
        )
        if spec.method is PromotionMethod.GIT_COMMIT:
            return await self._commit(spec, values, message, ("Promote ", f"Revision: {revision}"))
        return await self._patch(spec, values, facts.destinations)

    async def _rollback(
        self,
        spec: PromotionSpec,
        status: PromotionStatus,
        decision: Decision,
        dests: Mapping[tuple[str, str], AppState],
    ) -> WriteOutcome:
        values = dict(status.previous_revisions)
        message = (
            f"Roll back {', '.join(r.name for r in spec.to)} after a failed promotion\n\n"
            f"Promotion: {self.namespace}/{self.name}\n"
            f"Reason: {decision.reason}\n"
            + "".join(f"{k}: {v}\n" for k, v in sorted(values.items()))
        )
        if spec.method is PromotionMethod.GIT_COMMIT:
            return await self._commit(spec, values, message, ("Roll back ",))
        return await self._patch(spec, values, dests)

    async def _patch(
        self,
        spec: PromotionSpec,
        values: Mapping[str, str],
        dests: Mapping[tuple[str, str], AppState],
    ) -> WriteOutcome:
        written: list[str] = []
        for ref in spec.to:
            key = dest_key(ref, spec.to)
            if key not in values:
                continue
            revision = values[key]
            patch: dict[str, Any] = {"spec": {"source": {"targetRevision": revision}}}
            state = dests.get(ref.key)
            if (
                ref.kind is ApplicationKind.VM_APPLICATION
                and state is not None
                and not state.automated
            ):
                # Without automated sync a new targetRevision would wait for a sync request.
                patch["metadata"] = {"annotations": {meta.ANNOTATION_SYNC: self.name}}
            error = await self._retrying(self.namespace, ref, patch)
            if error is not None:
                return WriteOutcome(
                    error=f"patching {policy.describe(ref)}: {error}",
                    reason="PatchFailed",
                    written=tuple(written),
                )
            written.append(key)
        return WriteOutcome(written=tuple(written))

    async def _retrying(
        self, namespace: str, ref: ApplicationRef, patch: Mapping[str, Any]
    ) -> str | None:
        """None when the patch was applied (within a few attempts), else why it failed."""
        last = ""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                await self.deps.objects.patch_app(namespace, ref, patch)
                return None
            except NotFound as exc:
                return str(exc)
            except ApiException as exc:
                last = f"API server answered {exc.status} {exc.reason}"
                if (
                    exc.status is not None
                    and 400 <= exc.status < 500
                    and exc.status not in (409, 429)
                ):
                    return last
            if attempt + 1 < WRITE_ATTEMPTS:
                await asyncio.sleep(self.deps.retry_delay * (attempt + 1))
        return last

    async def _commit(
        self,
        spec: PromotionSpec,
        values: Mapping[str, str],
        message: str,
        marks: Sequence[str],
    ) -> WriteOutcome:
        """Commits `values` with `message`; when the files already hold them (a push
        made before a restart), the commit is the newest whose message names this
        Promotion and starts its lines with each of `marks`."""
        target = spec.git_commit
        assert target is not None  # the spec validator requires it for GitCommit
        edits = []
        for ref in spec.to:
            key = dest_key(ref, spec.to)
            if key not in values:
                continue
            match = DocumentMatch(ref.kind.value, ref.name, _GROUP[ref.kind])
            entry = target.file_for(ref)
            if entry is not None:
                edits.append(
                    Edit(key, match, entry.path, entry.key, values[key], explicit_file=True)
                )
            else:
                edits.append(Edit(key, match, target.path, target.key, values[key]))
        try:
            repo = await self._checked_repo(target.repo_url)
            secret_name = target.credentials.secret_ref.name if target.credentials else None
            secret = await self._credentials(secret_name) if secret_name else None
            creds = credentials_from_secret(secret)
        except URLRefused as exc:
            return WriteOutcome(error=str(exc), reason="RepoURLRefused")
        except SourceError as exc:
            return WriteOutcome(error=exc.message, reason=exc.reason)
        except RevisionLookupFailed as exc:
            return WriteOutcome(error=exc.message, reason=exc.reason)
        last: GitCommitError | None = None
        for attempt in range(WRITE_ATTEMPTS):
            try:
                result = await asyncio.to_thread(
                    commit_revisions,
                    repo,
                    creds,
                    self.deps.source.policy,
                    target.branch,
                    edits,
                    message,
                    timeout=self.deps.git_timeout,
                    identify=(f"Promotion: {self.namespace}/{self.name}", *marks),
                )
            except GitCommitError as exc:
                last = exc
                if not exc.retryable:
                    break
                if attempt + 1 < WRITE_ATTEMPTS:
                    await asyncio.sleep(self.deps.retry_delay * (attempt + 1))
                continue
            log.info(
                "%s/%s: %s to %s (%s), attempt(s) %d",
                self.namespace,
                self.name,
                f"pushed {short(result.commit)}"
                if result.changed
                else f"nothing to commit (already pushed as {short(result.commit)})"
                if result.commit
                else "nothing to commit",
                repo.display,
                target.branch,
                result.attempts,
            )
            return WriteOutcome(written=result.changed, commit=result.commit)
        assert last is not None
        return WriteOutcome(error=last.message, reason=last.reason, retryable=last.retryable)


class RevisionLookupFailed(Exception):
    """Git could not be asked (missing Secret); retried on the next tick."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def _all_exist(facts: Facts) -> bool:
    return facts.source.exists and all(s.exists for s in facts.destinations.values())


def _record(obj: Mapping[str, Any]) -> PromotionRecord | None:
    """A Promotion's name, age, phase and destinations, read leniently."""
    meta_ = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    phase_raw = (obj.get("status") or {}).get("phase")
    try:
        phase = PromotionPhase(phase_raw) if phase_raw else None
    except ValueError:
        phase = None
    dests = frozenset(
        (str(t.get("kind") or ApplicationKind.VM_APPLICATION.value), str(t.get("name")))
        for t in spec.get("to") or []
        if isinstance(t, Mapping) and t.get("name")
    )
    if not meta_.get("name"):
        return None
    return PromotionRecord(
        name=str(meta_["name"]),
        created=parse_time(meta_.get("creationTimestamp")),
        phase=phase,
        destinations=dests,
    )


def ref_of(kind: str, name: str) -> ApplicationRef:
    return ApplicationRef(kind=ApplicationKind(kind), name=name)
