"""Pure: status.history of a VMApplication, and which entry a rollback goes back to.

History lists distinct deployments, newest last: an operation at the revision of the
newest entry (a self-heal, a retry, a manual re-sync) updates that entry instead of
pushing older revisions out, so that `revisionHistoryLimit` entries are that many
revisions to roll back to. Ids only grow, so `vmgitops rollback APP ID` stays unambiguous.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from vmgitops.api.base import format_time

SUCCEEDED = "Succeeded"


def append_history(
    history: Sequence[Mapping[str, Any]],
    *,
    revision: str,
    phase: str,
    deployed_at: datetime,
    limit: int,
) -> list[dict[str, Any]]:
    """History after an operation at `revision` ended in `phase`, trimmed to `limit`."""
    out = [dict(h) for h in history]
    if out and out[-1].get("revision") == revision:
        last = out[-1]
        # A failed re-sync does not make a succeeded deployment a failed one.
        if not (last.get("phase") == SUCCEEDED and phase != SUCCEEDED):
            last["phase"] = phase
            last["deployedAt"] = format_time(deployed_at)
    else:
        next_id = max((int(h.get("id", 0)) for h in history), default=0) + 1
        out.append(
            {
                "id": next_id,
                "revision": revision,
                "deployedAt": format_time(deployed_at),
                "phase": phase,
            }
        )
    return out[-limit:] if limit > 0 else []
