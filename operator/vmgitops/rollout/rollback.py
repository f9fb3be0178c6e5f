"""Pure: what `vmgitops rollback` goes back to, and whether it should be done in Git.

A VMApplication whose manifest Argo CD syncs from Git would get its old targetRevision
back at Argo CD's next sync (self-heal): there, a rollback belongs in Git.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vmgitops.rollout.history import SUCCEEDED

#: Argo CD marks what it manages with one of these (label or annotation tracking).
ARGO_INSTANCE_LABEL = "app.kubernetes.io/instance"
ARGO_TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"


class NoSuchEntry(LookupError):
    """The history holds no entry to roll back to."""


def rollback_entry(
    history: Sequence[Mapping[str, Any]], current: str | None, entry_id: int | None = None
) -> Mapping[str, Any]:
    """The entry to roll back to: `entry_id`, or else the newest successful deployment
    of a revision other than `current` (the one deployed now)."""
    if entry_id is not None:
        for h in history:
            if int(h.get("id", -1)) == entry_id:
                return dict(h)
        ids = ", ".join(str(h.get("id")) for h in history) or "none"
        raise NoSuchEntry(f"no history entry with id {entry_id} (ids: {ids})")
    for h in reversed(history):
        if h.get("phase") == SUCCEEDED and h.get("revision") and h.get("revision") != current:
            return dict(h)
    raise NoSuchEntry(
        "no earlier successful deployment in status.history to roll back to"
        + (f" (current revision {current[:12]})" if current else "")
    )


def managed_by_argo(metadata: Mapping[str, Any]) -> str | None:
    """What says Argo CD manages this object (for the warning), or None."""
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    if annotations.get(ARGO_TRACKING_ANNOTATION):
        return f"annotation {ARGO_TRACKING_ANNOTATION}={annotations[ARGO_TRACKING_ANNOTATION]}"
    if labels.get(ARGO_INSTANCE_LABEL):
        return f"label {ARGO_INSTANCE_LABEL}={labels[ARGO_INSTANCE_LABEL]}"
    return None
