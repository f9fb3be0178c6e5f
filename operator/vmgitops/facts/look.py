"""Observing an app on a VM AND running its health checks in ONE command.

A drift check needs both answers, and so does a sync that may find nothing to do. Two
commands side by side cost the same round trip but twice the work on the VM (sshd opens
a session and starts a shell for each), which is most of what a drift check costs a
fleet; one command halves it. The script is `observe.OBSERVE_BODY` then
`health.HEALTH_BODY`: what to observe arrives on stdin (the observe request), the checks
as positional parameters, and the answer is one record stream that both parsers read
(`parse_observation` skips the `check` records, `parse_health` reads only those).

The checks run after the observation, so the answer takes as long as both: a check that
hangs until its timeout delays what follows by as long (before, an apply could start
while it ran). Checks are meant to answer in well under their timeout; one that does
not is what makes the target Degraded anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

from vmgitops.facts.health import HEALTH_BODY, health_items
from vmgitops.facts.observe import OBSERVE_BODY
from vmgitops.facts.records import ITEM_READER, PRELUDE
from vmgitops.manifest.desired import HealthCheck

LOOK_SCRIPT = PRELUDE + ITEM_READER + OBSERVE_BODY + HEALTH_BODY + "r end\n"


def look_argv(checks: Sequence[HealthCheck]) -> list[str]:
    """`env LC_ALL=C sh -c LOOK_SCRIPT vmgitops-look CHECK-ITEMS...`; stdin: the request."""
    return ["env", "LC_ALL=C", "sh", "-c", LOOK_SCRIPT, "vmgitops-look", *health_items(checks)]
