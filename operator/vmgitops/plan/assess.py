"""The health of one application on one VM, from what was observed and checked. Pure.

Sync says "does the VM match Git"; health says "does what runs there work". A target's
health is the worst of: its services (running ones must be active), its release (a
`current` link must exist) and its health checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vmgitops.facts.health import CheckResult
from vmgitops.facts.observed import ObservedState
from vmgitops.manifest.desired import DesiredState
from vmgitops.plan.health import Health, is_worse

_PROGRESSING = frozenset({"activating", "reloading", "deactivating"})


@dataclass(frozen=True)
class Assessment:
    health: Health
    message: str = ""


def assess_health(
    desired: DesiredState, observed: ObservedState, checks: Sequence[CheckResult] = ()
) -> Assessment:
    """The worst finding wins; its message says which service or check, and why."""
    found: list[Assessment] = []
    for s in desired.services:
        if s.state != "running":
            continue
        unit = observed.units.get(s.name)
        active = unit.active if unit else "unknown"
        if active in _PROGRESSING:
            found.append(Assessment(Health.PROGRESSING, f"{s.name} is {active}"))
        elif active == "unknown":
            found.append(Assessment(Health.UNKNOWN, f"{s.name}: state unknown"))
        elif active != "active":
            found.append(Assessment(Health.DEGRADED, f"{s.name} is {active}"))
    release = desired.release
    if release is not None:
        seen = observed.release
        if seen is None or seen.current_release is None:
            found.append(Assessment(Health.MISSING, f"{release.path}/current is missing"))
    for c in checks:
        if c.ok is None:
            found.append(Assessment(Health.UNKNOWN, f"check {c.name}: {c.message}"))
        elif not c.ok:
            found.append(Assessment(Health.DEGRADED, f"check {c.name}: {c.message}"))
    result = Assessment(Health.HEALTHY)
    for a in found:
        if is_worse(a.health, result.health):
            result = a
    return result
