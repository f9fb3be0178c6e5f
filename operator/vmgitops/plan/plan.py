"""A plan: ordered steps, issues that stop it, and entries left for a later prune."""

from __future__ import annotations

from dataclasses import dataclass

from vmgitops.plan.health import SyncStatus
from vmgitops.plan.steps import Step

COMMAND_OUTCOME_UNKNOWN = "CommandOutcomeUnknown"
PATH_CONFLICT = "PathConflict"
PACKAGE_MANAGER_UNSUPPORTED = "PackageManagerUnsupported"
PACKAGE_STATE_UNKNOWN = "PackageStateUnknown"
SYSTEMD_UNAVAILABLE = "SystemdUnavailable"
INVENTORY_UNREADABLE = "InventoryUnreadable"
OBSERVATION_INCOMPLETE = "ObservationIncomplete"


@dataclass(frozen=True)
class PlanIssue:
    """Something a human must look at; a blocking issue means: apply nothing."""

    reason: str
    message: str
    blocking: bool = True


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()
    issues: tuple[PlanIssue, ...] = ()
    #: What prune would remove, kept because prune is off ("file /etc/x", "package curl").
    orphans: tuple[str, ...] = ()

    @property
    def in_sync(self) -> bool:
        """An empty plan: nothing to do, nothing blocking, nothing left to prune."""
        return not self.steps and not self.issues and not self.orphans

    @property
    def blocked(self) -> bool:
        return any(i.blocking for i in self.issues)

    @property
    def sync_status(self) -> SyncStatus:
        return SyncStatus.SYNCED if self.in_sync else SyncStatus.OUT_OF_SYNC

    def describe(self, *, diffs: bool = False) -> str:
        """One line per step (and its diff, indented), then issues and orphans."""
        if self.in_sync:
            return "in sync: nothing to do\n"
        lines = []
        for i, step in enumerate(self.steps, 1):
            lines.append(f"{i}. {step.describe()}")
            if diffs and step.diff:
                lines += ["     " + line for line in step.diff.rstrip("\n").split("\n")]
        lines += [f"! {i.reason}: {i.message}" for i in self.issues]
        lines += [f"~ would prune {o} (prune is off)" for o in self.orphans]
        return "\n".join(lines) + "\n"
