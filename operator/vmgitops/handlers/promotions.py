"""kopf glue for Promotion: one daemon per unfinished Promotion runs its engine.

The daemon looks again when the engine asks (a few seconds while verifying, at the end
of a soak) or at once when the Promotion changes (the approval annotation); it ends when
the promotion reaches a final phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from vmgitops.api import meta
from vmgitops.api.promotion import PromotionPhase
from vmgitops.kube.client import Kube, NotFound
from vmgitops.promotion.engine import Deps, PromotionEngine
from vmgitops.promotion.objects import Objects
from vmgitops.source import GitSource, default_cache_dir

log = logging.getLogger("vmgitops.promotions")
PROMOTIONS = (meta.GROUP, meta.VERSION, meta.PROMOTION.plural)

_wake: dict[str, asyncio.Event] = {}
_objects: Objects | None = None
_source: GitSource | None = None


def objects() -> Objects:
    global _objects
    if _objects is None:
        _objects = Objects(Kube())
    return _objects


def _git() -> GitSource:
    # A cache of its own: revision checks never race the application daemons' fetches.
    global _source
    if _source is None:
        _source = GitSource(default_cache_dir() / "promotions", workers=2)
    return _source


def _unfinished(status: Any, **_: Any) -> bool:
    phase = (status or {}).get("phase")
    try:
        return phase is None or not PromotionPhase(phase).is_final
    except ValueError:
        return True


@kopf.on.event(*PROMOTIONS)
async def promotion_event(*, body: kopf.Body, **_: Any) -> None:
    # Only an approval needs an answer at once; our own status writes must not wake us.
    ev = _wake.get(f"{body.meta.namespace}/{body.meta.name}")
    approved = body.meta.annotations.get(meta.ANNOTATION_APPROVED_BY)
    if ev is not None and approved and not body.status.get("approvedBy"):
        ev.set()


@kopf.daemon(*PROMOTIONS, cancellation_timeout=30)
async def promotion_daemon(*, body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any) -> None:
    # No `when` filter on the phase: kopf would cancel the daemon as soon as it saw the
    # final phase, possibly before the Event of that phase is posted. The daemon ends by
    # itself once the promotion is final (and at once for promotions finished earlier).
    if not _unfinished(body.status):
        return
    namespace, name = str(body.meta.namespace), str(body.meta.name)
    key = f"{namespace}/{name}"
    wake = _wake.setdefault(key, asyncio.Event())
    objs = objects()

    def post(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    async def secret(ns: str, secret_name: str) -> Any:
        return await objs.kube.get_secret(ns, secret_name)

    engine = PromotionEngine(
        namespace, name, Deps(objects=objs, source=_git(), secret=secret, event=post)
    )
    try:
        while not stopped:
            wake.clear()
            try:
                delay = await engine.tick()
            except NotFound:
                return  # deleted while we worked
            except Exception:
                log.exception("%s: promotion reconcile failed; retrying in 10s", key)
                delay = 10.0
            if delay is None:
                return
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=delay)
    finally:
        _wake.pop(key, None)
