"""The steps of a plan: small frozen values that say what to do and show why.

Each step carries everything the executor needs (no second look at the manifest) and
a human `diff`. Content fields are excluded from repr, so logging a plan never prints
a file; a sensitive file's diff is only "(sensitive content hidden)".

Marker contract with the executor (files under <state dir>/markers/):
  pending.<command>  written before a non-idempotent RunCommand, removed after it ends;
  done.<command>     holds the RunCommand's `trigger_digest` after a success;
  restart.<unit>     holds `marker_digest` after a successful Start/RestartService, and
                     is removed before any WriteFile/WriteUnit/UploadRelease/
                     SwitchRelease whose `restarts` names the unit (so a crash between
                     the change and the restart is seen).

Other executor duties the steps assume: a WriteFile creates missing parent directories
(0755, root); a WriteFile with `content_changed` False only fixes mode/owner/group (the
inode stays); UploadRelease lands complete or not at all (upload beside, then rename);
PruneDirectory and PruneReleases leave non-empty or unlisted directories alone; a plan
with a blocking issue is not applied at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from vmgitops.manifest.desired import ReleaseFile
from vmgitops.manifest.vmpaths import format_mode


class StepKind(StrEnum):
    """Every kind of step, in the order a plan runs them (WriteInventory: first and last)."""

    WRITE_INVENTORY = "WriteInventory"
    INSTALL_PACKAGE = "InstallPackage"
    REMOVE_PACKAGE = "RemovePackage"
    ENSURE_DIRECTORY = "EnsureDirectory"
    WRITE_FILE = "WriteFile"
    WRITE_UNIT = "WriteUnit"
    PRUNE_UNIT = "PruneUnit"
    DAEMON_RELOAD = "DaemonReload"
    UPLOAD_RELEASE = "UploadRelease"
    SWITCH_RELEASE = "SwitchRelease"
    PRUNE_RELEASES = "PruneReleases"
    RUN_COMMAND = "RunCommand"
    ENABLE_SERVICE = "EnableService"
    DISABLE_SERVICE = "DisableService"
    START_SERVICE = "StartService"
    STOP_SERVICE = "StopService"
    RESTART_SERVICE = "RestartService"
    PRUNE_FILE = "PruneFile"
    PRUNE_DIRECTORY = "PruneDirectory"


@dataclass(frozen=True)
class Step:
    kind: ClassVar[StepKind]

    @property
    def subject(self) -> str:
        """What the step acts on (a path, unit or package), for per-step outcomes."""
        return ""

    def describe(self) -> str:
        return f"{self.kind} {self.subject}".strip()

    @property
    def diff(self) -> str:
        return ""


@dataclass(frozen=True)
class WriteInventory(Step):
    """Record what this app manages; `final` False is the intent written before changes."""

    kind = StepKind.WRITE_INVENTORY
    content: bytes = field(repr=False)
    final: bool = True
    changes: str = ""

    def describe(self) -> str:
        return "record the inventory" if self.final else "record the inventory (intent)"

    @property
    def diff(self) -> str:
        return self.changes


@dataclass(frozen=True)
class InstallPackage(Step):
    kind = StepKind.INSTALL_PACKAGE
    names: tuple[str, ...]
    manager: str

    @property
    def subject(self) -> str:
        return " ".join(self.names)

    def describe(self) -> str:
        return f"install {', '.join(self.names)} ({self.manager})"


@dataclass(frozen=True)
class RemovePackage(InstallPackage):
    kind = StepKind.REMOVE_PACKAGE

    def describe(self) -> str:
        return f"remove {', '.join(self.names)} ({self.manager})"


@dataclass(frozen=True)
class EnsureDirectory(Step):
    kind = StepKind.ENSURE_DIRECTORY
    path: str
    mode: int
    owner: str | None = None
    group: str | None = None
    create: bool = True
    changes: str = ""

    @property
    def subject(self) -> str:
        return self.path

    def describe(self) -> str:
        verb = "create directory" if self.create else "fix directory"
        return f"{verb} {self.path} ({format_mode(self.mode)})"

    @property
    def diff(self) -> str:
        return self.changes


@dataclass(frozen=True)
class WriteFile(Step):
    """Write atomically; when `content_changed` is False only mode/owner/group differ."""

    kind = StepKind.WRITE_FILE
    path: str
    content: bytes = field(repr=False)
    sha256: str = field(repr=False)
    mode: int = 0o644
    owner: str | None = None
    group: str | None = None
    sensitive: bool = False
    content_changed: bool = True
    restarts: tuple[str, ...] = ()
    changes: str = field(default="", repr=False)

    @property
    def subject(self) -> str:
        return self.path

    def describe(self) -> str:
        what = "write" if self.content_changed else "fix mode/owner of"
        return f"{what} {self.path} ({format_mode(self.mode)})"

    @property
    def diff(self) -> str:
        return self.changes


@dataclass(frozen=True)
class WriteUnit(Step):
    kind = StepKind.WRITE_UNIT
    name: str
    path: str
    content: bytes = field(repr=False)
    restarts: tuple[str, ...] = ()
    changes: str = field(default="", repr=False)

    @property
    def subject(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"write unit {self.path}"

    @property
    def diff(self) -> str:
        return self.changes


@dataclass(frozen=True)
class PruneUnit(Step):
    """Remove a unit file vmgitops wrote (a DaemonReload follows); when the service left
    the manifest altogether (`stop`), stop and disable it first."""

    kind = StepKind.PRUNE_UNIT
    name: str
    path: str
    stop: bool = True

    @property
    def subject(self) -> str:
        return self.name

    def describe(self) -> str:
        verb = "stop, disable and remove" if self.stop else "remove"
        return f"{verb} unit file {self.path}"


@dataclass(frozen=True)
class DaemonReload(Step):
    kind = StepKind.DAEMON_RELOAD

    def describe(self) -> str:
        return "systemctl daemon-reload"


@dataclass(frozen=True)
class UploadRelease(Step):
    """Upload the tree into `path/releases/<revision>/` (replacing an unknown one)."""

    kind = StepKind.UPLOAD_RELEASE
    path: str
    revision: str
    digest: str
    files: tuple[ReleaseFile, ...] = field(repr=False)
    directories: tuple[str, ...] = field(repr=False)
    replace: bool = False
    #: Units to restart afterwards: set when the upload replaces what `current` shows.
    restarts: tuple[str, ...] = ()

    @property
    def subject(self) -> str:
        return f"{self.path}/releases/{self.revision}"

    def describe(self) -> str:
        size = sum(len(f.content) for f in self.files)
        verb = "replace" if self.replace else "upload"
        return f"{verb} release {self.subject} ({len(self.files)} files, {size} bytes)"


@dataclass(frozen=True)
class SwitchRelease(Step):
    """Point `path/current` at `releases/<revision>` with an atomic rename."""

    kind = StepKind.SWITCH_RELEASE
    path: str
    revision: str
    previous: str | None = None
    #: Units with `release` in their restartOnChange (their restart markers go first).
    restarts: tuple[str, ...] = ()

    @property
    def subject(self) -> str:
        return f"{self.path}/current"

    def describe(self) -> str:
        return f"switch {self.path}/current to releases/{self.revision}"

    @property
    def diff(self) -> str:
        return f"current: {self.previous or '(none)'} -> {self.revision}\n"


@dataclass(frozen=True)
class PruneReleases(Step):
    """Remove old releases (only ones the inventory lists), and `current` if asked."""

    kind = StepKind.PRUNE_RELEASES
    path: str
    remove: tuple[str, ...]
    remove_current: bool = False

    @property
    def subject(self) -> str:
        return f"{self.path}/releases"

    def describe(self) -> str:
        extra = " and current" if self.remove_current else ""
        return f"remove releases {', '.join(self.remove) or '(none)'}{extra} under {self.path}"


@dataclass(frozen=True)
class RunCommand(Step):
    kind = StepKind.RUN_COMMAND
    name: str
    argv: tuple[str, ...]
    timeout_seconds: int
    idempotent: bool
    trigger_digest: str
    reason: str = ""

    @property
    def subject(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"run {self.name}: {' '.join(self.argv)} ({self.reason})"


@dataclass(frozen=True)
class _ServiceStep(Step):
    name: str

    @property
    def subject(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"{_VERBS[self.kind]} {self.name}"


@dataclass(frozen=True)
class EnableService(_ServiceStep):
    kind = StepKind.ENABLE_SERVICE


@dataclass(frozen=True)
class DisableService(_ServiceStep):
    kind = StepKind.DISABLE_SERVICE


@dataclass(frozen=True)
class StartService(_ServiceStep):
    kind = StepKind.START_SERVICE
    marker_digest: str | None = None


@dataclass(frozen=True)
class StopService(_ServiceStep):
    kind = StepKind.STOP_SERVICE


@dataclass(frozen=True)
class RestartService(_ServiceStep):
    kind = StepKind.RESTART_SERVICE
    marker_digest: str | None = None
    reason: str = ""

    def describe(self) -> str:
        return f"restart {self.name} ({self.reason})"


_VERBS = {
    StepKind.ENABLE_SERVICE: "enable",
    StepKind.DISABLE_SERVICE: "disable",
    StepKind.START_SERVICE: "start",
    StepKind.STOP_SERVICE: "stop",
}


@dataclass(frozen=True)
class PruneFile(Step):
    kind = StepKind.PRUNE_FILE
    path: str

    @property
    def subject(self) -> str:
        return self.path

    def describe(self) -> str:
        return f"remove {self.path} (no longer in the manifest)"


@dataclass(frozen=True)
class PruneDirectory(PruneFile):
    """Remove the directory only if it is empty: data below it is never deleted."""

    kind = StepKind.PRUNE_DIRECTORY

    def describe(self) -> str:
        return f"remove directory {self.path} if empty (no longer in the manifest)"
