"""Rules across entries of one manifest: one owner per path, references that resolve.

Returned as (location, why) pairs so that all problems are reported at once.
"""

from __future__ import annotations

from vmgitops.manifest import vmpaths
from vmgitops.manifest.model import Manifest

RELEASE = "release"

Problem = tuple[str, str]


def check_manifest(manifest: Manifest) -> list[Problem]:
    """Every cross-entry problem of `manifest`, in document order."""
    problems: list[Problem] = []
    problems += _unique_paths(manifest)
    problems += _unique_names(manifest)
    problems += _references(manifest)
    return problems


def _unique_paths(m: Manifest) -> list[Problem]:
    owner: dict[str, str] = {}
    problems: list[Problem] = []
    entries = [(f"files[{i}].path", f.path) for i, f in enumerate(m.files)]
    entries += [(f"directories[{i}].path", d.path) for i, d in enumerate(m.directories)]
    entries += [
        (f"services[{i}].unit", vmpaths.unit_path(s.name))
        for i, s in enumerate(m.services)
        if s.unit is not None
    ]
    for loc, path in entries:
        if path in owner:
            problems.append((loc, f"{path!r} is already declared by {owner[path]}"))
        else:
            owner[path] = loc
        if m.release and vmpaths.is_within(path, m.release.path):
            problems.append((loc, f"{path!r} is inside release.path, which the release owns"))
    files = {f.path for f in m.files}
    for loc, path in entries:
        parent = path.rsplit("/", 1)[0]
        while parent:
            if parent in files:
                problems.append((loc, f"{path!r} is below the file {parent!r}"))
            parent = parent.rsplit("/", 1)[0]
    return problems


def _unique_names(m: Manifest) -> list[Problem]:
    problems: list[Problem] = []
    groups: list[tuple[str, list[str]]] = [
        ("packages", [p.name for p in m.packages]),
        ("services", [s.name for s in m.services]),
        ("commands", [c.name for c in m.commands]),
        ("healthChecks", [h.name for h in m.health_checks]),
    ]
    for field, names in groups:
        seen: dict[str, int] = {}
        for i, name in enumerate(names):
            if name in seen:
                problems.append(
                    (f"{field}[{i}].name", f"{name!r} is already declared by {field}[{seen[name]}]")
                )
            else:
                seen[name] = i
    return problems


def _references(m: Manifest) -> list[Problem]:
    """onChange and restartOnChange name files of this manifest, or the release."""
    files = {f.path for f in m.files}
    problems: list[Problem] = []
    refs = [
        (f"services[{i}].restartOnChange[{j}]", ref)
        for i, s in enumerate(m.services)
        for j, ref in enumerate(s.restart_on_change)
    ]
    refs += [
        (f"commands[{i}].onChange[{j}]", ref)
        for i, c in enumerate(m.commands)
        for j, ref in enumerate(c.on_change)
    ]
    for loc, ref in refs:
        if ref == RELEASE:
            if m.release is None:
                problems.append((loc, "'release' is named but the manifest has no release"))
        elif ref not in files:
            problems.append((loc, f"{ref!r} is neither a path in files[] nor 'release'"))
    for i, s in enumerate(m.services):
        if s.template and s.unit is None:
            problems.append((f"services[{i}].template", "is true but the service has no unit"))
    return problems
