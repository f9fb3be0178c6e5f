"""Desired versus observed -> Plan. Pure: no I/O, same inputs give the same plan.

"A desired of nil means prune; an observed of nil means create." Phases run in this
order: intent inventory, packages (so that users and directories that packages create
exist before files are chowned into them), directories, files, unit files with their
prunes and one daemon-reload, release, commands, services, prunes, final inventory.
"""

from __future__ import annotations

from dataclasses import replace

from vmgitops.facts.observed import ObservedState, PathState
from vmgitops.manifest.desired import DesiredState
from vmgitops.manifest.vmpaths import format_mode, unit_path
from vmgitops.plan import lifecycle
from vmgitops.plan.diff import content_diff, field_diff
from vmgitops.plan.inventory import (
    Inventory,
    InventoryUnreadable,
    ReleaseInventory,
    ReleaseRecord,
    inventory_changes,
    parse_inventory,
)
from vmgitops.plan.plan import (
    INVENTORY_UNREADABLE,
    OBSERVATION_INCOMPLETE,
    PACKAGE_MANAGER_UNSUPPORTED,
    PACKAGE_STATE_UNKNOWN,
    PATH_CONFLICT,
    Plan,
)
from vmgitops.plan.steps import (
    DaemonReload,
    EnsureDirectory,
    InstallPackage,
    PruneDirectory,
    PruneFile,
    PruneUnit,
    RemovePackage,
    Step,
    WriteFile,
    WriteInventory,
    WriteUnit,
)
from vmgitops.plan.work import Work

MANAGERS = ("apt", "dnf", "apk")


def compute_plan(desired: DesiredState, observed: ObservedState, *, prune: bool) -> Plan:
    """The ordered steps that make the VM match `desired`; empty when it already does."""
    w = Work(desired, observed, prune)
    try:
        w.old = parse_inventory(observed.inventory)
    except InventoryUnreadable as exc:
        # Without the inventory, prune and release history cannot be trusted: stop here.
        w.issue(INVENTORY_UNREADABLE, f"{exc}; fix or remove it, then sync again")
        return Plan(issues=tuple(w.issues))
    for error in observed.errors:
        w.issue(OBSERVATION_INCOMPLETE, f"the VM could not report everything: {error}")
    body: list[Step] = []
    body += _packages(w)
    body += _directories(w)
    body += _files(w)
    body += _units(w)
    body += lifecycle.release(w)
    body += lifecycle.commands(w)
    body += lifecycle.services(w)
    body += _prune_paths(w)
    final = w.final()
    steps: list[Step] = []
    if body and not w.old.covers(final):
        intent = w.old.union(_untrusted_upload(w, final))
        steps.append(WriteInventory(intent.to_bytes(), final=False))
    steps += body
    if final.to_json() != w.old.to_json():
        changes = inventory_changes(w.old, final)
        steps.append(WriteInventory(final.to_bytes(), final=True, changes=changes))
    return Plan(tuple(steps), tuple(w.issues), tuple(w.orphans))


def _untrusted_upload(w: Work, final: Inventory) -> Inventory:
    """`final`, except that the release being uploaded is not yet known to be complete."""
    if w.uploading is None:
        return final
    path, rid = w.uploading

    def distrust(rel: ReleaseInventory) -> ReleaseInventory:
        if rel.path != path:
            return rel
        records = tuple(
            ReleaseRecord(x.id, None if x.id == rid else x.digest) for x in rel.releases
        )
        return replace(rel, releases=records)

    return replace(final, releases=tuple(distrust(r) for r in final.releases))


def owner_matches(want: str | None, name: str, number: int | None) -> bool:
    if want is None:
        return True
    return number == int(want) if want.isdigit() else name == want


def _meta_changes(
    o: PathState, mode: int, owner: str | None, group: str | None
) -> list[tuple[str, str, str]]:
    if not o.exists:
        return []
    changes = []
    if o.mode != mode:
        before = "?" if o.mode is None else format_mode(o.mode)
        changes.append(("mode", before, format_mode(mode)))
    if not owner_matches(owner, o.user, o.uid):
        changes.append(("owner", o.user or str(o.uid), str(owner)))
    if not owner_matches(group, o.group, o.gid):
        changes.append(("group", o.group or str(o.gid), str(group)))
    return changes


def _conflict(w: Work, o: PathState, wanted: str) -> bool:
    bad = {"file": ("directory", "other"), "directory": ("file", "symlink", "other")}[wanted]
    if o.kind in bad:
        w.issue(PATH_CONFLICT, f"{o.path} is a {o.kind} on the VM, not a {wanted}; remove it")
        return True
    return False


def _packages(w: Work) -> list[Step]:
    d, o = w.desired, w.observed
    named = {p.name for p in d.packages}
    present = {p.name for p in d.packages if p.present}
    dropped = w.old.packages - named
    if (d.packages or (dropped and w.prune)) and o.package_manager not in MANAGERS:
        w.issue(PACKAGE_MANAGER_UNSUPPORTED, f"no apt, dnf or apk on the VM ({o.package_manager})")
        w.final_packages = set(w.old.packages)
        return []
    install, remove = [], []
    for p in d.packages:
        state = o.packages.get(p.name)
        if state is None or state.installed is None:
            w.issue(PACKAGE_STATE_UNKNOWN, f"could not query package {p.name}")
        elif p.present and not state.installed:
            install.append(p.name)
        elif not p.present and state.installed:
            remove.append(p.name)
    w.final_packages = (set(w.old.packages) & present) | set(install)
    if w.prune:
        remove += sorted(dropped)
    else:
        w.orphans += [f"package {n}" for n in sorted(dropped)]
        w.final_packages |= dropped
    steps: list[Step] = []
    if install:
        steps.append(InstallPackage(tuple(sorted(install)), o.package_manager))
    if remove:
        steps.append(RemovePackage(tuple(sorted(remove)), o.package_manager))
    return steps


def _directories(w: Work) -> list[Step]:
    steps: list[Step] = []
    for d in sorted(w.desired.directories, key=lambda d: d.path):
        w.final_directories.add(d.path)
        o = w.observed.path(d.path)
        if _conflict(w, o, "directory"):
            continue
        changes = _meta_changes(o, d.mode, d.owner, d.group)
        if not o.exists or changes:
            steps.append(
                EnsureDirectory(d.path, d.mode, d.owner, d.group, not o.exists, field_diff(changes))
            )
    return steps


def _files(w: Work) -> list[Step]:
    restarts: dict[str, list[str]] = {}
    for s in w.desired.services:
        for ref in s.restart_on_change:
            restarts.setdefault(ref, []).append(s.name)
    steps: list[Step] = []
    for f in sorted(w.desired.files, key=lambda f: f.path):
        w.final_files.add(f.path)
        o = w.observed.path(f.path)
        if _conflict(w, o, "file"):
            continue
        content_changed = o.kind != "file" or o.sha256 != f.sha256
        changes = _meta_changes(o, f.mode, f.owner, f.group)
        if not content_changed and not changes:
            continue
        text = ""
        if content_changed:
            w.changed_paths.add(f.path)
            text = content_diff(
                f.path,
                o.content,
                f.content,
                old_exists=o.kind == "file",
                old_sha256=o.sha256,
                sensitive=f.sensitive,
            )
            if o.kind == "symlink":
                text = "replaces a symlink\n" + text
        steps.append(
            WriteFile(
                path=f.path,
                content=f.content,
                sha256=f.sha256,
                mode=f.mode,
                owner=f.owner,
                group=f.group,
                sensitive=f.sensitive,
                content_changed=content_changed,
                restarts=tuple(restarts.get(f.path, ())) if content_changed else (),
                changes=text + field_diff(changes),
            )
        )
    return steps


def _units(w: Work) -> list[Step]:
    steps: list[Step] = []
    managed = {s.name for s in w.desired.services if s.unit is not None}
    for s in w.desired.services:
        if s.unit is None:
            continue
        w.final_units.add(s.name)
        o = w.observed.path(s.unit_path)
        if _conflict(w, o, "file"):
            continue
        if o.kind != "file" or o.sha256 != s.unit_sha256:
            w.changed_units.add(s.name)
            text = content_diff(s.unit_path, o.content, s.unit, old_exists=o.kind == "file")
            steps.append(WriteUnit(s.name, s.unit_path, s.unit, (s.name,), text))
    declared = {s.name for s in w.desired.services}
    for name in sorted(w.old.units - managed):
        if w.prune:
            w.changed_units.add(name)
            steps.append(PruneUnit(name, unit_path(name), stop=name not in declared))
        else:
            w.orphans.append(f"unit {name}")
            w.final_units.add(name)
    if w.changed_units:
        steps.append(DaemonReload())
    return steps


def _prune_paths(w: Work) -> list[Step]:
    steps: list[Step] = []
    stale_files = sorted(w.old.files - w.final_files)
    stale_dirs = sorted(w.old.directories - w.final_directories, reverse=True)
    if w.prune:
        steps += [PruneFile(p) for p in stale_files]
        steps += [PruneDirectory(p) for p in stale_dirs]
    else:
        w.orphans += [f"file {p}" for p in stale_files]
        w.orphans += [f"directory {p}" for p in stale_dirs]
        w.final_files |= set(stale_files)
        w.final_directories |= set(stale_dirs)
    return steps
