"""Settle a CommandOutcomeUnknown on one VM: one SSH command (see `plan.resolution`).

The app is rendered for the target first: `ran` records the command's trigger digest at
the revision the next apply would deploy, so that apply finds it done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vmgitops.executor.apply import APP_KEY
from vmgitops.executor.resolve import parse_resolve_output, resolve_argv
from vmgitops.facts.records import MalformedOutput
from vmgitops.manifest.errors import ManifestError
from vmgitops.manifest.loader import LoadedApp
from vmgitops.manifest.render import TargetInfo, render
from vmgitops.manifest.vmpaths import STATE_ROOT
from vmgitops.plan.resolution import (
    DEFERRED,
    REFUSED,
    ResolveRequest,
    ResolveResult,
    resolve_op,
    resolve_result,
)
from vmgitops.transport.base import Runner
from vmgitops.transport.errors import TransportError

#: Seconds the VM-side script waits for an apply's lock before answering `busy`.
LOCK_WAIT = 10.0


async def resolve_command(
    runner: Runner,
    *,
    app_key: str,
    revision: str,
    app: LoadedApp,
    params: Mapping[str, Any],
    target: TargetInfo,
    facts: Mapping[str, Any],
    request: ResolveRequest,
    state_root: str = STATE_ROOT,
    lock_wait: float = LOCK_WAIT,
) -> ResolveResult:
    """Never raises for what the VM or the network can do wrong: an unreachable VM or a
    held lock is DEFERRED (asked again later), anything else is a REFUSED answer."""
    if not APP_KEY.fullmatch(app_key):
        raise ValueError(f"{app_key!r} is not a valid app key (namespace_name)")
    try:
        desired = render(app, params, target, facts, revision)
    except ManifestError as exc:
        return ResolveResult(REFUSED, f"cannot render {request.app}: {exc.reason}: {exc.message}")
    op = resolve_op(request, desired.commands)
    if isinstance(op, ResolveResult):
        return op
    argv = resolve_argv(
        state_root=state_root,
        state_dir=f"{state_root}/{app_key}",
        name=request.command,
        mode=op.mode,
        digest=op.digest,
        lock_wait=lock_wait,
    )
    try:
        result = await runner.run(argv, timeout=lock_wait + 60)
        status, detail = parse_resolve_output(result.stdout)
    except TransportError as exc:
        return ResolveResult(DEFERRED, f"cannot reach the VM: {exc.reason}: {exc.message}")
    except MalformedOutput as exc:
        tail = result.stderr.decode("utf-8", "replace")[-200:].strip()
        return ResolveResult(REFUSED, f"the resolve command failed: {exc} {tail}".strip())
    return resolve_result(request, op, status, detail)
