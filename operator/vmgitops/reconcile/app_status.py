"""Pure: from per-target views to a VMApplication's sync, health, summary and conditions.

Only counts land on the VMApplication; per-target detail goes to each target's own
status, so that the object stays small at 5,000 targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vmgitops.api.base import format_time
from vmgitops.api.conditions import Condition, ConditionStatus, set_condition
from vmgitops.plan.health import Health, SyncStatus, worst

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

    def to_target_status(self, app: str, now: datetime) -> dict[str, Any]:
        """The entry for the target's status.applications."""
        return {
            "name": app,
            "revision": self.revision or "",
            "sync": self.sync.value,
            "health": self.health.value,
            "lastSyncTime": format_time(now),
            "message": self.message[:1024],
        }


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
) -> list[dict[str, Any]]:
    """Synced, Healthy and Ready; `error` (reason, message) is a source or manifest
    failure that makes the application not Ready whatever its VMs say."""
    conds = [Condition.model_validate(c) for c in old]

    def put(type_: str, ok: bool | None, reason: str, message: str) -> None:
        nonlocal conds
        status = (
            ConditionStatus.UNKNOWN
            if ok is None
            else ConditionStatus.TRUE
            if ok
            else ConditionStatus.FALSE
        )
        conds = set_condition(
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
        put("Synced", False, "OutOfSync", f"some targets differ from {short}")
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


def append_history(
    history: Sequence[dict[str, Any]],
    *,
    revision: str,
    phase: str,
    deployed_at: datetime,
    limit: int,
) -> list[dict[str, Any]]:
    """History with one more entry (ids grow), trimmed to the newest `limit`."""
    next_id = max((int(h.get("id", 0)) for h in history), default=0) + 1
    entry = {
        "id": next_id,
        "revision": revision,
        "deployedAt": format_time(deployed_at),
        "phase": phase,
    }
    out = [*history, entry]
    return out[-limit:] if limit > 0 else []
