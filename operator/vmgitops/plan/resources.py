"""The live inventory of one VM: every managed resource with its own sync state.

Derived from a plan, so it says exactly what a sync would do to each resource; this
is what a target's status and `vmgitops diff` list.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmgitops.manifest.desired import DesiredState
from vmgitops.plan.health import SyncStatus
from vmgitops.plan.plan import Plan
from vmgitops.plan.steps import (
    InstallPackage,
    PruneDirectory,
    PruneFile,
    PruneReleases,
    PruneUnit,
    Step,
    SwitchRelease,
    UploadRelease,
    WriteInventory,
)


@dataclass(frozen=True)
class ResourceStatus:
    kind: str  # File, Directory, Package, Service, Release, Command
    name: str
    sync: SyncStatus
    message: str = ""


def _keys(step: Step) -> list[tuple[str, str]]:
    """The (kind, name) resources a step acts on."""
    if isinstance(step, WriteInventory):
        return []
    if isinstance(step, InstallPackage):  # and RemovePackage
        return [("Package", n) for n in step.names]
    if isinstance(step, UploadRelease | SwitchRelease | PruneReleases):
        return [("Release", step.path)]
    if isinstance(step, PruneDirectory):
        return [("Directory", step.path)]
    if isinstance(step, PruneFile):
        return [("File", step.path)]
    if isinstance(step, PruneUnit):
        return [("Service", step.name)]
    kind = {
        "EnsureDirectory": "Directory",
        "WriteFile": "File",
        "RunCommand": "Command",
    }.get(str(step.kind), "Service")
    return [(kind, step.subject)]


def resource_statuses(desired: DesiredState, plan: Plan) -> list[ResourceStatus]:
    """One entry per resource in Git (and per orphan): Synced, or OutOfSync and why."""
    pending: dict[tuple[str, str], list[str]] = {}
    for step in plan.steps:
        if str(step.kind) == "DaemonReload":
            continue
        for key in _keys(step):
            pending.setdefault(key, []).append(step.describe())
    keys = [("File", f.path) for f in desired.files]
    keys += [("Directory", d.path) for d in desired.directories]
    keys += [("Package", p.name) for p in desired.packages]
    keys += [("Service", s.name) for s in desired.services]
    keys += [("Release", desired.release.path)] if desired.release else []
    keys += [("Command", c.name) for c in desired.commands]
    keys += [k for k in pending if k not in keys]
    out = []
    for kind, name in keys:
        todo = pending.get((kind, name))
        sync = SyncStatus.OUT_OF_SYNC if todo else SyncStatus.SYNCED
        out.append(ResourceStatus(kind, name, sync, "; ".join(todo or [])))
    for orphan in plan.orphans:
        kind, _, name = orphan.partition(" ")
        out.append(
            ResourceStatus(kind.capitalize(), name, SyncStatus.OUT_OF_SYNC, "requires pruning")
        )
    return out
