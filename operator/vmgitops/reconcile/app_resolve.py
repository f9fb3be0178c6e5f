"""Which of an application's targets carry a `vmgitops.io/resolve-command` request for it,
and what may refuse one before the VM is asked. Pure (see `plan.resolution`).

The application's own tick acts on the requests naming it, before it observes its
targets: the same tick then sees the settled markers (and, for `rerun`, an automated
sync applies the command). A value that names no application (malformed) or an
application that does not exist is refused by the target watch (handlers.applications).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vmgitops.api.meta import ANNOTATION_RESOLVE_COMMAND
from vmgitops.plan.resolution import (
    DEFERRED,
    REFUSED,
    MalformedResolve,
    ResolveRequest,
    ResolveResult,
    parse_resolve,
)

#: The result annotation holds at most this many characters.
RESULT_LIMIT = 1024


@dataclass(frozen=True)
class Request:
    """One target's request, as seen at one resourceVersion of the target."""

    target: Mapping[str, Any]
    name: str
    value: str
    version: str
    request: ResolveRequest


def requests_for(
    app: str, targets: Sequence[Mapping[str, Any]], handled: Mapping[str, str]
) -> list[Request]:
    """The well-formed requests naming `app`, except those already answered: `handled`
    maps a target to the resourceVersion its answered request was seen at (the operator's
    index may show the annotation a moment after it was removed)."""
    out = []
    for t in targets:
        m = t.get("metadata") or {}
        value = (m.get("annotations") or {}).get(ANNOTATION_RESOLVE_COMMAND)
        if value is None:
            continue
        try:
            request = parse_resolve(str(value))
        except MalformedResolve:
            continue
        name, version = str(m.get("name")), str(m.get("resourceVersion") or "")
        if request.app != app or (version and handled.get(name) == version):
            continue
        out.append(Request(t, name, str(value), version, request))
    return sorted(out, key=lambda r: r.name)


def precheck(
    r: Request, *, selected: bool, observe_only: bool, loaded: bool
) -> ResolveResult | None:
    """A refusal (or a reason to wait) before any VM is asked; None: ask the VM."""
    if not selected:
        return ResolveResult(
            REFUSED,
            f"target {r.name} is not selected by application {r.request.app}: it manages "
            "nothing there",
        )
    if observe_only:
        return ResolveResult(
            REFUSED,
            f"application {r.request.app} has managementPolicy ObserveOnly: the operator "
            "changes nothing on its VMs",
        )
    if not loaded:
        return ResolveResult(
            DEFERRED,
            f"application {r.request.app} has no revision loaded (see its conditions); "
            "the request waits",
        )
    return None


def result_value(value: str, result: ResolveResult) -> str:
    """The result annotation: the request, the reason and the message, bounded."""
    return f"{value.strip()}: {result.reason}: {result.message}"[:RESULT_LIMIT]
