"""One PromotionPipeline's reconcile: observe the stages and the pipeline's Promotions,
ask `pipeline_policy.plan`, create and delete Promotions, write the status.

The pipeline never writes an application itself: every move is a Promotion (with its
gates, approval, verification and rollback), owned by the pipeline and named after the
stage and revision, so a restart that re-plans creates nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from vmgitops.api import meta
from vmgitops.api.base import parse_time
from vmgitops.api.conditions import Condition, ConditionStatus, set_condition
from vmgitops.api.pipeline import (
    ANNOTATION_CLEAR_HOLD,
    LABEL_PIPELINE,
    LABEL_STAGE,
    PromotionPipelineSpec,
    PromotionPipelineStatus,
)
from vmgitops.api.promotion import PromotionPhase
from vmgitops.kube.client import Conflict, NotFound
from vmgitops.promotion import pipeline_policy
from vmgitops.promotion.objects import Objects, status_patch
from vmgitops.promotion.pipeline_policy import NewPromotion, OwnedPromotion, PipelineFacts
from vmgitops.promotion.state import app_state

log = logging.getLogger("vmgitops.pipelines")
INTERVAL = 5.0
LABEL_VALUE_MAX = 63


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass
class PipelineDeps:
    objects: Objects
    event: Callable[[str, str, str], None] = lambda type_, reason, message: None
    clock: Callable[[], datetime] = now_utc


def parse_clear(value: str | None) -> frozenset[str]:
    """Stage names from the clear-hold annotation: "web-prod", "a,b" or "*"."""
    return frozenset(p.strip() for p in (value or "").split(",") if p.strip())


def _owned(obj: Mapping[str, Any], uid: str) -> OwnedPromotion | None:
    meta_ = obj.get("metadata") or {}
    if not any((o or {}).get("uid") == uid for o in meta_.get("ownerReferences") or []):
        return None
    stage = (meta_.get("annotations") or {}).get(LABEL_STAGE)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not stage:
        stage = next((t.get("name") for t in spec.get("to") or [] if t.get("name")), None)
    if not stage or not meta_.get("name"):
        return None
    try:
        phase = PromotionPhase(status["phase"]) if status.get("phase") else None
    except ValueError:
        phase = None
    return OwnedPromotion(
        name=str(meta_["name"]),
        stage=str(stage),
        revision=str(spec.get("revision") or status.get("revision") or ""),
        phase=phase,
        created=parse_time(meta_.get("creationTimestamp")),
        reason=status.get("reason"),
        message=str(status.get("message") or ""),
        previous=dict(status.get("previousRevisions") or {}),
    )


def promotion_body(
    namespace: str, pipeline: str, uid: str, spec: PromotionPipelineSpec, new: NewPromotion
) -> dict[str, Any]:
    """The Promotion that moves `new.revision` from the previous stage into `new.stage`."""
    labels = {}
    if len(pipeline) <= LABEL_VALUE_MAX:
        labels[LABEL_PIPELINE] = pipeline
    if len(new.stage.name) <= LABEL_VALUE_MAX:
        labels[LABEL_STAGE] = new.stage.name
    promotion_spec: dict[str, Any] = {
        "from": {"kind": new.previous_stage.kind.value, "name": new.previous_stage.name},
        "to": [{"kind": new.stage.kind.value, "name": new.stage.name}],
        "revision": new.revision,
        "approval": {"required": new.stage.approval.required},
        "verification": {"soakTime": new.previous_stage.soak_time, "timeout": new.stage.timeout},
        "method": spec.method.value,
        "rollbackOnFailure": spec.rollback_on_failure,
    }
    if spec.git_commit is not None:
        promotion_spec["gitCommit"] = spec.git_commit.to_dict()
    return {
        "apiVersion": meta.API_VERSION,
        "kind": meta.PROMOTION.kind,
        "metadata": {
            "name": new.name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {LABEL_PIPELINE: pipeline, LABEL_STAGE: new.stage.name},
            "ownerReferences": [
                {
                    "apiVersion": meta.API_VERSION,
                    "kind": meta.PIPELINE.kind,
                    "name": pipeline,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": promotion_spec,
    }


class PipelineEngine:
    """Reconciles one PromotionPipeline; one instance per pipeline daemon."""

    def __init__(self, namespace: str, name: str, deps: PipelineDeps) -> None:
        self.namespace, self.name, self.deps = namespace, name, deps

    async def tick(self) -> float:
        """One reconcile, from the pipeline as it is now; seconds until the next."""
        body = await self.deps.objects.kube.get(meta.PIPELINE, self.namespace, self.name)
        meta_ = body.get("metadata") or {}
        uid = str(meta_.get("uid") or "")
        generation = meta_.get("generation")
        raw_status = dict(body.get("status") or {})
        try:
            status = PromotionPipelineStatus.model_validate(raw_status)
        except ValidationError:
            status = PromotionPipelineStatus()
        now = self.deps.clock()
        try:
            spec = PromotionPipelineSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            message = str(exc.errors()[0].get("msg", "invalid spec"))
            await self._write(raw_status, status, generation, now, "InvalidSpec", message)
            return 30.0
        refs = [pipeline_policy.stage_ref(s) for s in spec.stages]
        bodies = await asyncio.gather(*(self.deps.objects.get_app(self.namespace, r) for r in refs))
        states = [app_state(r, b) for r, b in zip(refs, bodies, strict=True)]
        promotions = [
            p
            for p in (_owned(o, uid) for o in await self.deps.objects.promotions(self.namespace))
            if p is not None
        ]
        clear_raw = (meta_.get("annotations") or {}).get(ANNOTATION_CLEAR_HOLD)
        facts = PipelineFacts(
            name=self.name,
            now=now,
            spec=spec,
            states=states,
            status=status,
            promotions=promotions,
            clear=parse_clear(clear_raw),
        )
        plan = pipeline_policy.plan(facts)
        for name in plan.delete:
            await self.deps.objects.delete_promotion(self.namespace, name)
        for new in plan.create:
            try:
                await self.deps.objects.create_promotion(
                    self.namespace, promotion_body(self.namespace, self.name, uid, spec, new)
                )
            except Conflict:
                log.info("%s/%s: Promotion %s exists", self.namespace, self.name, new.name)
        for ev in plan.events:
            log.info("%s/%s: %s %s", self.namespace, self.name, ev.reason, ev.message)
            self.deps.event(ev.type, ev.reason, ev.message)
        new_status = status.model_copy(
            update={"stages": plan.stages, "holds": plan.holds, "summary": plan.summary()}
        )
        missing = [r.name for r, s in zip(refs, states, strict=True) if not s.exists]
        if missing:
            reason, message = "ApplicationNotFound", f"not found: {', '.join(missing)}"
        elif plan.holds:
            held = [s for s in plan.stages if s.hold is not None]
            reason = "Held"
            message = "; ".join(
                f"{s.name}: {s.hold.reason}" for s in held if s.hold is not None
            ) + (f" (clear with the annotation {ANNOTATION_CLEAR_HOLD}=<stage>)")
        else:
            reason, message = "Ready", "no stage is held"
        await self._write(raw_status, new_status, generation, now, reason, message)
        if clear_raw is not None:
            with contextlib.suppress(NotFound):
                await self.deps.objects.kube.patch(
                    meta.PIPELINE,
                    self.namespace,
                    self.name,
                    {"metadata": {"annotations": {ANNOTATION_CLEAR_HOLD: None}}},
                )
        return INTERVAL

    async def _write(
        self,
        raw: Mapping[str, Any],
        status: PromotionPipelineStatus,
        generation: Any,
        now: datetime,
        reason: str,
        message: str,
    ) -> None:
        ok = reason == "Ready"
        status.observed_generation = generation if isinstance(generation, int) else None
        status.conditions = set_condition(
            status.conditions,
            Condition(
                type="Ready",
                status=ConditionStatus.TRUE if ok else ConditionStatus.FALSE,
                reason=reason,
                message=message[:4096],
                observed_generation=status.observed_generation,
            ),
            now,
        )
        patch = status_patch(raw, status.to_dict())
        if patch:
            await self.deps.objects.kube.patch_status(
                meta.PIPELINE, self.namespace, self.name, patch
            )
