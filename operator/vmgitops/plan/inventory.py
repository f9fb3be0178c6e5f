"""The per-app inventory kept on each VM: the only things prune may ever touch.

Stored as JSON in <state dir>/inventory.json. Packages are listed only when vmgitops
installed them, so a package that was on the VM before is never removed by a prune.
Releases are listed in deploy order (oldest first); `digest` None means "upload may
not have finished", so the content is not trusted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

VERSION = 1


class InventoryUnreadable(ValueError):
    """inventory.json exists but is not an inventory this version understands."""

    reason = "InventoryUnreadable"


@dataclass(frozen=True)
class ReleaseRecord:
    id: str
    digest: str | None = None


@dataclass(frozen=True)
class ReleaseInventory:
    path: str
    releases: tuple[ReleaseRecord, ...] = ()

    def digest_of(self, release_id: str) -> str | None:
        return next((r.digest for r in self.releases if r.id == release_id), None)


@dataclass(frozen=True)
class Inventory:
    files: frozenset[str] = frozenset()
    directories: frozenset[str] = frozenset()
    units: frozenset[str] = frozenset()
    packages: frozenset[str] = frozenset()
    releases: tuple[ReleaseInventory, ...] = field(default=())

    def release_at(self, path: str) -> ReleaseInventory | None:
        return next((r for r in self.releases if r.path == path), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "files": sorted(self.files),
            "directories": sorted(self.directories),
            "units": sorted(self.units),
            "packages": sorted(self.packages),
            "releases": [
                {"path": r.path, "releases": [{"id": x.id, "digest": x.digest} for x in r.releases]}
                for r in sorted(self.releases, key=lambda r: r.path)
            ],
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode()

    def union(self, other: Inventory) -> Inventory:
        """Everything in either; for a release path, self's records then other's new ones."""
        merged = {r.path: r for r in self.releases}
        for rel in other.releases:
            mine = merged.get(rel.path)
            if mine is None:
                merged[rel.path] = rel
                continue
            known = {r.id for r in mine.releases}
            extra = tuple(r for r in rel.releases if r.id not in known)
            merged[rel.path] = replace(mine, releases=mine.releases + extra)
        return Inventory(
            files=self.files | other.files,
            directories=self.directories | other.directories,
            units=self.units | other.units,
            packages=self.packages | other.packages,
            releases=tuple(merged[p] for p in sorted(merged)),
        )

    def covers(self, other: Inventory) -> bool:
        """True when every entry of `other` is already listed here (ignoring digests)."""
        mine = {(r.path, x.id) for r in self.releases for x in r.releases}
        theirs = {(r.path, x.id) for r in other.releases for x in r.releases}
        return (
            other.files <= self.files
            and other.directories <= self.directories
            and other.units <= self.units
            and other.packages <= self.packages
            and theirs <= mine
        )


def inventory_changes(old: Inventory, new: Inventory) -> str:
    """'+ file /etc/x' / '- package curl' lines: what the inventory gains and loses."""
    lines = []
    pairs = [
        ("file", old.files, new.files),
        ("directory", old.directories, new.directories),
        ("unit", old.units, new.units),
        ("package", old.packages, new.packages),
        (
            "release",
            {f"{r.path}/releases/{x.id}" for r in old.releases for x in r.releases},
            {f"{r.path}/releases/{x.id}" for r in new.releases for x in r.releases},
        ),
    ]
    for label, before, after in pairs:
        lines += [f"- {label} {x}\n" for x in sorted(before - after)]
        lines += [f"+ {label} {x}\n" for x in sorted(after - before)]
    return "".join(lines)


def parse_inventory(raw: bytes | None) -> Inventory:
    """inventory.json -> Inventory; None (no file yet) is the empty inventory."""
    if raw is None:
        return Inventory()
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise InventoryUnreadable(f"inventory version is not {VERSION}")
        return Inventory(
            files=frozenset(_strings(data, "files")),
            directories=frozenset(_strings(data, "directories")),
            units=frozenset(_strings(data, "units")),
            packages=frozenset(_strings(data, "packages")),
            releases=tuple(
                ReleaseInventory(
                    path=str(r["path"]),
                    releases=tuple(
                        ReleaseRecord(
                            str(x["id"]), None if x["digest"] is None else str(x["digest"])
                        )
                        for x in r["releases"]
                    ),
                )
                for r in data.get("releases", [])
            ),
        )
    except (ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, InventoryUnreadable):
            raise
        raise InventoryUnreadable(f"inventory.json is not valid: {type(exc).__name__}") from None


def _strings(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InventoryUnreadable(f"inventory.json: {key} is not a list of strings")
    return value
