"""Sync one application on one VM: observe -> plan -> apply -> verify -> health.

The pipeline, and what each stage costs in SSH round trips:

1. **observe** (1 trip): one read-only command reports everything the app manages and
   runs its health checks after that (facts.look: one command, not two side by side,
   halves what a drift check costs the VM). A drift check, or a sync with nothing to
   do, ends here.
2. **plan** (no trip): pure. A blocking issue (CommandOutcomeUnknown, a path conflict,
   an older generation than the VM's fence) ends the sync with nothing applied.
3. **apply** (1 trip): every step in one command, under the VM lock, fenced by the
   serial of step 1 (ChangedSinceObserved: observe and plan again, once).
4. **verify** (1 trip, only when needed): observe again, with the health checks, when
   something failed, or when the apply touched units, packages or the release, whose
   state the health depends on. A successful apply of files needs no second look: it
   made them so.
5. **settle** (bounded): after a (re)start, failing checks are retried for a few seconds
   (a service needs a moment to listen) before the target is called Degraded.

Measured on a test-bed VM (tests/integration/test_engine_sync.py, app with a unit, a
release, a command and three health checks): a no-change check or sync is 1 round trip
and 1 command, about 0.15 s; a one-file change is 3 round trips (observe, apply, health);
a first apply is 3 (observe, apply, verify with health).
A plan blocked by CommandOutcomeUnknown costs one more trip, to tell an apply that is
still running (it holds the VM lock: ApplyInProgress, retryable) from one that died.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from vmgitops.crashhook import armed_value, die
from vmgitops.engine.result import EngineError, TargetResult
from vmgitops.executor.apply import APP_KEY, ApplyOptions, apply_plan
from vmgitops.executor.fence import Fence, FenceUnreadable, parse_fence
from vmgitops.executor.outcome import (
    APPLY_IN_PROGRESS,
    CHANGED_SINCE_OBSERVED,
    MALFORMED_OUTPUT,
    ApplyResult,
)
from vmgitops.executor.script import lock_probe_argv
from vmgitops.facts.health import CheckResult, health_argv, health_timeout, parse_health
from vmgitops.facts.look import look_argv
from vmgitops.facts.observe import ObserveRequest, parse_observation, request_for
from vmgitops.facts.observed import ObservedState
from vmgitops.facts.records import MalformedOutput
from vmgitops.manifest.desired import DesiredState, HealthCheck
from vmgitops.manifest.errors import ManifestError
from vmgitops.manifest.loader import LoadedApp
from vmgitops.manifest.render import TargetInfo, render
from vmgitops.manifest.vmpaths import STATE_ROOT
from vmgitops.plan.assess import Assessment, assess_health
from vmgitops.plan.compute import compute_plan
from vmgitops.plan.health import Health, SyncStatus
from vmgitops.plan.plan import COMMAND_OUTCOME_UNKNOWN, Plan, PlanIssue
from vmgitops.plan.resources import resource_statuses
from vmgitops.plan.steps import StepKind
from vmgitops.transport.base import CommandResult, Runner
from vmgitops.transport.errors import TransportError

STALE_GENERATION = "StaleGeneration"
#: Test hook in the operator's environment: `POINT` or `POINT@TARGET` (the first sync of
#: TARGET only). POINT is one of `executor.ops.parse_crash_point`, or `synced`: the sync
#: applied and verified, and the process dies before its caller writes any status.
#: The chaos tests SIGKILL a real operator this way; nothing else sets it.
CRASH_ENV = "VMGITOPS_CRASH_AT"
#: The same, read from this file at every sync (absent or empty: no crash), so that a
#: test can arm a running operator without restarting it.
CRASH_FILE_ENV = "VMGITOPS_CRASH_FILE"
SYNCED = "synced"
OBSERVE_FAILED = "ObserveFailed"
#: Observing a file forks twice (stat, sha256sum): a few ms on a VM. Beyond the base
#: observe timeout, each file gets this much, so a big app is not cut off by its size.
OBSERVE_SECONDS_PER_PATH = 0.02
_MANAGERS = {"apt": "apt", "dnf": "dnf", "yum": "dnf", "apk": "apk"}
_STARTS = (StepKind.START_SERVICE, StepKind.RESTART_SERVICE)
#: Steps after which the live state that health reads (units, release link) may differ.
_LIVE = frozenset(StepKind) - {
    StepKind.WRITE_INVENTORY,
    StepKind.ENSURE_DIRECTORY,
    StepKind.WRITE_FILE,
    StepKind.RUN_COMMAND,
    StepKind.PRUNE_FILE,
    StepKind.PRUNE_DIRECTORY,
}


@dataclass(frozen=True)
class EngineOptions:
    #: Where per-app state lives on the VM (tests point it at a scratch directory).
    state_root: str = STATE_ROOT
    #: Seconds to wait for another applier's VM lock.
    lock_wait: float = 30.0
    #: Seconds the observe command may take.
    observe_timeout: float = 120.0
    #: After a (re)start, how long failing health checks are retried, and how often.
    settle_seconds: float = 15.0
    settle_interval: float = 1.0
    #: Observe-plan-apply again this many times when the VM changed under the plan.
    replans: int = 1
    #: Test hook, see executor.ops.parse_crash_point.
    crash_at: str | None = None


class CountingRunner:
    """A Runner that counts the commands it runs (for the round-trip figures)."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.commands = 0

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the Runner contract
    ) -> CommandResult:
        self.commands += 1
        return await self.inner.run(argv, stdin=stdin, timeout=timeout)


class _Failed(Exception):
    def __init__(self, error: EngineError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass
class _Sync:
    """One sync's inputs and running totals."""

    runner: CountingRunner
    app_key: str
    generation: int
    revision: str
    desired: DesiredState
    request: ObserveRequest
    prune: bool
    opts: EngineOptions
    started: float
    #: False for a drift check that was given no generation: nothing to fence against.
    fenced: bool = True
    trips: int = 0

    # -- probes -------------------------------------------------------------------------

    async def observe(self) -> ObservedState:
        return parse_observation(await self._observing(self.request.argv(), 0.0))

    async def health(self) -> tuple[CheckResult, ...]:
        checks: Sequence[HealthCheck] = self.desired.health_checks
        if not checks:
            return ()
        try:
            result = await self.runner.run(health_argv(checks), timeout=health_timeout(checks))
            return tuple(parse_health(result.stdout, checks))
        except (TransportError, MalformedOutput) as exc:
            # The checks could not run: their health is Unknown, the sync goes on.
            why = f"the checks could not run: {getattr(exc, 'reason', 'MalformedOutput')}"
            return tuple(CheckResult(c.name, c.kind, None, why) for c in checks)

    async def observe_and_check(self) -> tuple[ObservedState, tuple[CheckResult, ...]]:
        """The observation and the checks' answers from ONE command (see facts.look)."""
        checks: Sequence[HealthCheck] = self.desired.health_checks
        # The checks run after the observation: their time comes on top of its own.
        out = await self._observing(look_argv(checks), health_timeout(checks))
        return parse_observation(out), tuple(parse_health(out, checks))

    async def _observing(self, argv: Sequence[str], extra_seconds: float) -> bytes:
        """Runs an observing command (the request on stdin); its output, or _Failed.

        What to observe goes on stdin: the command line stays the same small string for
        any app (sshd passes it as one argument, which Linux caps at 128 KiB).
        """
        request = self.request
        timeout = self.opts.observe_timeout + OBSERVE_SECONDS_PER_PATH * len(request.files)
        result = await self.runner.run(argv, stdin=request.stdin(), timeout=timeout + extra_seconds)
        if not result.ok:
            raise _Failed(
                EngineError(
                    OBSERVE_FAILED,
                    f"the observe command failed (exit {result.exit_status}): "
                    + result.stderr.decode("utf-8", "replace")[-300:].strip(),
                )
            )
        return result.stdout

    async def look(
        self, *, observe: bool, health: bool
    ) -> tuple[ObservedState | None, tuple[CheckResult, ...]]:
        """Observe and/or run the checks: one round trip, one command (none if neither)."""
        if not observe and not health:
            return None, ()
        if observe and health:
            return await self.observe_fully()
        self.trips += 1
        if observe:
            return await self.observe(), ()
        return None, await self.health()

    async def observe_fully(self) -> tuple[ObservedState, tuple[CheckResult, ...]]:
        """The observation and the app's checks (if any): one round trip, one command."""
        self.trips += 1
        if not self.desired.health_checks:
            return await self.observe(), ()
        return await self.observe_and_check()

    async def lock_busy(self) -> bool:
        """Whether an apply holds the VM lock now (one more trip, only when it matters)."""
        self.trips += 1
        result = await self.runner.run(lock_probe_argv(self.opts.state_root), timeout=30)
        return result.stdout.strip() == b"busy"

    # -- results ------------------------------------------------------------------------

    def result(self, **kw: Any) -> TargetResult:
        return TargetResult(
            app_key=self.app_key,
            revision=self.revision,
            generation=self.generation,
            round_trips=self.trips,
            commands=self.runner.commands,
            seconds=time.monotonic() - self.started,
            **kw,
        )

    def planned(self, observed: ObservedState) -> tuple[Plan, Fence]:
        try:
            fence = parse_fence(observed.markers)
        except FenceUnreadable as exc:
            raise _Failed(EngineError(exc.reason, str(exc), retryable=False)) from None
        plan = compute_plan(self.desired, observed, prune=self.prune)
        if self.fenced and fence.generation > self.generation:
            issue = PlanIssue(
                STALE_GENERATION,
                f"generation {fence.generation} of this application (revision "
                f"{fence.revision}) was applied on this VM; generation {self.generation} "
                "is older and is not applied",
            )
            plan = replace(plan, issues=(*plan.issues, issue))
        return plan, fence


def package_manager(facts: Mapping[str, Any]) -> str:
    """apt, dnf or apk from the target's facts; "auto" lets the observe probe decide."""
    return _MANAGERS.get(str(facts.get("packageManager") or ""), "auto")


def observe_request(
    desired: DesiredState,
    app_key: str,
    facts: Mapping[str, Any],
    state_root: str = STATE_ROOT,
) -> ObserveRequest:
    request = request_for(desired, app_key, package_manager(facts))
    request.state_dir = f"{state_root}/{app_key}"
    return request


async def sync_target(
    runner: Runner,
    *,
    app_key: str,
    generation: int,
    revision: str,
    app: LoadedApp,
    params: Mapping[str, Any],
    target: TargetInfo,
    facts: Mapping[str, Any],
    prune: bool,
    dry_run: bool = False,
    options: EngineOptions | None = None,
) -> TargetResult:
    """Make one VM match `app` at `revision`; with `dry_run`, only say what that takes.

    Never raises for what a VM, a manifest or the network can do wrong: those end in
    `TargetResult.error` (with `retryable`) or in blocking `issues`.
    """
    if options is None:
        options = EngineOptions(crash_at=crash_point_from_env(target.name))
    return await _sync_target(
        runner,
        app_key=app_key,
        generation=generation,
        fenced=True,
        revision=revision,
        app=app,
        params=params,
        target=target,
        facts=facts,
        prune=prune,
        dry_run=dry_run,
        options=options,
    )


def crash_point_from_env(target: str) -> str | None:
    """The crash hook of $VMGITOPS_CRASH_AT for a sync of `target` (see CRASH_ENV)."""
    raw = armed_value(CRASH_ENV, CRASH_FILE_ENV)
    point, at, only = raw.rpartition("@")
    if not at or "/" in only:
        point, only = raw, ""
    if not point or (only and only != target):
        return None
    return point


def _die(point: str) -> None:
    """The crash hook: end this process at once, as SIGKILL would (no cleanup at all)."""
    die(f"vmgitops: crash hook: dying at {point}")


async def _sync_target(
    runner: Runner,
    *,
    app_key: str,
    generation: int,
    fenced: bool,
    revision: str,
    app: LoadedApp,
    params: Mapping[str, Any],
    target: TargetInfo,
    facts: Mapping[str, Any],
    prune: bool,
    dry_run: bool,
    options: EngineOptions | None,
) -> TargetResult:
    opts = options or EngineOptions()
    if not APP_KEY.fullmatch(app_key):
        raise ValueError(f"{app_key!r} is not a valid app key (namespace_name)")
    counter = CountingRunner(runner)
    started = time.monotonic()
    try:
        desired = render(app, params, target, facts, revision)
    except ManifestError as exc:
        return TargetResult(
            app_key,
            revision,
            generation,
            error=EngineError(exc.reason, exc.message, retryable=False),
            seconds=time.monotonic() - started,
        )
    s = _Sync(
        counter,
        app_key,
        generation,
        revision,
        desired,
        observe_request(desired, app_key, facts, opts.state_root),
        prune,
        opts,
        started,
        fenced,
    )
    try:
        return await _run(s, dry_run)
    except _Failed as exc:
        return s.result(error=exc.error)
    except TransportError as exc:
        return s.result(error=EngineError(exc.reason, exc.message, exc.retryable))
    except MalformedOutput as exc:
        return s.result(error=EngineError(MALFORMED_OUTPUT, str(exc)))


async def observe_target(
    runner: Runner,
    *,
    app_key: str,
    revision: str,
    app: LoadedApp,
    params: Mapping[str, Any],
    target: TargetInfo,
    facts: Mapping[str, Any],
    prune: bool,
    generation: int | None = None,
    options: EngineOptions | None = None,
) -> TargetResult:
    """Drift check: observe, plan and run the health checks; never changes the VM.

    With a `generation`, a VM fenced by a newer one reports StaleGeneration.
    """
    return await _sync_target(
        runner,
        app_key=app_key,
        generation=generation or 0,
        fenced=generation is not None,
        revision=revision,
        app=app,
        params=params,
        target=target,
        facts=facts,
        prune=prune,
        dry_run=True,
        options=options,
    )


async def _run(s: _Sync, dry_run: bool) -> TargetResult:
    desired = s.desired
    for attempt in range(s.opts.replans + 1):
        # The checks run in the observation's command: their answer is the one that
        # counts when nothing is to be done (always, for a dry run).
        observed, checks = await s.observe_fully()
        plan, fence = s.planned(observed)
        if dry_run or plan.blocked or not plan.steps:
            unknown = any(i.reason == COMMAND_OUTCOME_UNKNOWN for i in plan.issues)
            if unknown and await s.lock_busy():
                return _in_progress(s, plan, observed, fence, checks)
            return _report(s, plan, observed, fence, checks)
        # The checks' answers are from before the change: the VM is checked afterwards.
        applied = await apply_plan(
            s.runner,
            plan,
            app_key=s.app_key,
            generation=s.generation,
            revision=s.revision,
            expected_serial=fence.serial,
            sensitive=[f.content for f in desired.files if f.sensitive],
            options=ApplyOptions(
                s.opts.state_root,
                s.opts.lock_wait,
                None if s.opts.crash_at == SYNCED else s.opts.crash_at,
            ),
        )
        s.trips += 1
        error = applied.error
        if (
            error is not None
            and error.reason == CHANGED_SINCE_OBSERVED
            and attempt < s.opts.replans
        ):
            continue
        verified = await _verify(s, plan, observed, applied)
        if s.opts.crash_at == SYNCED:
            _die(SYNCED)
        return verified
    raise AssertionError("unreachable")  # pragma: no cover


def _report(
    s: _Sync,
    plan: Plan,
    observed: ObservedState,
    fence: Fence,
    checks: Sequence[CheckResult],
) -> TargetResult:
    return s.result(
        plan=plan,
        sync=plan.sync_status,
        health=assess_health(s.desired, observed, checks),
        checks=tuple(checks),
        resources=tuple(resource_statuses(s.desired, plan)),
        issues=plan.issues,
        deployed_revision=_deployed(s, plan, fence),
    )


def _in_progress(
    s: _Sync,
    plan: Plan,
    observed: ObservedState,
    fence: Fence,
    checks: Sequence[CheckResult],
) -> TargetResult:
    """A pending marker while an apply holds the lock: a command is running, not lost."""
    message = (
        "another apply holds the VM lock: the pending command is running now, not "
        "interrupted; check again later"
    )
    issues = tuple(i for i in plan.issues if i.reason != COMMAND_OUTCOME_UNKNOWN)
    plan = replace(plan, issues=(*issues, PlanIssue(APPLY_IN_PROGRESS, message, False)))
    result = _report(s, plan, observed, fence, checks)
    return replace(result, error=EngineError(APPLY_IN_PROGRESS, message, retryable=True))


def _deployed(s: _Sync, plan: Plan, fence: Fence) -> str | None:
    """`revision` when the VM matches it; else what the VM's fence record says."""
    return s.revision if plan.in_sync else fence.deployed_revision


async def _verify(
    s: _Sync, plan: Plan, before: ObservedState, applied: ApplyResult
) -> TargetResult:
    desired = s.desired
    error = None
    if applied.error is not None:
        e = applied.error
        error = EngineError(e.reason, e.message, e.retryable)
    # Health reads unit states and the release link: look again only if the apply may
    # have moved them (or did not complete, so the VM's state is not known).
    need_observe = not applied.completed or any(step.kind in _LIVE for step in plan.steps)
    has_checks = bool(desired.health_checks)
    restarted = any(o.ok and o.kind in _STARTS for o in applied.outcomes)
    try:
        observed, checks = await s.look(observe=need_observe, health=has_checks)
        deadline = time.monotonic() + s.opts.settle_seconds
        while restarted and _unsettled(desired, observed, checks) and time.monotonic() < deadline:
            await asyncio.sleep(s.opts.settle_interval)
            observed, checks = await s.look(observe=need_observe, health=has_checks)
        after = s.planned(observed) if observed is not None else None
    except (TransportError, MalformedOutput, _Failed) as exc:
        why = _error_of(exc)
        return s.result(
            plan=plan,
            steps=applied.outcomes,
            applied=True,
            sync=SyncStatus.UNKNOWN,
            health=Assessment(Health.UNKNOWN, f"cannot check after the apply: {why.message}"),
            error=error or why,
        )
    if observed is not None and after is not None:
        final, fence = after
        deployed = _deployed(s, final, fence)
    else:
        # Every step succeeded and nothing here depends on live state: the VM is as
        # planned, except for what the plan left alone (orphans, non-blocking issues).
        final = Plan(issues=plan.issues, orphans=plan.orphans)
        deployed = s.revision if final.in_sync else None
        observed = before
    return s.result(
        plan=plan,
        steps=applied.outcomes,
        applied=True,
        sync=final.sync_status,
        health=assess_health(desired, observed, checks),
        checks=tuple(checks),
        resources=tuple(resource_statuses(desired, final)),
        issues=final.issues,
        deployed_revision=deployed,
        error=error,
    )


def _unsettled(
    desired: DesiredState, observed: ObservedState | None, checks: Sequence[CheckResult]
) -> bool:
    if any(c.ok is not True for c in checks):
        return True
    if observed is None:
        return False
    return assess_health(desired, observed, checks).health == Health.PROGRESSING


def _error_of(exc: Exception) -> EngineError:
    if isinstance(exc, _Failed):
        return exc.error
    if isinstance(exc, TransportError):
        return EngineError(exc.reason, exc.message, exc.retryable)
    return EngineError(MALFORMED_OUTPUT, str(exc))
