"""The scratchpad one plan computation shares between its phases (not public)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vmgitops.facts.observed import ObservedState
from vmgitops.manifest.desired import DesiredState
from vmgitops.plan.inventory import Inventory, ReleaseInventory
from vmgitops.plan.plan import PlanIssue


@dataclass
class Work:
    desired: DesiredState
    observed: ObservedState
    prune: bool
    old: Inventory = field(default_factory=Inventory)
    issues: list[PlanIssue] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    #: Files whose content this plan rewrites; units whose unit file it writes or removes.
    changed_paths: set[str] = field(default_factory=set)
    changed_units: set[str] = field(default_factory=set)
    release_switched: bool = False
    #: (release path, id) being uploaded: its digest is not trusted until the final write.
    uploading: tuple[str, str] | None = None
    final_files: set[str] = field(default_factory=set)
    final_directories: set[str] = field(default_factory=set)
    final_units: set[str] = field(default_factory=set)
    final_packages: set[str] = field(default_factory=set)
    final_releases: list[ReleaseInventory] = field(default_factory=list)

    def issue(self, reason: str, message: str, blocking: bool = True) -> None:
        self.issues.append(PlanIssue(reason, message, blocking))

    def final(self) -> Inventory:
        return Inventory(
            files=frozenset(self.final_files),
            directories=frozenset(self.final_directories),
            units=frozenset(self.final_units),
            packages=frozenset(self.final_packages),
            releases=tuple(sorted(self.final_releases, key=lambda r: r.path)),
        )
