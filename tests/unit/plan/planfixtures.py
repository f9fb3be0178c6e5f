"""Builders for plan tests: a desired state from vmapp.yaml text, and the observation
of a VM on which that desired state has been fully applied."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from vmgitops.facts.observed import ObservedState, PackageState, PathState, ReleaseState, UnitState
from vmgitops.manifest.desired import DesiredState, ReleaseFile, release_digest
from vmgitops.manifest.loader import LoadedApp
from vmgitops.manifest.parse import parse_manifest
from vmgitops.manifest.render import TargetInfo, render
from vmgitops.plan.inventory import Inventory, ReleaseInventory, ReleaseRecord

TARGET = TargetInfo("vm1", "127.0.3.1", {"env": "staging"})
DIST = (ReleaseFile("bin/app", 0o755, b"#!/bin/sh\necho v1\n"),)


def desired(
    text: str,
    *,
    revision: str = "rev1",
    params: dict[str, Any] | None = None,
    dist: tuple[ReleaseFile, ...] = DIST,
) -> DesiredState:
    manifest = parse_manifest(text)
    has_release = manifest.release is not None
    app = LoadedApp(
        folder=Path("/nonexistent"),
        manifest=manifest,
        sources={},
        release_files=dist if has_release else (),
        release_directories=("bin",) if has_release else (),
        release_digest=release_digest(dist, ("bin",)) if has_release else None,
    )
    return render(app, params or {}, TARGET, {"os": {"id": "debian"}}, revision)


def _file(path: str, sha: str, mode: int, owner: str | None, group: str | None) -> PathState:
    return PathState(
        path, "file", mode, 0, 0, owner or "root", group or "root", 10, sha, content=None
    )


def synced(d: DesiredState, *, manager: str = "apt") -> ObservedState:
    """What observing a VM right after a complete, successful apply of `d` reports."""
    paths: dict[str, PathState] = {}
    for f in d.files:
        paths[f.path] = _file(f.path, f.sha256, f.mode, f.owner, f.group)
    for dr in d.directories:
        paths[dr.path] = PathState(
            dr.path, "directory", dr.mode, 0, 0, dr.owner or "root", dr.group or "root", 4096
        )
    units = {}
    markers: dict[str, bytes] = {}
    for s in d.services:
        if s.unit is not None and s.unit_sha256 is not None:
            paths[s.unit_path] = _file(s.unit_path, s.unit_sha256, 0o644, None, None)
        enabled = {True: "enabled", False: "disabled", None: "disabled"}[s.enabled]
        active = "active" if s.state == "running" else "inactive"
        units[s.name] = UnitState(s.name, enabled, active)
        if s.state == "running" and s.restart_digest:
            markers[f"restart.{s.name}"] = s.restart_digest.encode() + b"\n"
    for c in d.commands:
        markers[f"done.{c.name}"] = c.trigger_digest.encode()
    packages = {
        p.name: PackageState(p.name, p.present, "1.0" if p.present else "") for p in d.packages
    }
    release = None
    releases: tuple[ReleaseInventory, ...] = ()
    if d.release is not None:
        r = d.release
        release = ReleaseState(r.path, f"releases/{r.revision}", "link", (r.revision,))
        releases = (ReleaseInventory(r.path, (ReleaseRecord(r.revision, r.digest),)),)
    inventory = Inventory(
        files=frozenset(f.path for f in d.files),
        directories=frozenset(x.path for x in d.directories),
        units=frozenset(s.name for s in d.services if s.unit is not None),
        packages=frozenset(p.name for p in d.packages if p.present),
        releases=releases,
    )
    return ObservedState(
        paths=paths,
        units=units,
        packages=packages,
        release=release,
        exists={c.creates: True for c in d.commands if c.creates},
        markers=markers,
        inventory=inventory.to_bytes(),
        package_manager=manager,
    )


def with_path(o: ObservedState, path: str, **changes: Any) -> ObservedState:
    """`o` with the observation of `path` changed (or made missing with kind='missing')."""
    paths = dict(o.paths)
    base = paths.get(path) or PathState(path, "missing")
    paths[path] = dataclasses.replace(base, **changes)
    return dataclasses.replace(o, paths=paths)


def with_unit(o: ObservedState, name: str, **changes: Any) -> ObservedState:
    units = dict(o.units)
    units[name] = dataclasses.replace(units.get(name) or UnitState(name), **changes)
    return dataclasses.replace(o, units=units)


def with_marker(o: ObservedState, name: str, content: bytes | None) -> ObservedState:
    markers = dict(o.markers)
    if content is None:
        markers.pop(name, None)
    else:
        markers[name] = content
    return dataclasses.replace(o, markers=markers)
