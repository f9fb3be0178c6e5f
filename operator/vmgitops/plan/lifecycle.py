"""The phases of a plan that follow time rather than files: release, commands, services.

Commands and restarts are level-triggered through markers on the VM (see `steps`):
a command runs when its `done.` marker does not hold its current trigger digest, so a
crash between writing a file and running the command that follows it still runs the
command next time, and applying the same revision twice runs nothing.
"""

from __future__ import annotations

from vmgitops.facts.observed import ReleaseState, UnitState
from vmgitops.manifest.desired import RELEASE
from vmgitops.plan.inventory import ReleaseInventory, ReleaseRecord
from vmgitops.plan.plan import COMMAND_OUTCOME_UNKNOWN, PATH_CONFLICT, SYSTEMD_UNAVAILABLE
from vmgitops.plan.steps import (
    DisableService,
    EnableService,
    PruneReleases,
    RestartService,
    RunCommand,
    StartService,
    Step,
    StopService,
    SwitchRelease,
    UploadRelease,
)
from vmgitops.plan.work import Work

PENDING = "pending."
DONE = "done."
RESTART = "restart."

ACTIVE = frozenset({"active", "activating", "reloading"})
ENABLED = frozenset({"enabled", "enabled-runtime", "static", "alias", "generated", "transient"})
DISABLE = frozenset({"enabled", "enabled-runtime"})


def _marker(w: Work, name: str) -> str | None:
    raw = w.observed.markers.get(name)
    return None if raw is None else raw.decode("utf-8", "replace").strip()


def release(w: Work) -> list[Step]:
    steps: list[Step] = []
    d = w.desired.release
    for rel in w.old.releases:
        if d is not None and rel.path == d.path:
            continue
        if w.prune:
            ids = tuple(r.id for r in rel.releases)
            steps.append(PruneReleases(rel.path, ids, remove_current=True))
        else:
            w.orphans.append(f"release {rel.path}")
            w.final_releases.append(rel)
    if d is None:
        return steps
    o = w.observed.release or ReleaseState(d.path)
    if o.current_kind == "other":
        w.issue(PATH_CONFLICT, f"{d.path}/current is not a symlink; remove it")
        old = w.old.release_at(d.path)
        if old is not None:
            w.final_releases.append(old)
        return steps
    inv = w.old.release_at(d.path) or ReleaseInventory(d.path)
    on_vm = set(o.releases)
    records = [r for r in inv.releases if r.id in on_vm]
    matching = [r.id for r in records if r.digest == d.digest]
    current = o.current_release
    restarts = tuple(s.name for s in w.desired.services if RELEASE in s.restart_on_change)
    if current is not None and current in matching:
        target = current
    elif d.revision in matching:
        target = d.revision
    elif matching:
        target = matching[-1]
    else:
        target = d.revision
        w.uploading = (d.path, target)
        # Replacing the very release `current` shows changes what services run, like a
        # switch does.
        under_current = target == current
        w.release_switched = under_current
        steps.append(
            UploadRelease(
                d.path,
                target,
                d.digest,
                d.files,
                d.directories,
                replace=target in on_vm,
                restarts=restarts if under_current else (),
            )
        )
    if current != target:
        w.release_switched = True
        steps.append(
            SwitchRelease(d.path, target, previous=current or o.current, restarts=restarts)
        )
    records = [r for r in records if r.id != target] + [ReleaseRecord(target, d.digest)]
    excess = records[: -d.keep]
    if excess:
        steps.append(PruneReleases(d.path, tuple(r.id for r in excess)))
    w.final_releases.append(ReleaseInventory(d.path, tuple(records[-d.keep :])))
    return steps


def commands(w: Work) -> list[Step]:
    steps: list[Step] = []
    names = {c.name for c in w.desired.commands}
    for c in w.desired.commands:
        pending = _marker(w, PENDING + c.name)
        if pending is not None and not c.idempotent:
            w.issue(COMMAND_OUTCOME_UNKNOWN, _unknown(c.name, pending))
            continue
        done = _marker(w, DONE + c.name)
        reasons = []
        if pending is not None:
            reasons.append("an earlier run was interrupted")
        if c.on_change and done != c.trigger_digest:
            reasons.append(f"{', '.join(c.on_change)} changed" if done else "never ran")
        if c.creates and not w.observed.exists.get(c.creates, False):
            reasons.append(f"{c.creates} is missing")
        if not c.on_change and not c.creates and done != c.trigger_digest:
            reasons.append("its definition changed" if done else "never ran")
        if reasons:
            steps.append(
                RunCommand(
                    c.name,
                    c.argv,
                    c.timeout_seconds,
                    c.idempotent,
                    c.trigger_digest,
                    "; ".join(reasons),
                )
            )
    for marker in sorted(w.observed.markers):
        name = marker[len(PENDING) :]
        if marker.startswith(PENDING) and name not in names:
            w.issue(COMMAND_OUTCOME_UNKNOWN, _unknown(name, _marker(w, marker) or ""))
    return steps


def _unknown(name: str, pending: str) -> str:
    started = f" ({pending})" if pending else ""
    return (
        f"command {name!r} was started{started} but its outcome is unknown (the apply "
        "stopped while it ran); check the VM, then say what happened: `vmgitops resolve "
        f"APP --target TARGET --command {name} --ran` (it did its work: record it, do not "
        "run it again) or `--rerun` (run it at the next apply), which set the target's "
        "vmgitops.io/resolve-command annotation"
    )


def services(w: Work) -> list[Step]:
    toggles: list[Step] = []
    runs: list[Step] = []
    for s in w.desired.services:
        u = w.observed.units.get(s.name) or UnitState(s.name)
        if u.active == "unknown" and (s.state is not None or s.enabled is not None):
            w.issue(SYSTEMD_UNAVAILABLE, f"cannot ask systemd about {s.name}")
            continue
        if s.enabled is True and u.enabled not in ENABLED:
            toggles.append(EnableService(s.name))
        elif s.enabled is False and u.enabled in DISABLE:
            toggles.append(DisableService(s.name))
        active = u.active in ACTIVE
        if s.state == "running" and not active:
            runs.append(StartService(s.name, s.restart_digest))
        elif s.state == "stopped":
            if active:
                runs.append(StopService(s.name))
        elif active:
            reasons = _restart_reasons(w, s.name, s.restart_on_change, s.restart_digest)
            if reasons:
                runs.append(RestartService(s.name, s.restart_digest, "; ".join(reasons)))
    return toggles + runs


def _restart_reasons(w: Work, name: str, refs: tuple[str, ...], digest: str | None) -> list[str]:
    reasons = []
    if name in w.changed_units:
        reasons.append("unit changed")
    changed = [r for r in refs if r in w.changed_paths]
    if changed:
        reasons.append(f"{', '.join(changed)} changed")
    if RELEASE in refs and w.release_switched:
        reasons.append("release switched")
    if not reasons and digest is not None and _marker(w, RESTART + name) is None:
        # The executor deletes this marker before writing an input of the unit: a
        # missing marker is a write whose restart did not happen (or a first apply).
        reasons.append("no restart recorded since its inputs were written")
    return reasons
