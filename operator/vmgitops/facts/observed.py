"""What one observation of a VM found, for the planner: plain frozen values, no I/O.

Everything is keyed the way the desired state is (path, unit name, package name), so
"a live of nil means create, a desired of nil means prune" is a dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

PathKind = Literal["file", "directory", "symlink", "other", "missing"]


@dataclass(frozen=True)
class PathState:
    """A path on the VM; `content` is present only when asked for and small enough."""

    path: str
    kind: PathKind
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    user: str = ""
    group: str = ""
    size: int | None = None
    sha256: str = ""
    content: bytes | None = field(default=None, repr=False)

    @property
    def exists(self) -> bool:
        return self.kind != "missing"


@dataclass(frozen=True)
class UnitState:
    """`systemctl is-enabled` / `is-active` words, or 'unknown' without systemd."""

    name: str
    enabled: str = "unknown"
    active: str = "unknown"


@dataclass(frozen=True)
class PackageState:
    name: str
    installed: bool | None  # None: the package manager could not be asked
    version: str = ""


@dataclass(frozen=True)
class ReleaseState:
    """`current` (a symlink's raw target, or None) and the entries of `releases/`."""

    path: str
    current: str | None = None
    current_kind: Literal["link", "missing", "other"] = "missing"
    releases: tuple[str, ...] = ()

    @property
    def current_release(self) -> str | None:
        """The release name `current` points at, if it points into releases/."""
        if self.current is None:
            return None
        target = self.current.rstrip("/")
        for prefix in ("releases/", f"{self.path}/releases/"):
            if target.startswith(prefix) and "/" not in target[len(prefix) :]:
                return target[len(prefix) :]
        return None


@dataclass(frozen=True)
class ObservedState:
    paths: Mapping[str, PathState] = field(default_factory=dict)
    units: Mapping[str, UnitState] = field(default_factory=dict)
    packages: Mapping[str, PackageState] = field(default_factory=dict)
    release: ReleaseState | None = None
    exists: Mapping[str, bool] = field(default_factory=dict)
    markers: Mapping[str, bytes] = field(default_factory=dict)
    inventory: bytes | None = None
    errors: tuple[str, ...] = ()
    package_manager: str = "unknown"

    def path(self, path: str) -> PathState:
        return self.paths.get(path) or PathState(path, "missing")
