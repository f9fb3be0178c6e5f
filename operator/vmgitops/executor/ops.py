"""Plan steps -> the argv of one apply script run, and the content it needs. Pure.

Every step becomes one or more ops of `script.APPLY_SCRIPT`, each tagged with the step's
index so that outcomes map back to steps. Contents (files, unit files, the inventory,
the release tree) become members of one tar stream, named by index: a VM path is never
a member name, so the tar stream cannot write anywhere but the stage directory. The ops
themselves are its last member, `ops` (a request stream): the command line keeps only
a fixed-size header, whatever the number of steps.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from vmgitops.executor.script import APPLY_SCRIPT
from vmgitops.facts.records import request_stream
from vmgitops.manifest.vmpaths import format_mode
from vmgitops.plan.lifecycle import RESTART
from vmgitops.plan.steps import (
    EnsureDirectory,
    InstallPackage,
    PruneReleases,
    PruneUnit,
    RestartService,
    RunCommand,
    StartService,
    Step,
    StepKind,
    SwitchRelease,
    UploadRelease,
    WriteFile,
    WriteInventory,
    WriteUnit,
)

RELEASE_MEMBER = "r"
#: The member holding the ops; content members are `f<N>` and `r`, so it cannot clash.
OPS_MEMBER = "ops"
UNIT_MODE = 0o644
INVENTORY_MODE = 0o600

#: Seconds allowed for the batch beyond its commands' own timeouts.
BASE_SECONDS = 60.0
PACKAGE_SECONDS = 900.0
#: A slow link still moves this many bytes a second.
MIN_BYTES_PER_SECOND = 1_000_000
#: Seconds allowed per op beyond BASE_SECONDS: an atomic write forks about five times
#: and fsyncs twice (the first sync of 5,000 files took 56 s, about 11 ms a file, on a
#: test-bed VM of a machine loaded 8x over); a slow disk gets a wide margin, since a
#: deadline hit mid-batch leaves the outcomes unknown.
OP_SECONDS = 0.1


@dataclass(frozen=True)
class Member:
    name: str
    content: bytes = field(repr=False)
    mode: int = 0o600


@dataclass(frozen=True)
class CrashPoint:
    """Test hook: where the apply dies (see `parse_crash_point`)."""

    where: str  # "before" | "after" | "inline" | "upload"
    kind: str = ""
    nth: int = 1
    inline: str = ""


def parse_crash_point(text: str) -> CrashPoint:
    """`before:KIND[:N]`, `after:KIND[:N]` (around the Nth step of KIND), `write:PATH`
    (after a file's temp copy is complete, before its rename), `pending:CMD` (marker
    written, command not started), `ran:CMD` (command exited, markers not updated yet),
    or `upload` (the content stream is cut in the middle)."""
    head, _, rest = text.partition(":")
    if head in ("before", "after"):
        kind, _, nth = rest.partition(":")
        StepKind(kind)  # ValueError for an unknown kind
        return CrashPoint(head, kind, int(nth) if nth else 1)
    if head in ("write", "pending", "ran") and rest:
        return CrashPoint("inline", inline=text)
    if text == "upload":
        return CrashPoint("upload")
    raise ValueError(f"unknown crash point {text!r}")


@dataclass
class Batch:
    """One run of the apply script: ops (flat request items), contents and a deadline."""

    ops: list[str] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)
    release: UploadRelease | None = None
    #: How many ops each step has (by step index): a step is done when all reported.
    op_count: dict[int, int] = field(default_factory=dict)
    timeout: float = BASE_SECONDS
    crash_inline: str = ""

    def add(self, index: int, name: str, *args: str) -> None:
        self.ops += [name, str(index), *args]
        self.op_count[index] = self.op_count.get(index, 0) + 1

    def add_list(self, index: int, name: str, fixed: Sequence[str], items: Sequence[str]) -> None:
        self.ops += [name, str(index), *fixed, str(len(items)), *items]
        self.op_count[index] = self.op_count.get(index, 0) + 1

    def member(self, content: bytes) -> str:
        """A staged copy of `content`; its mode on the VM is set by the op, not by tar."""
        name = f"f{len(self.members)}"
        self.members.append(Member(name, content))
        return name

    def argv(
        self,
        *,
        state_root: str,
        state_dir: str,
        generation: int,
        revision: str,
        expected_serial: int,
        lock_wait: float,
    ) -> list[str]:
        """The command: the script and its fixed-size header; the ops go in `stage_tar`."""
        header = [
            state_root,
            state_dir,
            str(generation),
            revision,
            str(expected_serial),
            str(max(0, int(lock_wait))),
            self.crash_inline,
        ]
        return ["env", "LC_ALL=C", "sh", "-c", APPLY_SCRIPT, "vmgitops-apply", *header]

    def content_bytes(self) -> int:
        size = sum(len(m.content) for m in self.members)
        if self.release is not None:
            size += sum(len(f.content) for f in self.release.files)
        return size


def _owner(value: str | None) -> str:
    return value or ""


def compile_steps(
    steps: Sequence[Step], *, state_dir: str, crash: CrashPoint | None = None
) -> Batch:
    """The batch that applies `steps` in order."""
    b = Batch()
    seen: dict[str, int] = {}
    for i, step in enumerate(steps):
        kind = str(step.kind)
        seen[kind] = seen.get(kind, 0) + 1
        hit = crash is not None and crash.kind == kind and crash.nth == seen[kind]
        if hit and crash is not None and crash.where == "before":
            b.ops += ["crash", f"before:{kind}:{seen[kind]}"]
        _compile(b, i, step, state_dir)
        if hit and crash is not None and crash.where == "after":
            b.ops += ["crash", f"after:{kind}:{seen[kind]}"]
    if crash is not None and crash.where == "inline":
        b.crash_inline = crash.inline
    b.timeout += b.content_bytes() / MIN_BYTES_PER_SECOND + OP_SECONDS * sum(b.op_count.values())
    return b


def _compile(b: Batch, i: int, step: Step, state_dir: str) -> None:
    kind = step.kind
    if isinstance(step, WriteInventory):
        name = b.member(step.content)
        b.add(i, "write", name, f"{state_dir}/inventory.json", format_mode(INVENTORY_MODE), "", "")
    elif isinstance(step, InstallPackage):  # and RemovePackage
        action = "remove" if kind == StepKind.REMOVE_PACKAGE else "install"
        b.add_list(i, "pkg", [step.manager, action], step.names)
        b.timeout += PACKAGE_SECONDS
    elif isinstance(step, EnsureDirectory):
        b.add(i, "mkdir", step.path, format_mode(step.mode), _owner(step.owner), _owner(step.group))
    elif isinstance(step, WriteFile):
        for unit in step.restarts:
            b.add(i, "unmark", RESTART + unit)
        mode, owner, group = format_mode(step.mode), _owner(step.owner), _owner(step.group)
        if step.content_changed:
            b.add(i, "write", b.member(step.content), step.path, mode, owner, group)
        else:
            b.add(i, "meta", step.path, mode, owner, group)
    elif isinstance(step, WriteUnit):
        for unit in step.restarts:
            b.add(i, "unmark", RESTART + unit)
        name = b.member(step.content)
        b.add(i, "write", name, step.path, format_mode(UNIT_MODE), "", "")
    elif isinstance(step, PruneUnit):
        b.add(i, "pruneunit", step.name, step.path, "1" if step.stop else "0")
    elif kind == StepKind.DAEMON_RELOAD:
        b.add(i, "sysd", "daemon-reload", "-")
    elif isinstance(step, UploadRelease):
        if b.release is not None:
            raise ValueError("a batch uploads at most one release")
        b.release = step
        for unit in step.restarts:
            b.add(i, "unmark", RESTART + unit)
        b.add(i, "upload", step.path, step.revision, RELEASE_MEMBER)
    elif isinstance(step, SwitchRelease):
        for unit in step.restarts:
            b.add(i, "unmark", RESTART + unit)
        b.add(i, "switch", step.path, step.revision)
    elif isinstance(step, PruneReleases):
        b.add_list(i, "prunerel", [step.path, "1" if step.remove_current else "0"], step.remove)
    elif isinstance(step, RunCommand):
        fixed = [step.name, str(step.timeout_seconds), "1" if step.idempotent else "0"]
        b.add_list(i, "cmd", [*fixed, step.trigger_digest], step.argv)
        b.timeout += step.timeout_seconds + 10
    elif isinstance(step, StartService | RestartService):
        verb = "start" if isinstance(step, StartService) else "restart"
        b.add(i, "sysd", verb, step.name)
        if step.marker_digest:
            b.add(i, "mark", RESTART + step.name, step.marker_digest)
    elif kind in _SYSTEMCTL:
        b.add(i, "sysd", _SYSTEMCTL[kind], step.subject)
    elif kind == StepKind.PRUNE_DIRECTORY:
        b.add(i, "rmdir", step.subject)
    elif kind == StepKind.PRUNE_FILE:
        b.add(i, "rmfile", step.subject)
    else:  # pragma: no cover - every StepKind is handled above
        raise ValueError(f"no executor for step kind {kind}")


_SYSTEMCTL = {
    StepKind.ENABLE_SERVICE: "enable",
    StepKind.DISABLE_SERVICE: "disable",
    StepKind.STOP_SERVICE: "stop",
}


def stage_tar(batch: Batch) -> bytes:
    """The tar stream of a batch: `f<N>` files, the release under `r/`, then `ops`."""
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for m in batch.members:
            _add(tar, m.name, m.content, m.mode, now)
        rel = batch.release
        if rel is not None:
            _add_dir(tar, RELEASE_MEMBER, now)
            for d in sorted(rel.directories):
                _add_dir(tar, f"{RELEASE_MEMBER}/{d}", now)
            for f in rel.files:
                _add(tar, f"{RELEASE_MEMBER}/{f.path}", f.content, f.mode, now)
        # Last, so that a stream cut anywhere lacks the ops' final "." line.
        _add(tar, OPS_MEMBER, request_stream(batch.ops), 0o600, now)
    return buf.getvalue()


def _info(name: str, now: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = now
    return info


def _add(tar: tarfile.TarFile, name: str, content: bytes, mode: int, now: int) -> None:
    info = _info(name, now)
    info.size = len(content)
    info.mode = mode
    tar.addfile(info, io.BytesIO(content))


def _add_dir(tar: tarfile.TarFile, name: str, now: int) -> None:
    info = _info(name, now)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)
