"""The fence record an apply leaves on the VM: who applied last, and how it ended.

`<state dir>/markers/fence` holds one line, `v1 SERIAL GENERATION REVISION STATE`:

* SERIAL counts applies of this app on this VM. A plan is made from an observation that
  saw serial N; its apply runs only if the VM is still at N (compare-and-swap under the
  VM lock), so a plan made before someone else's apply is never applied on top of it.
* GENERATION is the VMApplication's metadata.generation: an apply from an older
  generation than the one recorded is refused (a stale controller cannot undo a newer
  spec).
* STATE is `applying` from the first change on, then `applied` or `failed`; a record
  left at `applying` is an apply that was interrupted.

The observe probe already reports every marker, so reading the fence costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

FENCE_MARKER = "fence"
APPLYING = "applying"
APPLIED = "applied"
FAILED = "failed"


@dataclass(frozen=True)
class Fence:
    """The recorded fence; `serial` 0 means "never applied by this version"."""

    serial: int = 0
    generation: int = 0
    revision: str = ""
    state: str = ""

    @property
    def deployed_revision(self) -> str | None:
        """The revision of the last apply that completed, if the last one did."""
        return self.revision if self.state == APPLIED and self.revision else None

    @property
    def interrupted(self) -> bool:
        return self.state == APPLYING


class FenceUnreadable(ValueError):
    """markers/fence exists but is not a fence record."""

    reason = "FenceUnreadable"


def parse_fence(markers: Mapping[str, bytes]) -> Fence:
    """The fence from observed markers; the zero Fence when there is none yet."""
    raw = markers.get(FENCE_MARKER)
    if raw is None:
        return Fence()
    parts = raw.decode("utf-8", "replace").split()
    if len(parts) != 5 or parts[0] != "v1" or not parts[1].isdigit() or not parts[2].isdigit():
        raise FenceUnreadable("markers/fence is not a fence record (v1 SERIAL GEN REV STATE)")
    return Fence(int(parts[1]), int(parts[2]), parts[3], parts[4])
