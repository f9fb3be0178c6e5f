"""Pure: settling a CommandOutcomeUnknown, the human's answer to "did it run?".

A non-idempotent command whose apply stopped while it ran leaves `markers/pending.NAME`
on the VM, and every plan of the app stops at CommandOutcomeUnknown (see
`lifecycle.commands`) until someone who checked the VM says what happened. The answer is
the annotation `vmgitops.io/resolve-command: APP/COMMAND=ran|rerun` on the target
(`vmgitops resolve` sets it):

* `ran`: the command did its work. The done marker gets the command's current trigger
  digest and the pending marker goes: it runs again only when its trigger changes.
* `rerun`: forget the interrupted run and any earlier record of it: the pending and the
  done markers go, and the next apply runs it (unless its `creates:` path exists).

A command no longer in vmapp.yaml cannot run again: `ran` only clears its pending marker.

The VM side (`executor.resolve`) acts under the VM lock and answers with one status; the
end states it checks make a repeated request (the operator died before removing the
annotation) a no-op that reports success, never a second change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from vmgitops.manifest.desired import DesiredCommand
from vmgitops.manifest.vmpaths import ITEM_NAME

RAN = "ran"
RERUN = "rerun"
ACTIONS = (RAN, RERUN)
#: The VM-side mode for a command the app no longer has: clear its pending marker only.
FORGET = "forget"

#: Event and result reasons.
RESOLVED = "CommandResolved"
REFUSED = "ResolveRefused"
#: Not acted on yet (the VM is busy or unreachable): the request stays for the next tick.
DEFERRED = "ResolveDeferred"

#: The statuses the VM-side script answers with.
ST_RESOLVED = "resolved"
ST_ALREADY = "already"
ST_NOPENDING = "nopending"
ST_BUSY = "busy"
ST_ERROR = "error"
STATUSES = frozenset({ST_RESOLVED, ST_ALREADY, ST_NOPENDING, ST_BUSY, ST_ERROR})

#: A VMApplication name (DNS-1123 subdomain).
APP_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
SYNTAX = "APPLICATION/COMMAND=ran or APPLICATION/COMMAND=rerun"


class MalformedResolve(ValueError):
    """The annotation's value is not APPLICATION/COMMAND=ran|rerun."""

    reason = REFUSED


@dataclass(frozen=True)
class ResolveRequest:
    app: str
    command: str
    action: str

    def __str__(self) -> str:
        return f"{self.app}/{self.command}={self.action}"


@dataclass(frozen=True)
class ResolveOp:
    """What the VM-side script is asked: a mode, and for `ran` the digest to record."""

    mode: str
    digest: str = ""


@dataclass(frozen=True)
class ResolveResult:
    reason: str  # RESOLVED | REFUSED | DEFERRED
    message: str

    @property
    def final(self) -> bool:
        """Whether the request is answered (and its annotation is removed)."""
        return self.reason != DEFERRED


def parse_resolve(value: str) -> ResolveRequest:
    """`APPLICATION/COMMAND=ran|rerun` (white space around it is ignored)."""
    text = value.strip()
    target, eq, action = text.rpartition("=")
    app, slash, command = target.partition("/")
    if not eq or not slash:
        raise MalformedResolve(f"{_show(value)} is not {SYNTAX}")
    if action not in ACTIONS:
        raise MalformedResolve(f"{_show(value)}: the action must be ran or rerun, not {action!r}")
    if not APP_NAME.fullmatch(app):
        raise MalformedResolve(f"{_show(value)}: {app!r} is not a VMApplication name")
    if not ITEM_NAME.fullmatch(command):
        raise MalformedResolve(f"{_show(value)}: {command!r} is not a command name")
    return ResolveRequest(app, command, action)


def _show(value: str) -> str:
    # The value is user input that ends up in an Event: bounded, one line.
    return repr(value[:80] + ("..." if len(value) > 80 else ""))


def resolve_op(
    request: ResolveRequest, commands: Sequence[DesiredCommand]
) -> ResolveOp | ResolveResult:
    """The VM-side op for `request` against the app's commands, or a refusal."""
    for c in commands:
        if c.name == request.command:
            if request.action == RAN:
                return ResolveOp(RAN, c.trigger_digest)
            return ResolveOp(RERUN)
    if request.action == RAN:
        return ResolveOp(FORGET)
    return ResolveResult(
        REFUSED,
        f"application {request.app} has no command {request.command!r}: it cannot run "
        "again; if a pending marker of a removed command blocks the app, resolve it with "
        "=ran",
    )


def resolve_result(
    request: ResolveRequest, op: ResolveOp, status: str, detail: str
) -> ResolveResult:
    """The outcome of the VM-side script's answer `status` (one of STATUSES)."""
    what = f"command {request.command!r} of {request.app}"
    if status == ST_BUSY:
        return ResolveResult(DEFERRED, f"{what}: {detail or 'an apply holds the VM lock'}")
    if status == ST_ERROR:
        return ResolveResult(REFUSED, f"{what}: cannot resolve on the VM: {detail}")
    if status == ST_NOPENDING:
        if op.mode == FORGET:
            return ResolveResult(
                REFUSED, f"application {request.app} has no command {request.command!r}"
            )
        return ResolveResult(
            REFUSED,
            f"{what} has no pending marker on this VM: its outcome is known, nothing to resolve",
        )
    again = status == ST_ALREADY
    if op.mode == RAN:
        text = (
            "already recorded as run"
            if again
            else "recorded as run without running it (done at its current trigger)"
        )
        return ResolveResult(RESOLVED, f"{what}: {text}; it runs again when its trigger changes")
    if op.mode == RERUN:
        text = "nothing pending or recorded" if again else "interrupted run forgotten"
        return ResolveResult(RESOLVED, f"{what}: {text}; the next apply runs it")
    return ResolveResult(
        RESOLVED, f"{what}: no longer in vmapp.yaml; its pending marker is cleared"
    )
