"""Health and sync vocabularies, ordered as in Argo CD's gitops-engine.

Health is ordered from best to worst, so that the health of an application is the
worst health of its targets, and of a target the worst of its checks.
"""

from __future__ import annotations

from enum import StrEnum


class Health(StrEnum):
    """How well something runs; declaration order is best to worst."""

    HEALTHY = "Healthy"
    SUSPENDED = "Suspended"
    PROGRESSING = "Progressing"
    MISSING = "Missing"
    DEGRADED = "Degraded"
    UNKNOWN = "Unknown"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)


_ORDER = list(Health)


def is_worse(a: Health, b: Health) -> bool:
    """True when `a` is strictly worse than `b`."""
    return a.rank > b.rank


def worst(*healths: Health) -> Health:
    """The worst of `healths`; Healthy when there are none (nothing to be unhealthy)."""
    result = Health.HEALTHY
    for h in healths:
        if is_worse(h, result):
            result = h
    return result


class SyncStatus(StrEnum):
    """Whether the VM matches Git: Synced (empty plan), OutOfSync, or Unknown."""

    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


def combine_sync(*statuses: SyncStatus) -> SyncStatus:
    """OutOfSync if any is; else Unknown if any is; else Synced."""
    if SyncStatus.OUT_OF_SYNC in statuses:
        return SyncStatus.OUT_OF_SYNC
    if SyncStatus.UNKNOWN in statuses:
        return SyncStatus.UNKNOWN
    return SyncStatus.SYNCED
