"""One VMApplication's reconcile: Git to a revision, observe the fleet, roll out, report.

Runs as a pipeline of small steps (source, select, observe, decide, roll out, report);
the caller (a kopf daemon) calls `tick` again after the delay it returns, or at once when
woken by a change. What to do is decided by pure code (`app_decide`); how a rollout
proceeds, by the pure loop in `rollout.engine` with `app_rollout`'s hooks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from vmgitops.api import meta
from vmgitops.api.application import VMApplicationSpec
from vmgitops.api.units import parse_duration
from vmgitops.bounded import gather_bounded
from vmgitops.manifest import LoadedApp, ManifestError, load_app
from vmgitops.plan.health import SyncStatus
from vmgitops.plan.resolution import RESOLVED, ResolveResult
from vmgitops.reconcile import app_status
from vmgitops.reconcile.app_context import AppContext, TargetDriver
from vmgitops.reconcile.app_decide import Action, Decision, Policy, decide
from vmgitops.reconcile.app_operation import op_from_status, op_to_status, retry_count_of
from vmgitops.reconcile.app_resolve import precheck, requests_for
from vmgitops.reconcile.app_rollout import OperationHooks
from vmgitops.reconcile.app_status import TargetView
from vmgitops.rollout.engine import FAILED, RUNNING, SUCCEEDED, OperationState, run_rollout
from vmgitops.rollout.history import append_history
from vmgitops.source import Resolved, redact_urls
from vmgitops.source.errors import SourceError

log = logging.getLogger("vmgitops.applications")

#: (namespace) -> every VirtualMachineTarget body in it (from the operator's index).
TargetsInNamespace = Callable[[str], Sequence[Mapping[str, Any]]]
SecretLookup = Callable[[str, str], Mapping[str, Any] | None]
EventPoster = Callable[[str, str, str], None]  # type, reason, message
#: Merge-patches the VMApplication's status; returns the object the API server returned.
StatusWriter = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any] | None]]
#: target name -> this application's entry for its status.applications (None: remove).
TargetsWriter = Callable[[Mapping[str, Mapping[str, Any] | None]], Awaitable[None]]
#: (target body, request value, result): removes the target's resolve-command annotation,
#: records the result on the target and posts an Event about it there.
ResolveAnswer = Callable[[Mapping[str, Any], str, ResolveResult], Awaitable[None]]
#: Events name at most this many targets.
NAMED = 5
#: Status reason when checking out or loading a revision failed with an error that is
#: neither a SourceError nor a ManifestError.
LOAD_FAILED = "SourceLoadFailed"
#: The annotations that ask for a tick now.
REQUESTS = (meta.ANNOTATION_REFRESH, meta.ANNOTATION_SYNC)


class Source(Protocol):
    """Git, as the reconciler uses it (vmgitops.source.GitSource)."""

    async def resolve(
        self, url: str, target_revision: str | None = ..., credentials: Any = ...
    ) -> Resolved: ...

    async def checkout(
        self, url: str, commit: str, path: str | None = ..., credentials: Any = ...
    ) -> Any: ...


class AppMetrics(Protocol):
    def operation_finished(self, result: str, seconds: float | None) -> None: ...

    def drift_found(self, namespace: str, app: str, count: int) -> None: ...

    def app_targets_counted(
        self, namespace: str, app: str, counts: Mapping[tuple[str, str], int]
    ) -> None: ...


class NoMetrics:
    def operation_finished(self, result: str, seconds: float | None) -> None:
        pass

    def drift_found(self, namespace: str, app: str, count: int) -> None:
        pass

    def app_targets_counted(
        self, namespace: str, app: str, counts: Mapping[tuple[str, str], int]
    ) -> None:
        pass


@dataclass
class Deps:
    source: Source
    driver: TargetDriver
    targets_in: TargetsInNamespace
    secrets: SecretLookup
    write_status: StatusWriter
    write_targets: TargetsWriter
    #: Whether target `name`'s status.applications (as last known) lists this app.
    lists_app: Callable[[str], bool]
    remove_annotations: Callable[[Sequence[str]], Awaitable[None]]
    event: EventPoster
    #: The labels of target `name` now (None: no such target); default: a namespace walk.
    target_labels: Callable[[str], Mapping[str, str] | None] | None = None
    metrics: AppMetrics = field(default_factory=NoMetrics)
    stopping: Callable[[], bool] = lambda: False
    #: Targets observed at once (settings.observe_concurrency, VMGITOPS_OBSERVE_CONCURRENCY).
    observe_concurrency: int = 32
    #: Targets of a batch synced at once (settings.sync_concurrency).
    sync_concurrency: int = 128
    #: Answers vmgitops.io/resolve-command requests; None: they are left alone.
    answer_resolve: ResolveAnswer | None = None


@dataclass
class Memory:
    """What a daemon keeps between ticks; losing it (a restart) only costs a re-fetch."""

    revision: str | None = None
    ref: str | None = None
    fetched_at: float = 0.0
    fetched_generation: int = -1
    app: LoadedApp | None = None
    app_revision: str | None = None
    views: dict[str, TargetView] = field(default_factory=dict)
    #: The entries last handed to write_targets, by target (to skip unchanged ones).
    entries: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Targets seen drifted at the last tick (an Event only for new ones).
    drifted: set[str] = field(default_factory=set)
    #: The generation the last operation started at (None until the first tick).
    op_generation: int | None = None
    #: Our last status write: (resourceVersion, status), fresher than a lagging watch.
    written: tuple[str, dict[str, Any]] | None = None
    ticks: int = 0
    #: The generation the last tick reconciled, and the refresh/sync annotation values
    #: it acted on: events that carry only these (our own writes, seen while the
    #: annotation is still set) are no reason for another full pass.
    tick_generation: int | None = None
    consumed: dict[str, str] = field(default_factory=dict)
    #: target -> the resourceVersion at which its resolve-command request was answered.
    resolved: dict[str, str] = field(default_factory=dict)


def _short(revision: str | None) -> str:
    return (revision or "")[:12]


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:NAMED])
    return shown + (f" and {len(names) - NAMED} more" if len(names) > NAMED else "")


def _newer(a: str, b: str) -> bool:
    try:
        return int(a) > int(b)
    except ValueError:
        return a != b


class AppReconciler:
    """Reconciles one VMApplication; one instance per application daemon."""

    def __init__(self, namespace: str, name: str, deps: Deps) -> None:
        self.namespace, self.name, self.deps = namespace, name, deps
        self.key = f"{namespace}/{name}"
        self.mem = Memory()
        self.live_body: Callable[[], Mapping[str, Any]] = lambda: {}
        self._labels = deps.target_labels or self._walk_labels

    def _walk_labels(self, name: str) -> Mapping[str, str] | None:
        for t in self.deps.targets_in(self.namespace):
            m = t.get("metadata") or {}
            if m.get("name") == name:
                return dict(m.get("labels") or {})
        return None

    # -- source -------------------------------------------------------------------------

    def _credentials(self, spec: VMApplicationSpec) -> tuple[Any, tuple[str, str] | None]:
        src = spec.source
        if src.credentials is None:
            return None, None
        creds = self.deps.secrets(self.namespace, src.credentials.secret_ref.name)
        if creds is None:
            return None, (
                "GitFetchFailed",
                f"Secret {self.namespace}/{src.credentials.secret_ref.name} "
                "(spec.source.credentials) does not exist",
            )
        return creds, None

    async def _source(
        self, spec: VMApplicationSpec, generation: int, force: bool, status: Mapping[str, Any]
    ) -> tuple[str | None, tuple[str, str] | None]:
        """The revision to deploy and an error (reason, message) if Git or the manifest
        failed; on failure the last good revision stays the one deployed."""
        m = self.mem
        src = spec.source
        creds, missing = self._credentials(spec)
        if missing is not None:
            return m.revision, missing
        due = time.monotonic() - m.fetched_at >= parse_duration(spec.refresh_interval)
        if force or due or m.revision is None or m.fetched_generation != generation:
            try:
                resolved = await self.deps.source.resolve(src.repo_url, src.target_revision, creds)
            except SourceError as exc:
                m.fetched_at = time.monotonic()
                if m.revision is None:
                    m.revision = ((status.get("sync") or {}).get("revision")) or None
                return m.revision, (exc.reason, str(exc))
            m.revision, m.ref = resolved.commit, resolved.ref
            m.fetched_at, m.fetched_generation = time.monotonic(), generation
        assert m.revision is not None
        if m.app is None or m.app_revision != m.revision or m.fetched_generation != generation:
            try:
                folder = await self.deps.source.checkout(src.repo_url, m.revision, src.path, creds)
                m.app = await asyncio.to_thread(load_app, folder)
                m.app_revision = m.revision
            except SourceError as exc:
                m.app = None
                return m.revision, (exc.reason, str(exc))
            except ManifestError as exc:
                m.app = None
                return m.revision, ("ManifestInvalid", f"{exc.reason}: {exc}")
            except Exception as exc:
                # Not an error the source or the manifest reports: a bug, a full disk, a
                # checkout that vanished. The tick goes on (status says why; nothing is
                # applied, what was loaded before stays in memory and on disk) and the
                # load is tried again next tick.
                return m.revision, self._load_failed(exc)
        return m.revision, None

    def _load_failed(self, exc: Exception) -> tuple[str, str]:
        detail = redact_urls(str(exc))[:300]
        log.error(
            "%s: loading revision %s failed unexpectedly: %s: %s",
            self.key,
            _short(self.mem.revision),
            type(exc).__name__,
            detail,
        )
        log.debug("%s: loading the revision failed on", self.key, exc_info=exc)
        return (
            LOAD_FAILED,
            f"loading revision {_short(self.mem.revision)} failed unexpectedly "
            f"({type(exc).__name__}: {detail}); nothing is applied from it, it is tried "
            "again at the next refresh",
        )

    async def _poll_git(self, spec: VMApplicationSpec) -> str | None:
        """Mid-rollout: the newest commit targetRevision is known to name; Git is asked
        again only when refreshInterval is due (a failure keeps what was known)."""
        m = self.mem
        if time.monotonic() - m.fetched_at < parse_duration(spec.refresh_interval):
            return m.revision
        creds, missing = self._credentials(spec)
        if missing is not None:
            return m.revision
        src = spec.source
        m.fetched_at = time.monotonic()
        try:
            resolved = await self.deps.source.resolve(src.repo_url, src.target_revision, creds)
        except SourceError as exc:
            log.info("%s: Git poll during the rollout failed: %s", self.key, exc.reason)
            return m.revision
        m.revision, m.ref = resolved.commit, resolved.ref
        return resolved.commit

    # -- targets ------------------------------------------------------------------------

    def _selected(self, spec: VMApplicationSpec) -> list[Mapping[str, Any]]:
        sel = spec.destination.selector
        out = [
            t
            for t in self.deps.targets_in(self.namespace)
            if sel.matches((t.get("metadata") or {}).get("labels") or {})
        ]
        return sorted(out, key=lambda t: str(t["metadata"]["name"]))

    async def _observe_all(
        self, targets: Sequence[Mapping[str, Any]], ctx: AppContext | None
    ) -> dict[str, TargetView]:
        async def one(t: Mapping[str, Any]) -> TargetView:
            name = str(t["metadata"]["name"])
            if ctx is None:
                old = self.mem.views.get(name)
                return old or TargetView(name, reachable=True)
            return await self.deps.driver.observe(t, ctx)

        views = await gather_bounded(self.deps.observe_concurrency, one, targets)
        return {v.name: v for v in views}

    # -- the tick -----------------------------------------------------------------------

    def _status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The freshest status: the watched body's, or our own last write if newer."""
        status = dict(body.get("status") or {})
        if self.mem.written is None:
            return status
        rv_written, written = self.mem.written
        rv = str((body.get("metadata") or {}).get("resourceVersion") or "")
        if rv and _newer(rv, rv_written):
            self.mem.written = None
            return status
        return dict(written)

    async def _write_status(self, patch: dict[str, Any]) -> None:
        obj = await self.deps.write_status(patch)
        if obj is not None:
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            self.mem.written = (rv, dict(obj.get("status") or {}))

    async def tick(self, body: Mapping[str, Any]) -> float:
        """One reconcile; returns seconds until the next one is due."""
        meta_ = body.get("metadata") or {}
        annotations = dict(meta_.get("annotations") or {})
        generation = int(meta_.get("generation") or 0)
        status = self._status(body)
        spec = VMApplicationSpec.model_validate(body.get("spec") or {})
        refresh = meta.ANNOTATION_REFRESH in annotations
        sync_now = meta.ANNOTATION_SYNC in annotations
        now = datetime.now(UTC)
        self.mem.ticks += 1
        self.mem.tick_generation = generation
        for a in REQUESTS:
            if a in annotations:
                self.mem.consumed[a] = str(annotations[a])

        revision, error = await self._source(spec, generation, refresh or sync_now, status)
        targets = self._selected(spec)
        if "observedGeneration" not in status and self.mem.written is None:
            # A new application: say what it works on before observing every target.
            await self._write_status(
                app_status.first_status(
                    targets=len(targets),
                    revision=revision,
                    error=error,
                    generation=generation,
                    now=now,
                )
            )
            status = self._status(body)
        ctx = None
        if self.mem.app is not None and revision is not None and error is None:
            automated = spec.sync_policy.automated if spec.sync_policy else None
            ctx = AppContext(
                self.namespace,
                self.name,
                generation,
                revision,
                self.mem.app,
                dict(spec.parameters),
                prune=bool(automated and automated.prune),
            )
        await self._resolve_commands(spec, targets, ctx)
        views = await self._observe_all(targets, ctx)
        if ctx is not None:
            self._note_drift(views, revision)

        op = op_from_status(status.get("operation"))
        retry_count = retry_count_of(status.get("operation"))
        if self.mem.op_generation is None:
            # After a restart the spec the last operation ran with is not known: assume
            # this one, so that a restart alone never starts an operation.
            self.mem.op_generation = generation
        decision = decide(
            Policy.of(spec),
            list(views.values()),
            revision=revision if ctx is not None else None,
            op=op,
            retry_count=retry_count,
            sync_now=sync_now,
            spec_changed=self.mem.op_generation != generation,
            now=now,
        )
        if ctx is not None and not decision.runs and not any(v.needs_apply for v in views.values()):
            # Nothing differs under this spec: a later drift is not "the spec changed".
            self.mem.op_generation = generation
        handled = [a for a in REQUESTS if a in annotations]

        async def answered() -> None:
            # Removed once acted on: before a rollout that may take long (so that a new
            # request made during it is seen, not taken for this one), yet after the
            # operation it started is in status.
            if handled:
                await self.deps.remove_annotations(handled)

        new_status: dict[str, Any] = {}
        if ctx is not None and decision.runs:
            op, retry_count = await self._operate(
                spec, decision, op, targets, views, ctx, now, annotations, answered
            )
            new_status["operation"] = op_to_status(op, retry_count)
            if op.phase != RUNNING:
                self._finished(spec, op, status, new_status, now)
        else:
            await answered()
            if sync_now:
                self.deps.event("Warning", "SyncNotStarted", f"sync requested: {decision.reason}")
        await self._report(spec, status, views, revision, error, generation, now, new_status, op)
        return self._next_tick(spec, op, decision, now)

    async def _resolve_commands(
        self,
        spec: VMApplicationSpec,
        targets: Sequence[Mapping[str, Any]],
        ctx: AppContext | None,
    ) -> None:
        """Acts on the vmgitops.io/resolve-command requests naming this application
        (before observing, so that this tick already sees what they settled)."""
        answer = self.deps.answer_resolve
        if answer is None:
            return
        selected = {str(t["metadata"]["name"]) for t in targets}
        requests = requests_for(self.name, self.deps.targets_in(self.namespace), self.mem.resolved)
        for r in requests:
            result = precheck(
                r,
                selected=r.name in selected,
                observe_only=Policy.of(spec).observe_only,
                loaded=ctx is not None,
            )
            if result is None and ctx is not None:
                result = await self.deps.driver.resolve(r.target, ctx, r.request)
            if result is None or not result.final:
                log.info("%s: %s on %s waits: %s", self.key, r.value, r.name, result)
                continue
            await answer(r.target, r.value, result)
            if r.version:
                self.mem.resolved[r.name] = r.version
            self.deps.event(
                "Normal" if result.reason == RESOLVED else "Warning",
                result.reason,
                f"target {r.name}: {r.value}: {result.message}",
            )

    def woken_by(self, body: Mapping[str, Any]) -> bool:
        """Whether a watch event of the application asks for a tick: a spec the last tick
        did not reconcile, or a refresh/sync request it did not act on. Our own status
        writes, seen while the request we consumed is still set (it is removed only after
        the operation it started is in status), ask for nothing."""
        meta_ = body.get("metadata") or {}
        annotations = meta_.get("annotations") or {}
        for a in REQUESTS:
            if a not in annotations:
                # Removed (by us, once handled): the same value set again is a new request.
                self.mem.consumed.pop(a, None)
        generation = meta_.get("generation")
        observed = (body.get("status") or {}).get("observedGeneration")
        if generation != observed and generation != self.mem.tick_generation:
            return True
        return any(
            a in annotations and self.mem.consumed.get(a) != str(annotations[a]) for a in REQUESTS
        )

    def _note_drift(self, views: Mapping[str, TargetView], revision: str | None) -> None:
        drifted = sorted(n for n, v in views.items() if v.drifted(revision))
        new = [n for n in drifted if n not in self.mem.drifted]
        self.mem.drifted = set(drifted)
        if new:
            self.deps.metrics.drift_found(self.namespace, self.name, len(new))
            self.deps.event(
                "Warning",
                "DriftDetected",
                f"{len(new)} target(s) differ from {_short(revision)}, the revision they "
                f"were synced to: {_names(new)}",
            )

    # -- operations ---------------------------------------------------------------------

    async def _operate(
        self,
        spec: VMApplicationSpec,
        decision: Decision,
        op: OperationState | None,
        targets: Sequence[Mapping[str, Any]],
        views: dict[str, TargetView],
        ctx: AppContext,
        now: datetime,
        annotations: Mapping[str, str],
        answered: Callable[[], Awaitable[None]],
    ) -> tuple[OperationState, int]:
        if decision.action == Action.RESUME and op is not None:
            self.mem.op_generation = ctx.generation
            if self.mem.ticks == 1 or op.message.startswith("stopped"):
                self.deps.event(
                    "Normal",
                    "SyncResumed",
                    f"resuming the operation at {_short(op.revision)} after batch "
                    f"{op.batch_current}/{op.batch_total}: {len(decision.pending)} "
                    "target(s) still to sync",
                )
        else:
            if op is not None and op.phase == RUNNING:
                self.deps.metrics.operation_finished("Superseded", _seconds(op, now))
                self.deps.event(
                    "Normal",
                    "SyncSuperseded",
                    f"the operation at {_short(op.revision)} stopped after batch "
                    f"{op.batch_current}/{op.batch_total}: {decision.reason}",
                )
            op = OperationState(revision=ctx.revision, started_at=now)
            self.mem.op_generation = ctx.generation
            self.deps.event(
                "Normal",
                "SyncStarted",
                f"{decision.reason}; syncing {len(decision.pending)} target(s) to "
                f"{_short(ctx.revision)}",
            )
        retry_count = decision.retry_count
        selector = spec.destination.selector
        names = {str(t["metadata"]["name"]): t for t in targets}

        def still_selected(name: str) -> bool:
            labels = self._labels(name)
            return labels is not None and selector.matches(labels)

        hooks = OperationHooks(
            key=self.key,
            ctx=ctx,
            driver=self.deps.driver,
            targets=names,
            views=views,
            retry_count=retry_count,
            still_selected=still_selected,
            write_status=self._write_status,
            write_targets=self._write_targets,
            live_body=self.live_body,
            newer_revision=lambda: self._poll_git(spec),
            stopping=self.deps.stopping,
            handled_refresh=annotations.get(meta.ANNOTATION_REFRESH),
            first_saved=answered,
            concurrency=self.deps.sync_concurrency,
        )
        op = await run_rollout(
            op,
            decision.pending,
            fleet_size=len(targets),
            strategy=spec.strategy,
            hooks=hooks,
            first=decision.first,
        )
        if op.phase == RUNNING and op.interrupted.startswith("spec.paused"):
            self.deps.event("Normal", "RolloutPaused", op.message)
        return op, retry_count

    def _finished(
        self,
        spec: VMApplicationSpec,
        op: OperationState,
        status: Mapping[str, Any],
        new_status: dict[str, Any],
        now: datetime,
    ) -> None:
        new_status["history"] = append_history(
            status.get("history") or [],
            revision=op.revision,
            phase=op.phase,
            deployed_at=op.finished_at or now,
            limit=spec.revision_history_limit,
        )
        self.deps.metrics.operation_finished(op.phase, _seconds(op, op.finished_at or now))
        if op.phase == SUCCEEDED:
            self.deps.event("Normal", "SyncSucceeded", f"{_short(op.revision)}: {op.message}")
        else:
            self.deps.event("Warning", "SyncFailed", f"{_short(op.revision)}: {op.message}")

    # -- report -------------------------------------------------------------------------

    async def _write_targets(self, entries: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Hands over the entries that differ from the last ones (one batch of patches)."""
        changes: dict[str, Mapping[str, Any] | None] = {}
        for name, entry in entries.items():
            if entry is None:
                self.mem.entries.pop(name, None)
                changes[name] = entry
                continue
            old = self.mem.entries.get(name)
            if old is not None and dict(old) == dict(entry):
                continue
            self.mem.entries[name] = entry
            changes[name] = entry
        if changes:
            await self.deps.write_targets(changes)

    async def _targets_left(self, selected: Mapping[str, TargetView]) -> None:
        """Targets no longer selected lose this application's entry, and are left as
        they are on the VM; also those that left while the operator was not running."""
        gone = set(self.mem.views) - set(selected)
        for t in self.deps.targets_in(self.namespace):
            n = str((t.get("metadata") or {}).get("name"))
            if n not in selected and self.deps.lists_app(n):
                gone.add(n)
        if not gone:
            return
        for n in gone:
            self.mem.views.pop(n, None)
        listed = sorted(n for n in gone if self.deps.lists_app(n))
        if listed:
            await self._write_targets(dict.fromkeys(listed))
        self.deps.event(
            "Normal",
            "TargetLeft",
            f"{_names(sorted(gone))} no longer selected: left as it is on the VM and no "
            "longer managed by this application",
        )

    async def _report(
        self,
        spec: VMApplicationSpec,
        status: Mapping[str, Any],
        views: dict[str, TargetView],
        revision: str | None,
        error: tuple[str, str] | None,
        generation: int,
        now: datetime,
        new_status: dict[str, Any],
        op: OperationState | None,
    ) -> None:
        await self._targets_left(views)
        joined = sorted(set(views) - set(self.mem.views))
        if joined and self.mem.ticks > 1:
            self.deps.event(
                "Normal", "TargetJoined", f"{_names(joined)} selected by the destination"
            )
        self.mem.views.update(views)
        await self._write_targets({n: v.to_target_status(self.name) for n, v in views.items()})
        # Compared with the freshest status: the rollout may have written since the tick
        # began, and what it wrote is not written again.
        status = self._status(self.live_body()) if self.mem.written else status
        listed = list(views.values())
        sync = app_sync_for(listed, error is not None and self.mem.app is None)
        rolling = op is not None and op.phase == RUNNING
        health, health_msg = app_status.app_health(
            listed, rolling_out=rolling, paused=self._paused(spec)
        )
        desired: dict[str, Any] = {
            "sync": {"status": sync.value, "revision": revision},
            "health": {"status": health.value, "message": health_msg[:1024]},
            "summary": app_status.summarize(listed),
            "observedGeneration": generation,
            **new_status,
        }
        desired["conditions"] = app_status.conditions(
            status.get("conditions") or [],
            sync=sync,
            health=health,
            health_message=health_msg,
            revision=revision,
            error=error,
            generation=generation,
            now=now,
            out_of_sync=[v for v in listed if v.sync == SyncStatus.OUT_OF_SYNC],
        )
        patch = {k: v for k, v in desired.items() if status.get(k) != v}
        if patch:
            await self._write_status(patch)
        counts: dict[tuple[str, str], int] = {}
        for v in listed:
            key = (v.sync.value, v.health.value if v.reachable else app_status.UNREACHABLE)
            counts[key] = counts.get(key, 0) + 1
        self.deps.metrics.app_targets_counted(self.namespace, self.name, counts)

    def _next_tick(
        self,
        spec: VMApplicationSpec,
        op: OperationState | None,
        decision: Decision,
        now: datetime,
    ) -> float:
        interval = parse_duration(spec.refresh_interval)
        if op is not None and op.phase == RUNNING and decision.runs and not self._paused(spec):
            return 1.0  # stopped between batches: resume, or start the newer revision
        retry_at = decision.retry_at
        if retry_at is None and op is not None and op.phase == FAILED and decision.runs:
            # Just failed: the first look again is when its retry is due.
            policy = Policy.of(spec)
            if policy.may_retry(decision.retry_count) and op.finished_at is not None:
                retry_at = op.finished_at + timedelta(
                    seconds=policy.backoff_after(decision.retry_count)
                )
        if retry_at is not None:
            return max(1.0, min(interval, (retry_at - datetime.now(UTC)).total_seconds()))
        return interval

    def _paused(self, spec: VMApplicationSpec) -> bool:
        """spec.paused as of now: the live object may have been paused mid-rollout."""
        live = self.live_body().get("spec") or {}
        return spec.paused or bool(live.get("paused"))

    def in_use(self) -> set[str]:
        """Revisions whose checkouts this application still needs (see gc_checkouts)."""
        out = {r for r in (self.mem.revision, self.mem.app_revision) if r}
        out |= {v.revision for v in self.mem.views.values() if v.revision}
        return out


def _seconds(op: OperationState, end: datetime) -> float | None:
    if op.started_at is None:
        return None
    return (end - op.started_at).total_seconds()


def app_sync_for(views: Sequence[TargetView], nothing_loaded: bool) -> SyncStatus:
    if nothing_loaded:
        return SyncStatus.UNKNOWN
    return app_status.app_sync(views)
