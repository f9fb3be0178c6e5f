"""kopf glue for PromotionPipeline: one daemon per pipeline runs its engine every few
seconds, and at once when the pipeline changes (its spec, or the clear-hold annotation)
or when one of its Promotions does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from vmgitops.api import meta
from vmgitops.api.pipeline import ANNOTATION_CLEAR_HOLD, LABEL_PIPELINE
from vmgitops.handlers.promotions import objects
from vmgitops.kube.client import NotFound
from vmgitops.promotion.pipeline import PipelineDeps, PipelineEngine

log = logging.getLogger("vmgitops.pipelines")
PIPELINES = (meta.GROUP, meta.VERSION, meta.PIPELINE.plural)
PROMOTIONS = (meta.GROUP, meta.VERSION, meta.PROMOTION.plural)

_wake: dict[str, asyncio.Event] = {}


@kopf.on.event(*PIPELINES)
async def pipeline_event(*, body: kopf.Body, **_: Any) -> None:
    ev = _wake.get(f"{body.meta.namespace}/{body.meta.name}")
    if ev is not None and (
        body.status.get("observedGeneration") != body.meta.get("generation")
        or ANNOTATION_CLEAR_HOLD in body.meta.annotations
    ):
        ev.set()


@kopf.on.event(*PROMOTIONS)
async def owned_promotion_event(*, body: kopf.Body, **_: Any) -> None:
    annotations = body.meta.annotations
    pipeline = annotations.get(LABEL_PIPELINE)
    if pipeline:
        ev = _wake.get(f"{body.meta.namespace}/{pipeline}")
        if ev is not None:
            ev.set()


@kopf.daemon(*PIPELINES, cancellation_timeout=30)
async def pipeline_daemon(*, body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any) -> None:
    namespace, name = str(body.meta.namespace), str(body.meta.name)
    key = f"{namespace}/{name}"
    wake = _wake.setdefault(key, asyncio.Event())

    def post(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    engine = PipelineEngine(namespace, name, PipelineDeps(objects=objects(), event=post))
    try:
        while not stopped:
            wake.clear()
            try:
                delay = await engine.tick()
            except NotFound:
                return
            except Exception:
                log.exception("%s: pipeline reconcile failed; retrying in 10s", key)
                delay = 10.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=delay)
            await asyncio.sleep(0.5)  # coalesce bursts of events (status writes, annotations)
    finally:
        _wake.pop(key, None)
