"""The rollout loop's hooks for one VMApplication operation: the driver applies each
batch, target entries and status.operation are written after each batch, and the live
object (paused, a new spec, a refresh) or a new commit in Git stops the loop between
batches."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from vmgitops.api import meta
from vmgitops.bounded import gather_bounded
from vmgitops.reconcile.app_context import AppContext, TargetDriver
from vmgitops.reconcile.app_operation import op_to_status
from vmgitops.reconcile.app_status import TargetView, summarize
from vmgitops.rollout.engine import FAILED, SUCCEEDED, OperationState, TargetOutcome

log = logging.getLogger("vmgitops.applications")

#: Seconds between two looks at the live object while waiting between batches.
POLL = 1.0


class OperationHooks:
    """RolloutHooks for one run of the loop (one tick)."""

    def __init__(
        self,
        *,
        key: str,
        ctx: AppContext,
        driver: TargetDriver,
        targets: Mapping[str, Mapping[str, Any]],
        views: dict[str, TargetView],
        retry_count: int,
        still_selected: Callable[[str], bool],
        write_status: Callable[[dict[str, Any]], Awaitable[Any]],
        write_targets: Callable[[Mapping[str, Mapping[str, Any] | None]], Awaitable[None]],
        live_body: Callable[[], Mapping[str, Any]],
        newer_revision: Callable[[], Awaitable[str | None]],
        stopping: Callable[[], bool],
        handled_refresh: str | None,
        first_saved: Callable[[], Awaitable[None]] | None = None,
        concurrency: int = 128,
    ) -> None:
        self.key, self.ctx, self.driver = key, ctx, driver
        self.targets, self.views, self.retry_count = targets, views, retry_count
        self.still_selected = still_selected
        self.write_status, self.write_targets = write_status, write_targets
        self.live_body, self.newer_revision = live_body, newer_revision
        self.stopping, self.handled_refresh = stopping, handled_refresh
        self.first_saved = first_saved
        # A batch may be the whole fleet: its targets are synced this many at a time.
        self.concurrency = concurrency

    async def apply_batch(self, names: Sequence[str]) -> list[TargetOutcome]:
        left: set[str] = set()

        async def one(name: str) -> TargetOutcome:
            target = self.targets.get(name)
            if target is None or not self.still_selected(name):
                left.add(name)  # relabelled (or deleted) since the tick began: not ours
                return TargetOutcome(name, False, "no longer selected", skipped=True)
            out = await self.driver.sync(target, self.ctx)
            self.views[name] = out.view
            return TargetOutcome(
                name, out.ok, out.message, skipped=out.unreachable, unknown=out.unknown
            )

        outcomes = await gather_bounded(self.concurrency, one, names)
        now = datetime.now(UTC)
        entries: dict[str, Mapping[str, Any] | None] = {}
        for o in outcomes:
            view = self.views.get(o.name)
            if view is None or o.name in left:
                continue
            synced = not o.skipped or o.unknown
            entries[o.name] = view.to_target_status(
                self.ctx.name,
                synced_at=now if synced else None,
                phase=(SUCCEEDED if o.ok else FAILED) if synced else None,
            )
        await self.write_targets(entries)
        return outcomes

    async def save(self, state: OperationState) -> None:
        log.info(
            "%s: operation %s %s batch %d/%d ok=%d failed=%d pending=%d %s",
            self.key,
            state.revision[:12],
            state.phase,
            state.batch_current,
            state.batch_total,
            state.succeeded,
            state.failed,
            state.pending,
            state.message,
        )
        await self.write_status(
            {
                "operation": op_to_status(state, self.retry_count),
                "summary": summarize(list(self.views.values())),
            }
        )
        if self.first_saved is not None:
            # The request that started this operation is answered once the operation
            # is visible in status (`vmgitops sync --wait` tells the two apart).
            done, self.first_saved = self.first_saved, None
            await done()

    async def interruption(self) -> str | None:
        if self.stopping():
            return "the operator is stopping; the operation resumes when it runs again"
        live = self.live_body()
        m = live.get("metadata") or {}
        if (live.get("spec") or {}).get("paused"):
            return "spec.paused is true"
        generation = int(m.get("generation") or 0)
        if generation and generation != self.ctx.generation:
            return "the VMApplication's spec changed"
        refresh = (m.get("annotations") or {}).get(meta.ANNOTATION_REFRESH)
        if refresh is not None and refresh != self.handled_refresh:
            return "a refresh was requested (vmgitops.io/refresh)"
        newer = await self.newer_revision()
        if newer is not None and newer != self.ctx.revision:
            return f"revision {newer[:12]} arrived; a new operation starts"
        return None

    async def wait(self, seconds: float) -> None:
        # Looks at the live object once a second: it is kopf's in-memory view, so this
        # costs no API call; Git is asked only when refreshInterval is due.
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
            if time.monotonic() < deadline and await self.interruption() is not None:
                return

    def now(self) -> datetime:
        return datetime.now(UTC)
