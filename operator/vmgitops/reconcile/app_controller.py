"""One VMApplication's reconcile: Git to a revision, observe the fleet, roll out, report.

Runs as a pipeline of small steps (source, select, observe, decide, roll out, report),
each of which can stop the tick with a condition; the caller (a kopf daemon) calls
`tick` again after `refreshInterval` or when woken by a change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vmgitops.api import meta
from vmgitops.api.application import ManagementPolicy, VMApplicationSpec
from vmgitops.api.base import format_time
from vmgitops.api.units import parse_duration
from vmgitops.manifest import LoadedApp, ManifestError, load_app
from vmgitops.plan.health import SyncStatus
from vmgitops.reconcile import app_status
from vmgitops.reconcile.app_context import AppContext, TargetDriver
from vmgitops.reconcile.app_status import TargetView
from vmgitops.rollout.engine import (
    RUNNING,
    SUCCEEDED,
    OperationState,
    TargetOutcome,
    run_rollout,
)
from vmgitops.source import GitSource
from vmgitops.source.errors import SourceError

log = logging.getLogger("vmgitops.applications")

#: (namespace) -> every VirtualMachineTarget body in it (from the operator's index).
TargetsInNamespace = Callable[[str], Sequence[Mapping[str, Any]]]
SecretLookup = Callable[[str, str], Mapping[str, Any] | None]
EventPoster = Callable[[str, str, str], None]  # type, reason, message
StatusWriter = Callable[[dict[str, Any]], Awaitable[None]]
TargetStatusWriter = Callable[[str, str, dict[str, Any] | None], Awaitable[None]]


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
    next_retry_at: float = 0.0


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def op_from_status(raw: Mapping[str, Any] | None) -> OperationState | None:
    if not raw or not raw.get("revision"):
        return None
    b, t = raw.get("batches") or {}, raw.get("targets") or {}
    return OperationState(
        revision=str(raw["revision"]),
        phase=str(raw.get("phase") or RUNNING),
        started_at=_parse_time(raw.get("startedAt")),
        finished_at=_parse_time(raw.get("finishedAt")),
        message=str(raw.get("message") or ""),
        batch_current=int(b.get("current") or 0),
        batch_total=int(b.get("total") or 0),
        succeeded=int(t.get("succeeded") or 0),
        failed=int(t.get("failed") or 0),
        pending=int(t.get("pending") or 0),
    )


def op_to_status(op: OperationState, retry_count: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {
        "phase": op.phase,
        "revision": op.revision,
        "message": op.message[:4096],
        "batches": {"current": op.batch_current, "total": op.batch_total},
        "targets": {"succeeded": op.succeeded, "failed": op.failed, "pending": op.pending},
        "retryCount": retry_count,
    }
    if op.started_at:
        out["startedAt"] = format_time(op.started_at)
    out["finishedAt"] = format_time(op.finished_at) if op.finished_at else None
    return out


@dataclass
class Deps:
    source: GitSource
    driver: TargetDriver
    targets_in: TargetsInNamespace
    secrets: SecretLookup
    write_status: StatusWriter
    write_target_status: TargetStatusWriter
    remove_annotations: Callable[[Sequence[str]], Awaitable[None]]
    event: EventPoster
    observe_concurrency: int = 32


class AppReconciler:
    """Reconciles one VMApplication; one instance per application daemon."""

    def __init__(self, namespace: str, name: str, deps: Deps) -> None:
        self.namespace, self.name, self.deps = namespace, name, deps
        self.mem = Memory()
        self.live_body: Callable[[], Mapping[str, Any]] = lambda: {}

    # -- source -------------------------------------------------------------------------

    async def _source(
        self, spec: VMApplicationSpec, generation: int, force: bool, status: Mapping[str, Any]
    ) -> tuple[str | None, tuple[str, str] | None]:
        """The revision to deploy and an error (reason, message) if Git or the manifest
        failed; on failure the last good revision stays the one deployed."""
        m = self.mem
        src = spec.source
        creds = None
        if src.credentials is not None:
            creds = self.deps.secrets(self.namespace, src.credentials.secret_ref.name)
            if creds is None:
                return m.revision, (
                    "GitFetchFailed",
                    f"Secret {self.namespace}/{src.credentials.secret_ref.name} "
                    "(spec.source.credentials) does not exist",
                )
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
        return m.revision, None

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
        sem = asyncio.Semaphore(self.deps.observe_concurrency)

        async def one(t: Mapping[str, Any]) -> TargetView:
            name = str(t["metadata"]["name"])
            if ctx is None:
                old = self.mem.views.get(name)
                return old or TargetView(name, reachable=True)
            async with sem:
                return await self.deps.driver.observe(t, ctx)

        views = await asyncio.gather(*(one(t) for t in targets))
        return {v.name: v for v in views}

    # -- the tick -----------------------------------------------------------------------

    async def tick(self, body: Mapping[str, Any]) -> float:
        """One reconcile; returns seconds until the next one is due."""
        meta_ = body.get("metadata") or {}
        annotations = meta_.get("annotations") or {}
        generation = int(meta_.get("generation") or 0)
        status = dict(body.get("status") or {})
        spec = VMApplicationSpec.model_validate(body.get("spec") or {})
        refresh = meta.ANNOTATION_REFRESH in annotations
        sync_now = meta.ANNOTATION_SYNC in annotations
        now = datetime.now(UTC)

        revision, error = await self._source(spec, generation, refresh or sync_now, status)
        targets = self._selected(spec)
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
        views = await self._observe_all(targets, ctx)

        op = op_from_status(status.get("operation"))
        retry_count = int((status.get("operation") or {}).get("retryCount") or 0)
        new_status: dict[str, Any] = {}
        if ctx is not None and self._should_sync(spec, views, op, sync_now, revision, retry_count):
            if op is None or op.revision != revision or op.phase != RUNNING:
                if op is not None and op.revision == revision and op.phase != SUCCEEDED:
                    retry_count += 1
                else:
                    retry_count = 0
                op = OperationState(revision=revision or "", started_at=now)
                self.deps.event(
                    "Normal",
                    "SyncStarted",
                    f"syncing {len([v for v in views.values() if v.sync != SyncStatus.SYNCED])}"
                    f" target(s) to {revision[:12] if revision else ''}",
                )
            op = await self._rollout(spec, op, targets, views, ctx, retry_count)
            new_status["operation"] = op_to_status(op, retry_count)
            if op.phase != RUNNING:
                new_status["history"] = app_status.append_history(
                    status.get("history") or [],
                    revision=op.revision,
                    phase=op.phase,
                    deployed_at=op.finished_at or now,
                    limit=spec.revision_history_limit,
                )
                if op.phase == SUCCEEDED:
                    self.deps.event("Normal", "SyncSucceeded", op.message)
                else:
                    self.deps.event("Warning", "SyncFailed", op.message)
                    self.mem.next_retry_at = time.monotonic() + self._backoff(spec, retry_count)
        elif ctx is not None:
            drifted = [v.name for v in views.values() if v.sync == SyncStatus.OUT_OF_SYNC]
            was = {n for n, v in self.mem.views.items() if v.sync == SyncStatus.OUT_OF_SYNC}
            if drifted and set(drifted) - was and op is not None and op.revision == revision:
                self.deps.event(
                    "Warning",
                    "DriftDetected",
                    f"{len(drifted)} target(s) differ from {revision[:12] if revision else ''}: "
                    + ", ".join(drifted[:5]),
                )

        await self._report(
            spec, body, status, views, revision, error, generation, now, new_status, op
        )
        handled = [a for a in (meta.ANNOTATION_REFRESH, meta.ANNOTATION_SYNC) if a in annotations]
        if handled:
            await self.deps.remove_annotations(handled)
        return self._next_tick(spec, op)

    def _should_sync(
        self,
        spec: VMApplicationSpec,
        views: Mapping[str, TargetView],
        op: OperationState | None,
        sync_now: bool,
        revision: str | None,
        retry_count: int,
    ) -> bool:
        if spec.management_policy == ManagementPolicy.OBSERVE_ONLY or spec.paused:
            return False
        if op is not None and op.phase == RUNNING:
            return True  # resume (or supersede) an interrupted rollout
        if sync_now:
            return True
        automated = spec.sync_policy.automated if spec.sync_policy else None
        if automated is None:
            return False
        out = [v for v in views.values() if v.reachable and v.sync == SyncStatus.OUT_OF_SYNC]
        if not out:
            return False
        new_revision = op is None or op.revision != revision
        if new_revision:
            return True
        if op is not None and op.phase != SUCCEEDED:
            # A failed operation at this revision is retried within spec.syncPolicy.retry.
            retry = spec.sync_policy.retry if spec.sync_policy else None
            limit = retry.limit if retry else 0
            return (limit < 0 or retry_count < limit) and time.monotonic() >= self.mem.next_retry_at
        return automated.self_heal

    @staticmethod
    def _backoff(spec: VMApplicationSpec, attempt: int) -> float:
        retry = spec.sync_policy.retry if spec.sync_policy else None
        if retry is None:
            return 0.0
        b = retry.backoff
        delay = parse_duration(b.duration) * (b.factor ** max(0, attempt))
        return float(min(delay, parse_duration(b.max_duration)))

    async def _rollout(
        self,
        spec: VMApplicationSpec,
        op: OperationState,
        targets: Sequence[Mapping[str, Any]],
        views: dict[str, TargetView],
        ctx: AppContext,
        retry_count: int,
    ) -> OperationState:
        by_name = {str(t["metadata"]["name"]): t for t in targets}
        pending = [n for n, v in views.items() if v.reachable and v.sync != SyncStatus.SYNCED]
        reconciler = self

        class Hooks:
            async def apply_batch(self, names: Sequence[str]) -> list[TargetOutcome]:
                async def one(n: str) -> TargetOutcome:
                    out = await reconciler.deps.driver.sync(by_name[n], ctx)
                    views[n] = out.view
                    await reconciler._write_target(n, out.view)
                    return TargetOutcome(n, out.ok, out.message)

                return list(await asyncio.gather(*(one(n) for n in names)))

            async def save(self, state: OperationState) -> None:
                log.info("%s/%s: operation %s %s batch %d/%d ok=%d failed=%d %s",
                         reconciler.namespace, reconciler.name, state.revision[:12], state.phase,
                         state.batch_current, state.batch_total, state.succeeded, state.failed,
                         state.message)
                await reconciler.deps.write_status({"operation": op_to_status(state, retry_count)})

            def interruption(self) -> str | None:
                live = reconciler.live_body()
                lspec = live.get("spec") or {}
                if lspec.get("paused"):
                    return "spec.paused is true"
                lgen = int((live.get("metadata") or {}).get("generation") or 0)
                if lgen and lgen != ctx.generation:
                    return "the VMApplication changed; a new operation starts"
                if meta.ANNOTATION_REFRESH in (
                    (live.get("metadata") or {}).get("annotations") or {}
                ):
                    return "a refresh was requested; a new operation starts if Git moved"
                return None

            async def wait(self, seconds: float) -> None:
                # Polls the live body once a second so that pausing or a new revision cuts
                # the wait short; the body is kopf's in-memory view, so this costs no call.
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline and self.interruption() is None:  # noqa: ASYNC110
                    await asyncio.sleep(min(1.0, deadline - time.monotonic()))

            def now(self) -> datetime:
                return datetime.now(UTC)

        return await run_rollout(
            op, pending, fleet_size=len(targets), strategy=spec.strategy, hooks=Hooks()
        )

    async def _write_target(self, name: str, view: TargetView) -> None:
        old = self.mem.views.get(name)
        self.mem.views[name] = view
        if old is not None and (old.sync, old.health, old.revision, old.message) == (
            view.sync,
            view.health,
            view.revision,
            view.message,
        ):
            return
        await self.deps.write_target_status(
            name, self.name, view.to_target_status(self.name, datetime.now(UTC))
        )

    async def _report(
        self,
        spec: VMApplicationSpec,
        body: Mapping[str, Any],
        status: Mapping[str, Any],
        views: dict[str, TargetView],
        revision: str | None,
        error: tuple[str, str] | None,
        generation: int,
        now: datetime,
        new_status: dict[str, Any],
        op: OperationState | None,
    ) -> None:
        listed = list(views.values())
        for v in listed:
            await self._write_target(v.name, v)
        gone = set(self.mem.views) - set(views)
        for name in sorted(gone):
            self.mem.views.pop(name, None)
            await self.deps.write_target_status(name, self.name, None)
            self.deps.event(
                "Normal",
                "TargetLeft",
                f"{name} is no longer selected; it is left as it is and not managed",
            )
        sync = app_sync_for(listed, error is not None and self.mem.app is None)
        rolling = op is not None and op.phase == RUNNING
        health, health_msg = app_status.app_health(listed, rolling_out=rolling, paused=spec.paused)
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
        )
        patch = {k: v for k, v in desired.items() if status.get(k) != v}
        if patch:
            await self.deps.write_status(patch)

    def _next_tick(self, spec: VMApplicationSpec, op: OperationState | None) -> float:
        interval = parse_duration(spec.refresh_interval)
        if op is not None and op.phase == RUNNING:
            return 1.0
        if self.mem.next_retry_at > time.monotonic():
            return max(1.0, min(interval, self.mem.next_retry_at - time.monotonic()))
        return interval


def app_sync_for(views: Sequence[TargetView], nothing_loaded: bool) -> SyncStatus:
    if nothing_loaded:
        return SyncStatus.UNKNOWN
    return app_status.app_sync(views)
