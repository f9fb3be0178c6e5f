"""The per-target driver of the VMApplication reconciler: the engine over pooled SSH."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from vmgitops.engine import TargetResult, observe_target, sync_target
from vmgitops.engine.resolve import resolve_command
from vmgitops.executor.outcome import APPLY_IN_PROGRESS
from vmgitops.manifest.render import TargetInfo
from vmgitops.plan.health import Health, SyncStatus
from vmgitops.plan.plan import COMMAND_OUTCOME_UNKNOWN
from vmgitops.plan.resolution import DEFERRED, ResolveRequest, ResolveResult
from vmgitops.reconcile import target_probe
from vmgitops.reconcile.app_context import AppContext, SyncOutcome
from vmgitops.reconcile.app_status import TargetView
from vmgitops.transport.config import Timeouts
from vmgitops.transport.errors import TransportError
from vmgitops.transport.keys import KeyCache
from vmgitops.transport.pool import ConnectionPool

Lookup = Callable[[str, str], Mapping[str, Any] | None]

#: Engine error reasons that mean "the VM could not be reached", not "the sync failed".
UNREACHABLE = frozenset(
    {
        "HostKeyMismatch",
        "HostKeyNotConfigured",
        "AuthenticationFailed",
        "CredentialsMissing",
        "ConnectionRefused",
        "HostUnreachable",
        "Timeout",
        "ConnectionLost",
        "SudoPasswordRequired",
        "SudoPasswordRejected",
        "TransportError",
        "InvalidSpec",
    }
)


def outcome_unknown(result: TargetResult) -> str | None:
    """Why what ran on the VM is not known, or None when it is.

    Only a plan blocked by CommandOutcomeUnknown (a pending marker of a non-idempotent
    command that an earlier apply started) is unknown. An apply that started and then
    lost its connection is not: every write is atomic and each command leaves its
    pending marker first, so the next observe tells exactly what happened (and blocks
    on that marker if a non-idempotent command was cut off). Such a target is retried
    like an unreachable one; counting it as a failure failed rollouts that recover by
    themselves (an sshd restarted mid-apply).
    """
    if result.error is not None and result.error.reason == APPLY_IN_PROGRESS:
        return None  # another apply still holds the VM's lock: its outcome is coming
    for issue in result.blocking_issues:
        if issue.reason == COMMAND_OUTCOME_UNKNOWN:
            return f"{COMMAND_OUTCOME_UNKNOWN}: {issue.message}"
    return None


class SSHDriver:
    """Observes and syncs targets through the operator's shared connection pool."""

    def __init__(
        self,
        *,
        pool: ConnectionPool,
        keys: KeyCache,
        timeouts: Timeouts,
        secrets: Lookup,
        targets: Lookup,
    ) -> None:
        self.pool, self.keys, self.timeouts = pool, keys, timeouts
        self.secrets, self.targets = secrets, targets

    def _runner(self, target: Mapping[str, Any]) -> Any:
        config = target_probe.connection_config(
            target,
            secrets=self.secrets,
            targets=self.targets,
            key_cache=self.keys,
            timeouts=self.timeouts,
        )
        return self.pool.runner(config)

    @staticmethod
    def _info(target: Mapping[str, Any]) -> tuple[TargetInfo, Mapping[str, Any]]:
        m = target.get("metadata") or {}
        info = TargetInfo(
            name=str(m.get("name")),
            address=str((target.get("spec") or {}).get("address") or ""),
            labels=dict(m.get("labels") or {}),
        )
        facts = (target.get("status") or {}).get("facts") or {}
        return info, facts

    async def _call(
        self, target: Mapping[str, Any], ctx: AppContext, *, dry_run: bool
    ) -> TargetResult | TargetView:
        info, facts = self._info(target)
        try:
            runner = self._runner(target)
        except TransportError as exc:
            return TargetView(info.name, reachable=False, message=f"{exc.reason}: {exc.message}")
        except ValueError as exc:
            return TargetView(info.name, reachable=False, message=f"InvalidSpec: {exc}")
        common: dict[str, Any] = {
            "app_key": ctx.app_key,
            "revision": ctx.revision,
            "app": ctx.app,
            "params": ctx.params,
            "target": info,
            "facts": facts,
            "prune": ctx.prune,
            "generation": ctx.generation,
        }
        if dry_run:
            return await observe_target(runner, **common)
        return await sync_target(runner, **common)

    @staticmethod
    def _view(name: str, result: TargetResult) -> TargetView:
        if result.error is not None and result.error.reason in UNREACHABLE:
            return TargetView(
                name,
                reachable=False,
                revision=result.deployed_revision,
                message=f"{result.error.reason}: {result.error.message}",
            )
        message = ""
        sync = result.sync
        orphans = result.plan.orphans if result.plan is not None else ()
        steps: int | None = None
        if result.plan is not None and result.error is None:
            # After an apply the remaining work is what is still OutOfSync; before (an
            # observation), the plan's steps.
            pending = [r for r in result.resources if r.sync != SyncStatus.SYNCED]
            steps = len(pending) - len(orphans) if result.applied else len(result.plan.steps)
        if result.error is not None:
            message = f"{result.error.reason}: {result.error.message}"
            sync = SyncStatus.UNKNOWN if result.plan is None else sync
        elif result.blocking_issues:
            issue = result.blocking_issues[0]
            message = f"{issue.reason}: {issue.message}"
        elif result.health.health != Health.HEALTHY and result.health.message:
            message = result.health.message
        elif sync == SyncStatus.OUT_OF_SYNC and steps == 0 and orphans:
            message = (
                f"prune is off; would prune {len(orphans)}: "
                + ", ".join(orphans[:5])
                + (" ..." if len(orphans) > 5 else "")
            )
        elif sync == SyncStatus.OUT_OF_SYNC and result.plan is not None:
            message = f"{len(result.plan.steps)} step(s) to apply"
            if orphans:
                message += f"; prune is off; would prune {len(orphans)}"
        if result.issues and not message:
            message = f"{result.issues[0].reason}: {result.issues[0].message}"
        return TargetView(
            name,
            reachable=True,
            sync=sync,
            health=result.health.health,
            revision=result.deployed_revision,
            message=message,
            orphans=tuple(orphans),
            steps=steps if not result.issues else None,
        )

    async def observe(self, target: Mapping[str, Any], ctx: AppContext) -> TargetView:
        res = await self._call(target, ctx, dry_run=True)
        name = str((target.get("metadata") or {}).get("name"))
        return res if isinstance(res, TargetView) else self._view(name, res)

    async def resolve(
        self, target: Mapping[str, Any], ctx: AppContext, request: ResolveRequest
    ) -> ResolveResult:
        info, facts = self._info(target)
        try:
            runner = self._runner(target)
        except TransportError as exc:
            return ResolveResult(DEFERRED, f"cannot reach the VM: {exc.reason}: {exc.message}")
        except ValueError as exc:
            return ResolveResult(DEFERRED, f"InvalidSpec: {exc}")
        return await resolve_command(
            runner,
            app_key=ctx.app_key,
            revision=ctx.revision,
            app=ctx.app,
            params=ctx.params,
            target=info,
            facts=facts,
            request=request,
        )

    async def sync(self, target: Mapping[str, Any], ctx: AppContext) -> SyncOutcome:
        res = await self._call(target, ctx, dry_run=False)
        name = str((target.get("metadata") or {}).get("name"))
        view = res if isinstance(res, TargetView) else self._view(name, res)
        unknown = outcome_unknown(res) if isinstance(res, TargetResult) else None
        if unknown is not None:
            # Checked before reachability: a connection lost during the apply is not
            # "could not reach the VM, try later" but "something may have run".
            return SyncOutcome(
                view=replace(view, message=unknown), ok=False, message=unknown, unknown=True
            )
        if not view.reachable:
            return SyncOutcome(view=view, ok=False, message=view.message, unreachable=True)
        ok = (
            isinstance(res, TargetResult)
            and res.ok
            and view.health == Health.HEALTHY
            and (view.sync == SyncStatus.SYNCED or view.orphans_only)
        )
        return SyncOutcome(
            view=view,
            ok=ok,
            message=view.message
            or ("" if ok else f"sync {view.sync.value}, health {view.health.value}"),
        )
