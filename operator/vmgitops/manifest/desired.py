"""The desired state of one VM at one revision: concrete bytes, digests, no templates.

This is what the planner compares with what was observed. Everything is frozen and
derived from (app folder, params, target, facts, revision) only, so two renders of the
same inputs are equal, and digests are stable across machines.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from vmgitops.manifest.vmpaths import unit_path

RELEASE = "release"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of(value: Any) -> str:
    """A stable sha256 of a JSON-able value (sorted keys, no whitespace)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return sha256_hex(text.encode())


@dataclass(frozen=True)
class DesiredFile:
    path: str
    content: bytes = field(repr=False)
    sha256: str = field(repr=False)
    mode: int = 0o644
    owner: str | None = None
    group: str | None = None
    sensitive: bool = False


@dataclass(frozen=True)
class DesiredDirectory:
    path: str
    mode: int
    owner: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class DesiredPackage:
    name: str
    present: bool = True


@dataclass(frozen=True)
class DesiredService:
    """A unit; `restart_digest` summarises what a restart must follow (unit and files)."""

    name: str
    unit: bytes | None = field(default=None, repr=False)
    enabled: bool | None = None
    state: Literal["running", "stopped"] | None = None
    restart_on_change: tuple[str, ...] = ()
    restart_digest: str | None = None

    @property
    def unit_path(self) -> str:
        return unit_path(self.name)

    @property
    def unit_sha256(self) -> str | None:
        return None if self.unit is None else sha256_hex(self.unit)


@dataclass(frozen=True)
class ReleaseFile:
    path: str
    mode: int
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class DesiredRelease:
    """`path/releases/<revision>/` holds `files`; `digest` identifies the content."""

    path: str
    revision: str
    keep: int
    files: tuple[ReleaseFile, ...] = field(repr=False)
    directories: tuple[str, ...] = field(repr=False)
    digest: str = ""


@dataclass(frozen=True)
class DesiredCommand:
    """`trigger_digest` changes exactly when the command must run again (onChange)."""

    name: str
    argv: tuple[str, ...]
    on_change: tuple[str, ...] = ()
    creates: str | None = None
    idempotent: bool = False
    timeout_seconds: int = 300
    trigger_digest: str = ""


@dataclass(frozen=True)
class HealthCheck:
    name: str
    kind: Literal["command", "http", "tcp"]
    timeout_seconds: int = 5
    command: tuple[str, ...] = ()
    url: str = ""
    expect_status: int = 200
    host: str = ""
    port: int = 0


@dataclass(frozen=True)
class DesiredState:
    revision: str
    files: tuple[DesiredFile, ...] = ()
    directories: tuple[DesiredDirectory, ...] = ()
    packages: tuple[DesiredPackage, ...] = ()
    services: tuple[DesiredService, ...] = ()
    release: DesiredRelease | None = None
    commands: tuple[DesiredCommand, ...] = ()
    health_checks: tuple[HealthCheck, ...] = ()

    def file(self, path: str) -> DesiredFile | None:
        return next((f for f in self.files if f.path == path), None)


def release_digest(files: tuple[ReleaseFile, ...], directories: tuple[str, ...]) -> str:
    """Content identity of a release tree: paths, modes and content hashes."""
    return digest_of(
        {
            "files": [[f.path, f.mode, sha256_hex(f.content)] for f in files],
            "directories": list(directories),
        }
    )


def input_digest(
    base: Any, refs: tuple[str, ...], files: tuple[DesiredFile, ...], release: DesiredRelease | None
) -> str:
    """Digest of `base` plus the desired content of each ref (a file path or 'release')."""
    by_path = {f.path: f.sha256 for f in files}
    inputs = [
        [ref, release.digest if ref == RELEASE and release else by_path.get(ref, "")]
        for ref in refs
    ]
    return digest_of({"base": base, "inputs": inputs})
