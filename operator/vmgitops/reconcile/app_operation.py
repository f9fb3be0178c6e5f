"""status.operation of a VMApplication, to and from the rollout loop's OperationState.

The operation is persisted after every batch, so that an operator restarted mid-rollout
finds it Running, with its revision and batch numbers, and resumes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vmgitops.api.base import format_time, parse_time
from vmgitops.rollout.engine import RUNNING, OperationState

MESSAGE_LIMIT = 4096


def op_from_status(raw: Mapping[str, Any] | None) -> OperationState | None:
    if not raw or not raw.get("revision"):
        return None
    b, t = raw.get("batches") or {}, raw.get("targets") or {}
    return OperationState(
        revision=str(raw["revision"]),
        phase=str(raw.get("phase") or RUNNING),
        started_at=parse_time(raw.get("startedAt")),
        finished_at=parse_time(raw.get("finishedAt")),
        message=str(raw.get("message") or ""),
        batch_current=int(b.get("current") or 0),
        batch_total=int(b.get("total") or 0),
        succeeded=int(t.get("succeeded") or 0),
        failed=int(t.get("failed") or 0),
        pending=int(t.get("pending") or 0),
    )


def retry_count_of(raw: Mapping[str, Any] | None) -> int:
    return int((raw or {}).get("retryCount") or 0)


def op_to_status(op: OperationState, retry_count: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {
        "phase": op.phase,
        "revision": op.revision,
        "message": op.message[:MESSAGE_LIMIT],
        "batches": {"current": op.batch_current, "total": op.batch_total},
        "targets": {"succeeded": op.succeeded, "failed": op.failed, "pending": op.pending},
        "retryCount": retry_count,
    }
    if op.started_at:
        out["startedAt"] = format_time(op.started_at)
    out["finishedAt"] = format_time(op.finished_at) if op.finished_at else None
    return out
