"""Pure: from per-target views to a VMApplication's sync, health, summary and conditions.

Only counts land on the VMApplication; per-target detail goes to each target's own
status, so that the object stays small at 5,000 targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vmgitops.api.base import format_time
from vmgitops.api.conditions import Condition, ConditionStatus, set_condition
from vmgitops.plan.health import Health, SyncStatus, worst
from vmgitops.rollout.history import append_history

__all__ = [
    "TargetView",
    "app_health",
    "app_sync",
    "append_history",
    "conditions",
    "first_status",
    "merge_entry",
    "summarize",
]

UNREACHABLE = "Unreachable"


@dataclass(frozen=True)
class TargetView:
    """One selected target's state for one application, as last observed."""

    name: str
    reachable: bool
    sync: SyncStatus = SyncStatus.UNKNOWN
    health: Health = Health.UNKNOWN
    #: The revision the VM's own record says is deployed for this application.
    revision: str | None = None
    message: str = ""
    #: What prune would remove, kept because prune is off ("file /etc/x").
    orphans: tuple[str, ...] = ()
    #: Steps a sync would apply (None: not known, e.g. the plan could not be made).
    steps: int | None = None

    @property
    def orphans_only(self) -> bool:
        """OutOfSync only because prune is off: a sync would change nothing."""
        return self.sync == SyncStatus.OUT_OF_SYNC and bool(self.orphans) and self.steps == 0

    @property
    def needs_apply(self) -> bool:
        """Reachable and not at the desired state in a way a sync can change."""
        return self.reachable and self.sync != SyncStatus.SYNCED and not self.orphans_only

    def at(self, revision: str | None) -> bool:
        """The VM's own record says `revision` was applied to it completely."""
        return revision is not None and self.revision == revision

    def drifted(self, revision: str | None) -> bool:
        """At `revision` by its own record, yet different from it now: changed by hand."""
        return self.needs_apply and self.sync == SyncStatus.OUT_OF_SYNC and self.at(revision)

    def unhealthy_at(self, revision: str | None) -> bool:
        """At `revision` and in sync, but its health checks do not pass."""
        return (
            self.reachable
            and self.sync == SyncStatus.SYNCED
            and self.at(revision)
            and self.health not in (Health.HEALTHY, Health.SUSPENDED)
        )

    def to_target_status(
        self, app: str, *, synced_at: datetime | None = None, phase: str | None = None
    ) -> dict[str, Any]:
        """The entry for the target's status.applications; `synced_at` and `phase` only
        when a sync just ended on the VM (else the entry keeps the ones it had)."""
        entry: dict[str, Any] = {
            "name": app,
            "revision": self.revision or "",
            "sync": self.sync.value,
            "health": self.health.value,
            "message": self.message[:1024],
        }
        if synced_at is not None:
            entry["lastSyncTime"] = format_time(synced_at)
        if phase is not None:
            entry["phase"] = phase
        return entry


def merge_entry(
    applications: Sequence[Mapping[str, Any]], app: str, entry: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """A target's status.applications with `app`'s entry replaced (None: removed).

    Fields the new entry leaves out (lastSyncTime, phase) keep their old values, so that
    an observation does not erase when the VM was last synced. Sorted by name.
    """
    old = next((a for a in applications if a.get("name") == app), None)
    out = [dict(a) for a in applications if a.get("name") != app]
    if entry is not None:
        merged = {**(old or {}), **entry}
        out.append({k: v for k, v in merged.items() if v is not None})
    out.sort(key=lambda a: str(a.get("name")))
    return out


def summarize(views: Sequence[TargetView]) -> dict[str, int]:
    return {
        "targets": len(views),
        "synced": sum(v.sync == SyncStatus.SYNCED for v in views),
        "outOfSync": sum(v.sync == SyncStatus.OUT_OF_SYNC for v in views),
        "healthy": sum(v.reachable and v.health == Health.HEALTHY for v in views),
        "degraded": sum(v.reachable and v.health == Health.DEGRADED for v in views),
        "unreachable": sum(not v.reachable for v in views),
    }


def app_sync(views: Sequence[TargetView]) -> SyncStatus:
    """OutOfSync if any target is; Unknown if any cannot be observed; else Synced."""
    if not views:
        return SyncStatus.SYNCED
    if any(v.sync == SyncStatus.OUT_OF_SYNC for v in views):
        return SyncStatus.OUT_OF_SYNC
    if any(not v.reachable or v.sync == SyncStatus.UNKNOWN for v in views):
        return SyncStatus.UNKNOWN
    return SyncStatus.SYNCED


def app_health(
    views: Sequence[TargetView], *, rolling_out: bool, paused: bool
) -> tuple[Health, str]:
    """The worst health of the reachable targets, with what explains it."""
    if paused:
        return Health.SUSPENDED, "spec.paused is true"
    if not views:
        return Health.MISSING, "the destination selector matches no VirtualMachineTarget"
    reachable = [v for v in views if v.reachable]
    health = worst(*(v.health for v in reachable)) if reachable else Health.UNKNOWN
    if rolling_out and not health.rank > Health.PROGRESSING.rank:
        return Health.PROGRESSING, "a rollout is in progress"
    bad = [v for v in reachable if v.health == health and health != Health.HEALTHY]
    unreachable = len(views) - len(reachable)
    parts = []
    if bad:
        parts.append(
            ", ".join(f"{v.name}: {v.message}" if v.message else v.name for v in bad[:3])
            + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        )
    if unreachable:
        parts.append(f"{unreachable} target(s) unreachable")
    return health, "; ".join(parts)


def conditions(
    old: Sequence[dict[str, Any]],
    *,
    sync: SyncStatus,
    health: Health,
    health_message: str,
    revision: str | None,
    error: tuple[str, str] | None,
    generation: int,
    now: datetime,
    out_of_sync: Sequence[TargetView] = (),
) -> list[dict[str, Any]]:
    """Synced, Healthy and Ready; `error` (reason, message) is a source or manifest
    failure that makes the application not Ready whatever its VMs say. `out_of_sync`
    (the first few are named) say why the application is OutOfSync."""
    conds = [Condition.model_validate(c) for c in old]
    detail = ""
    if out_of_sync:
        named = [f"{v.name}: {v.message[:200]}" if v.message else v.name for v in out_of_sync[:3]]
        more = len(out_of_sync) - len(named)
        detail = ": " + "; ".join(named) + (f"; and {more} more" if more > 0 else "")

    def put(type_: str, ok: bool | None, reason: str, message: str) -> None:
        nonlocal conds
        status = (
            ConditionStatus.UNKNOWN
            if ok is None
            else ConditionStatus.TRUE
            if ok
            else ConditionStatus.FALSE
        )
        conds = _set(conds, type_, status, reason, message, generation, now)

    short = (revision or "")[:12]
    if error is not None:
        put(
            "Synced",
            None if sync == SyncStatus.UNKNOWN else sync == SyncStatus.SYNCED,
            error[0],
            error[1],
        )
    elif sync == SyncStatus.SYNCED:
        put("Synced", True, "Synced", f"every target is at {short}")
    elif sync == SyncStatus.OUT_OF_SYNC:
        put("Synced", False, "OutOfSync", f"some targets differ from {short}{detail}")
    else:
        put("Synced", None, "Unknown", "some targets could not be observed")
    put(
        "Healthy",
        None if health == Health.UNKNOWN else health == Health.HEALTHY,
        health.value,
        health_message,
    )
    ready = error is None and sync == SyncStatus.SYNCED and health == Health.HEALTHY
    if error is not None:
        put("Ready", False, error[0], error[1])
    else:
        put(
            "Ready",
            ready,
            "Ready" if ready else "NotReady",
            "synced and healthy" if ready else f"sync {sync.value}, health {health.value}",
        )
    return [c.to_dict() for c in conds]


def _set(
    conds: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """`conds` with the condition `type_` set (its transition time kept if unchanged)."""
    return set_condition(
        conds,
        Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            observed_generation=generation,
        ),
        now,
    )


#: Reason of the conditions a new application reports before its first observation.
OBSERVING = "Observing"


def first_status(
    *,
    targets: int,
    revision: str | None,
    error: tuple[str, str] | None,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    """What a new application reports before it has observed its targets: which spec
    and revision it works on and how many targets it selected, sync Unknown and health
    Progressing. Observing thousands of targets takes minutes; without this the
    application would show no status at all meanwhile."""
    message = f"observing {targets} target(s) for the first time"
    conds: list[Condition] = []
    synced = ready = (OBSERVING, message) if error is None else error
    for type_, status, (reason, text) in (
        ("Synced", ConditionStatus.UNKNOWN, synced),
        ("Healthy", ConditionStatus.UNKNOWN, (Health.PROGRESSING.value, message)),
        ("Ready", ConditionStatus.FALSE, ready),
    ):
        conds = _set(conds, type_, status, reason, text, generation, now)
    return {
        "observedGeneration": generation,
        "sync": {"status": SyncStatus.UNKNOWN.value, "revision": revision},
        "health": {"status": Health.PROGRESSING.value, "message": message},
        "summary": {**summarize([]), "targets": targets},
        "conditions": [c.to_dict() for c in conds],
    }
