"""Test hook: the operator dies at a chosen point of a Promotion, as SIGKILL would.

The chaos tests (tests/chaos/test_chaos_promotion.py) kill a real operator between a
promotion's side effects and its status writes, restart it, and check that the promotion
still converges with one write. Nothing else sets these variables; unset (the default),
`reached` costs two dictionary look-ups and does nothing.

    VMGITOPS_PROMOTION_CRASH_AT=POINT[@PROMOTION]
    VMGITOPS_PROMOTION_CRASH_FILE=/path   # the same, read at each point (empty: no crash),
                                          # so that a test arms a running operator

POINT is one of `POINTS`; with `@PROMOTION` only that Promotion (by name) dies there.
The variables are distinct from the sync hook's (VMGITOPS_CRASH_AT, see engine.sync) so
that neither hook ever reads the other's points.
"""

from __future__ import annotations

import os

from vmgitops.crashhook import armed_value, die

CRASH_ENV = "VMGITOPS_PROMOTION_CRASH_AT"
CRASH_FILE_ENV = "VMGITOPS_PROMOTION_CRASH_FILE"

#: Where a promotion can be made to die, in the order a promotion reaches them.
POINTS = {
    "decided": "the gates passed and Promoting was decided, nothing written yet",
    "promoting": "Promoting (with previousRevisions) written, before the write",
    "written": "the destinations patched or the commit pushed, before the status says so",
    "verifying": "a Verifying look decided, before its status write",
    "rollback": "a rollback decided and recorded, before the previous revisions are written",
    "restored": "the previous revisions written back, before the RolledBack status",
    "final": "the final phase decided, before its status write",
}


def armed_point(promotion: str) -> str | None:
    """The point at which a reconcile of `promotion` must die (None: nowhere)."""
    raw = armed_value(CRASH_ENV, CRASH_FILE_ENV)
    if not raw:
        return None
    point, at, only = raw.partition("@")
    if at and only != promotion:
        return None
    return point or None


def reached(point: str, promotion: str) -> None:
    """Dies here when the hook names `point` (for `promotion`); else returns at once."""
    if not (os.environ.get(CRASH_ENV) or os.environ.get(CRASH_FILE_ENV)):
        return
    if armed_point(promotion) != point:
        return
    die(f"vmgitops: promotion crash hook: {promotion} dying at {point}")
