"""Builders for promotion policy tests: applications, specs and facts in a line each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from vmgitops.api.promotion import (
    ApplicationKind,
    PromotionPhase,
    PromotionSpec,
    PromotionStatus,
)
from vmgitops.promotion.policy import Facts, PromotionRecord, RevisionCheck
from vmgitops.promotion.state import AppState

NOW = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)
R1 = "1" * 40
R2 = "2" * 40
R3 = "3" * 40


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def app(
    name: str,
    revision: str | None = R1,
    *,
    sync: str | None = "Synced",
    health: str | None = "Healthy",
    kind: ApplicationKind = ApplicationKind.VM_APPLICATION,
    exists: bool = True,
    current: bool = True,
    running: bool = False,
    failed: str | None = None,
    since: datetime | None = None,
    target: str | None = None,
    automated: bool = True,
    multi_source: bool = False,
) -> AppState:
    return AppState(
        kind=kind,
        name=name,
        exists=exists,
        sync=sync if exists else None,
        health=health if exists else None,
        revision=revision if exists else None,
        target_revision=target or revision,
        repo_url="git://127.0.0.1/r.git",
        current=current,
        operation_running=running,
        failed_revision=failed,
        failure_message="health check http failed" if failed else "",
        healthy_since=since,
        automated=automated,
        multi_source=multi_source,
    )


def spec(**over: Any) -> PromotionSpec:
    data: dict[str, Any] = {"from": {"name": "staging"}, "to": [{"name": "prod"}]}
    data.update(over)
    return PromotionSpec.model_validate(data)


def facts(
    *,
    phase: PromotionPhase | None = None,
    source: AppState | None = None,
    dests: list[AppState] | None = None,
    spec_: PromotionSpec | None = None,
    approved_by: str | None = None,
    check: RevisionCheck | None = None,
    conflicts: tuple[PromotionRecord, ...] = (),
    now: datetime = NOW,
    **status: Any,
) -> Facts:
    s = spec_ or spec()
    source = source or app("staging", R2, since=ago(3600))
    dests = dests if dests is not None else [app("prod", R1, since=ago(7200))]
    by_key = {}
    for ref, state in zip(s.to, dests, strict=True):
        by_key[ref.key] = state
    if check is None and phase in (None, PromotionPhase.PENDING) and source.revision:
        check = RevisionCheck(commit=(s.revision or source.revision))
    return Facts(
        name="promo",
        now=now,
        spec=s,
        status=PromotionStatus(phase=phase, **status),
        source=source,
        destinations=by_key,
        approved_by=approved_by,
        revision=check,
        conflicts=conflicts,
    )
