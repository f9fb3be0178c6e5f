"""What a promotion needs to know of an application, read from its object. Pure.

Both kinds are read the same way Argo CD users read them: `status.sync.status`,
`status.sync.revision` and `status.health.status`. A VMApplication also says whether its
status describes the current spec (observedGeneration) and how its last rollout ended; an
Argo CD Application says it through `status.operationState` and
`status.sync.comparedTo`, as the Argo CD controller writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vmgitops.api.base import parse_time
from vmgitops.api.promotion import ApplicationKind, ApplicationRef

SYNCED = "Synced"
HEALTHY = "Healthy"
_FAILED_OPERATION = frozenset({"Failed", "Error"})
_RUNNING_OPERATION = frozenset({"Running", "Terminating"})


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class AppState:
    """One application as a promotion sees it."""

    kind: ApplicationKind
    name: str
    exists: bool = True
    sync: str | None = None
    """Synced, OutOfSync, Unknown, or None when the status says nothing yet."""
    health: str | None = None
    revision: str | None = None
    """status.sync.revision: the commit the application is (or is going) at."""
    target_revision: str | None = None
    """spec.source.targetRevision as written."""
    repo_url: str | None = None
    current: bool = True
    """The status describes the current spec (observedGeneration, comparedTo)."""
    operation_running: bool = False
    failed_revision: str | None = None
    """The revision whose last sync (rollout) failed, if the last one failed."""
    failure_message: str = ""
    healthy_since: datetime | None = None
    """Since when, by the application's own status, it has been Synced and Healthy at
    `revision`; None when its status does not say."""
    automated: bool = True
    """VMApplication: spec.syncPolicy.automated is set (else a sync must be asked for)."""
    multi_source: bool = False
    """Argo CD Application with spec.sources: which targetRevision to set is ambiguous."""

    @property
    def synced_healthy(self) -> bool:
        return (
            self.exists
            and self.current
            and not self.operation_running
            and self.sync == SYNCED
            and self.health == HEALTHY
            and self.revision is not None
        )

    def at(self, revision: str) -> bool:
        """Synced and Healthy at `revision`, and the status is about the current spec."""
        return self.synced_healthy and self.revision == revision

    def failed_at(self, revision: str) -> bool:
        return self.failed_revision == revision


def missing(ref: ApplicationRef) -> AppState:
    return AppState(kind=ref.kind, name=ref.name, exists=False, current=False)


def app_state(ref: ApplicationRef, body: Mapping[str, Any] | None) -> AppState:
    """The state of `ref` from its object (None: it does not exist)."""
    if body is None:
        return missing(ref)
    if ref.kind is ApplicationKind.ARGO_APPLICATION:
        return _argo_state(ref, body)
    return _vmapp_state(ref, body)


def _latest(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            return cond
    return {}


def _history_time(status: Mapping[str, Any], revision: str | None) -> datetime | None:
    """deployedAt of the newest history entry, when it is `revision`."""
    history = [h for h in status.get("history") or [] if isinstance(h, Mapping)]
    if not history or revision is None:
        return None
    last = history[-1]
    if last.get("revision") != revision:
        return None
    return parse_time(last.get("deployedAt"))


def _vmapp_state(ref: ApplicationRef, body: Mapping[str, Any]) -> AppState:
    meta = _dict(body.get("metadata"))
    spec = _dict(body.get("spec"))
    source = _dict(spec.get("source"))
    status = _dict(body.get("status"))
    sync, health = _dict(status.get("sync")), _dict(status.get("health"))
    operation = _dict(status.get("operation"))
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    revision = _str(sync.get("revision"))
    failed = operation.get("phase") == "Failed"
    ready = _condition(status, "Ready")
    since = None
    if ready.get("status") == "True":
        since = _latest(
            parse_time(ready.get("lastTransitionTime")), _history_time(status, revision)
        )
    policy = _dict(spec.get("syncPolicy"))
    return AppState(
        kind=ref.kind,
        name=ref.name,
        sync=_str(sync.get("status")),
        health=_str(health.get("status")),
        revision=revision,
        target_revision=_str(source.get("targetRevision")) or "HEAD",
        repo_url=_str(source.get("repoURL")),
        current=generation is not None and observed == generation,
        operation_running=operation.get("phase") == "Running",
        failed_revision=_str(operation.get("revision")) if failed else None,
        failure_message=str(operation.get("message") or "") if failed else "",
        healthy_since=since,
        automated=isinstance(policy.get("automated"), Mapping),
    )


def _argo_state(ref: ApplicationRef, body: Mapping[str, Any]) -> AppState:
    spec = _dict(body.get("spec"))
    source = _dict(spec.get("source"))
    status = _dict(body.get("status"))
    sync, health = _dict(status.get("sync")), _dict(status.get("health"))
    revision = _str(sync.get("revision"))
    target = _str(source.get("targetRevision")) or "HEAD"
    compared = _dict(_dict(sync.get("comparedTo")).get("source"))
    compared_target = compared.get("targetRevision") if compared else None
    # Argo CD compares against the spec it saw: until it has seen ours, its sync status
    # is about the old targetRevision.
    current = compared_target is None or (compared_target or "HEAD") == target
    op = _dict(status.get("operationState"))
    op_phase = op.get("phase")
    op_revision = _str(_dict(op.get("syncResult")).get("revision")) or _str(
        _dict(_dict(op.get("operation")).get("sync")).get("revision")
    )
    failed = op_phase in _FAILED_OPERATION
    since = None
    if sync.get("status") == SYNCED and health.get("status") == HEALTHY:
        since = _latest(
            parse_time(health.get("lastTransitionTime")),
            _history_time(status, revision),
            parse_time(op.get("finishedAt")) if op_revision == revision else None,
        )
    return AppState(
        kind=ref.kind,
        name=ref.name,
        sync=_str(sync.get("status")),
        health=_str(health.get("status")),
        revision=revision,
        target_revision=target,
        repo_url=_str(source.get("repoURL")),
        current=current,
        operation_running=op_phase in _RUNNING_OPERATION,
        failed_revision=op_revision if failed else None,
        failure_message=str(op.get("message") or "") if failed else "",
        healthy_since=since,
        multi_source=bool(spec.get("sources")) and not source,
    )
