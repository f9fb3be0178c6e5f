"""Apply a plan on one VM: all its steps in ONE SSH command, under the VM lock.

Why one command: a sync costs a round trip per command, and one command is also the
natural unit of the lock (a flock held by that command's shell, released by the kernel
whatever kills it) and of the fence check (made under that lock, just before the first
change). Contents and the ops go as one tar stream on stdin; nothing reaches the VM as
script text, and the command line has the same size for any plan.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from vmgitops.executor.ops import compile_steps, parse_crash_point, stage_tar
from vmgitops.executor.outcome import (
    ApplyError,
    ApplyResult,
    Scrubber,
    read_run,
    unknown_outcomes,
)
from vmgitops.manifest.vmpaths import STATE_ROOT
from vmgitops.plan.plan import Plan
from vmgitops.transport.base import Runner
from vmgitops.transport.errors import TransportError

#: "<namespace>_<name>": "_" appears in neither, so the key names one app unambiguously.
APP_KEY = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?_[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")

#: Exit status of a process that the crash hook killed (as SIGKILL would).
CRASH_EXIT = 137


@dataclass(frozen=True)
class ApplyOptions:
    #: Where the per-app state directories and the VM lock live (tests use a temp dir).
    state_root: str = STATE_ROOT
    #: Seconds to wait for another applier's lock before giving up (LockHeld).
    lock_wait: float = 30.0
    #: Test hook (see ops.parse_crash_point): the apply, and this process, die there.
    crash_at: str | None = None


def make_app_key(namespace: str, name: str) -> str:
    """The key of an application's state directory on a VM."""
    key = f"{namespace}_{name}"
    if not APP_KEY.fullmatch(key):
        raise ValueError(f"{key!r} is not a valid app key (namespace_name)")
    return key


async def apply_plan(
    runner: Runner,
    plan: Plan,
    *,
    app_key: str,
    generation: int,
    revision: str,
    expected_serial: int,
    sensitive: Iterable[bytes] = (),
    options: ApplyOptions | None = None,
) -> ApplyResult:
    """Run `plan` on the VM behind `runner`; one SSH command, outcomes per step.

    `expected_serial` is the fence serial of the observation the plan was made from
    (0 when the VM had none); `sensitive` are contents that must never appear in a
    message. A plan with a blocking issue is refused here: it must not be applied.
    """
    opts = options or ApplyOptions()
    if plan.blocked:
        raise ValueError("a plan with a blocking issue is never applied")
    if not APP_KEY.fullmatch(app_key):
        raise ValueError(f"{app_key!r} is not a valid app key (namespace_name)")
    if generation < 0:
        raise ValueError("generation must not be negative")
    if not plan.steps:
        return ApplyResult(())
    crash = parse_crash_point(opts.crash_at) if opts.crash_at else None
    state_dir = f"{opts.state_root}/{app_key}"
    batch = compile_steps(plan.steps, state_dir=state_dir, crash=crash)
    argv = batch.argv(
        state_root=opts.state_root,
        state_dir=state_dir,
        generation=generation,
        revision=revision,
        expected_serial=expected_serial,
        lock_wait=opts.lock_wait,
    )
    stdin = stage_tar(batch)
    if crash is not None and crash.where == "upload":
        stdin = stdin[: len(stdin) // 2]
    scrub = Scrubber(sensitive)
    try:
        result = await runner.run(argv, stdin=stdin, timeout=batch.timeout + opts.lock_wait)
    except TransportError as exc:
        why = f"the apply command's outcome is unknown: {exc.reason}"
        return ApplyResult(
            unknown_outcomes(plan.steps, why),
            ApplyError(exc.reason, scrub(exc.message), exc.retryable),
        )
    run = read_run(result.stdout, result.stderr, result.exit_status, plan.steps, batch, scrub)
    if crash is not None and (run.crashed or crash.where == "upload"):
        _die(opts.crash_at or "")
    return ApplyResult(run.outcomes, run.error, run.serial)


def _die(point: str) -> None:
    """The crash hook: end this process at once, as SIGKILL would (no cleanup at all)."""
    sys.stderr.write(f"vmgitops: crash hook: dying at {point}\n")
    sys.stderr.flush()
    os._exit(CRASH_EXIT)
