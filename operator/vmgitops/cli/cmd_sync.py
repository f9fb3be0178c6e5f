"""`vmgitops sync APP [--wait]`: ask the operator to sync an application now.

Sets the annotation `vmgitops.io/sync` on the VMApplication (also without
`syncPolicy.automated`); the operator fetches Git, rolls the revision out in batches and
removes the annotation when it is done. With --wait, progress is shown per batch from
`status.operation` until the operation ends.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vmgitops.api import meta
from vmgitops.api.base import format_time
from vmgitops.cli.common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    CliError,
    Cluster,
    add_app_argument,
    add_command,
    add_common_options,
    add_wait_options,
    api_errors,
    condition,
    dump,
    fail,
    get_application,
    guarded,
    on_cluster,
    parse_timeout,
    short_sha,
    wait_until,
)

PROG = "vmgitops sync"
SUCCEEDED, FAILED, RUNNING = "Succeeded", "Failed", "Running"
#: After this long with the annotation still in place, say that the operator may be down.
PICKUP_HINT_AFTER = 30.0

EPILOG = f"""\
examples:
  vmgitops sync web-staging -n shop                 ask for a sync and return
  vmgitops sync web-staging -n shop --wait          follow it batch by batch
  vmgitops sync web-prod -n shop --wait --timeout 30m -o json

{EXIT_CODES_HELP}"""


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "sync",
        help="sync an application now (also without automated sync); --wait follows it",
        description=__doc__,
        epilog=EPILOG,
    )
    add_app_argument(p)
    add_wait_options(
        p,
        wait="follow the operation until it Succeeds or Fails",
        timeout="10m",
        timeout_help="with --wait: give up after this long (e.g. 90s, 10m; default 10m); exit 4",
    )
    add_common_options(p, run)


@dataclass(frozen=True)
class OpView:
    """status.operation reduced to what the progress display and the exit code need."""

    phase: str
    revision: str
    started_at: str
    finished_at: str
    batch: int
    batches: int
    succeeded: int
    failed: int
    pending: int
    message: str

    @classmethod
    def of(cls, app: Mapping[str, Any]) -> OpView | None:
        op = (app.get("status") or {}).get("operation") or {}
        if not op:
            return None
        b, t = op.get("batches") or {}, op.get("targets") or {}
        return cls(
            phase=str(op.get("phase") or ""),
            revision=str(op.get("revision") or ""),
            started_at=str(op.get("startedAt") or ""),
            finished_at=str(op.get("finishedAt") or ""),
            batch=int(b.get("current") or 0),
            batches=int(b.get("total") or 0),
            succeeded=int(t.get("succeeded") or 0),
            failed=int(t.get("failed") or 0),
            pending=int(t.get("pending") or 0),
            message=str(op.get("message") or ""),
        )

    @property
    def identity(self) -> tuple[str, str]:
        return (self.started_at, self.finished_at)

    @property
    def done(self) -> bool:
        return self.phase in (SUCCEEDED, FAILED)

    @property
    def total_targets(self) -> int:
        return self.succeeded + self.failed + self.pending


def refusal(app: Mapping[str, Any]) -> str | None:
    """Why the operator would not sync this application now, or None."""
    spec = app.get("spec") or {}
    if spec.get("paused"):
        return (
            "spec.paused is true; unpause it first "
            '(kubectl patch vmapp NAME --type merge -p \'{"spec":{"paused":false}}\')'
        )
    if spec.get("managementPolicy") == "ObserveOnly":
        return (
            "spec.managementPolicy is ObserveOnly: the operator never changes its VMs; set it "
            "to Full to sync"
        )
    return None


def outcome(before: OpView | None, app: Mapping[str, Any]) -> tuple[str, OpView | None]:
    """Where the request stands: "pending" (annotation still there), "running", "done",
    or "refused" (the operator handled the request but started no operation)."""
    annotations = (app.get("metadata") or {}).get("annotations") or {}
    op = OpView.of(app)
    if meta.ANNOTATION_SYNC in annotations:
        return ("running" if op is not None and op.phase == RUNNING else "pending"), op
    if op is None:
        return "refused", None
    if not op.done:
        return "running", op
    if before is not None and before.done and op.identity == before.identity:
        return "refused", op
    return "done", op


def why_not(app: Mapping[str, Any]) -> str:
    """The operator's own explanation when it did not start a sync."""
    ready = condition(app, "Ready")
    if ready.get("status") == "False" and ready.get("reason") not in (None, "NotReady"):
        return f"{ready.get('reason')}: {ready.get('message') or ''}"
    health = (app.get("status") or {}).get("health") or {}
    if health.get("message"):
        return f"health {health.get('status')}: {health.get('message')}"
    return "see `vmgitops status APP` and the operator's log"


class Reporter:
    """Progress per batch: a live bar on a terminal, one line per change otherwise."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self.console, self.quiet = console, quiet
        self.progress: Progress | None = None
        self.batch_task: Any = None
        self.target_task: Any = None
        self.last: OpView | None = None

    def __enter__(self) -> Reporter:
        if not self.quiet and self.console.is_terminal:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def line(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    def update(self, op: OpView) -> None:
        last, self.last = self.last, op
        if self.progress is not None:
            if self.batch_task is None:
                self.batch_task = self.progress.add_task("batches", total=max(op.batches, 1))
                self.target_task = self.progress.add_task("targets", total=max(op.total_targets, 1))
            done_batches = op.batch if op.done else max(op.batch - 1, 0)
            self.progress.update(self.batch_task, completed=done_batches, total=max(op.batches, 1))
            self.progress.update(
                self.target_task,
                completed=op.succeeded + op.failed,
                total=max(op.total_targets, 1),
                description=f"targets ({op.failed} failed)" if op.failed else "targets",
            )
        if last is None or (last.batch, last.succeeded, last.failed, last.phase) != (
            op.batch,
            op.succeeded,
            op.failed,
            op.phase,
        ):
            self.line(
                f"{op.phase}: batch {op.batch}/{op.batches}, targets {op.succeeded} succeeded, "
                f"{op.failed} failed, {op.pending} pending"
                + (f" ({op.message})" if op.message and op.done else "")
            )


async def request_sync(cluster: Cluster, name: str) -> None:
    value = f"{format_time(datetime.now(UTC))} vmgitops-cli"
    with api_errors(f"annotate VMApplication {cluster.namespace}/{name}", cluster):
        await cluster.kube().patch(
            meta.APPLICATION,
            cluster.namespace,
            name,
            {"metadata": {"annotations": {meta.ANNOTATION_SYNC: value}}},
        )


async def follow(
    cluster: Cluster,
    name: str,
    before: OpView | None,
    *,
    limit: float,
    interval: float,
    reporter: Reporter,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[str, Mapping[str, Any]]:
    """Polls the application until the request ends: ("done" | "refused" | "timeout", app)."""
    hinted = False
    app: Mapping[str, Any] = {}
    state = ""

    async def check() -> tuple[str, Mapping[str, Any]] | None:
        nonlocal app, state
        app = await get_application(cluster, name)
        state, op = outcome(before, app)
        if (
            op is not None
            and state in ("running", "done")
            and (before is None or op.identity != before.identity or state == "running")
        ):
            reporter.update(op)
        return (state, app) if state in ("done", "refused") else None

    def waiting(elapsed: float) -> None:
        nonlocal hinted
        if state == "pending" and not hinted and elapsed > PICKUP_HINT_AFTER:
            hinted = True
            reporter.line(
                f"still waiting for the operator to pick up the request after "
                f"{int(elapsed)}s: is it running and watching namespace {cluster.namespace}?"
            )

    found = await wait_until(check, limit=limit, interval=interval, waiting=waiting, clock=clock)
    return found if found is not None else ("timeout", app)


def summary(app: Mapping[str, Any]) -> dict[str, Any]:
    status = app.get("status") or {}
    m = app.get("metadata") or {}
    return {
        "namespace": m.get("namespace"),
        "name": m.get("name"),
        "operation": status.get("operation"),
        "sync": status.get("sync"),
        "health": status.get("health"),
    }


@guarded(PROG)
def run(args: argparse.Namespace) -> int:
    timeout = parse_timeout(args.timeout)
    return on_cluster(args, lambda cluster: _sync(cluster, args, timeout))


async def _sync(cluster: Cluster, args: argparse.Namespace, limit: float) -> int:
    quiet = args.output != "text"
    stream = sys.stderr if quiet else sys.stdout
    # In a pipe, one line per event and never wrapped (scripts and CI logs read it).
    console = Console(file=stream, highlight=False, soft_wrap=not stream.isatty())
    app: Mapping[str, Any] = await get_application(cluster, args.app)
    reason = refusal(app)
    where = f"{cluster.namespace}/{args.app}"
    if reason is not None:
        raise CliError(f"VMApplication {where} will not sync: {reason}", EXIT_USAGE)
    before = OpView.of(app)
    await request_sync(cluster, args.app)
    if not args.wait:
        if not quiet:
            console.print(
                f"sync requested for {where}; follow it with `vmgitops sync {args.app} "
                f"-n {cluster.namespace} --wait` or `vmgitops status {args.app}`"
            )
        else:
            dump(summary(app), args.output)
        return EXIT_OK
    if not quiet:
        console.print(f"sync requested for {where}; waiting for the operator")
    with Reporter(console, quiet) as reporter:
        state, app = await follow(
            cluster, args.app, before, limit=limit, interval=args.interval, reporter=reporter
        )
    op = OpView.of(app)
    if quiet:
        dump(summary(app), args.output)
    if state == "timeout":
        return fail(
            PROG,
            f"timed out after {args.timeout}: the operation is "
            f"{op.phase if op else 'not started'}; it may still finish (vmgitops status "
            f"{args.app} -n {cluster.namespace})",
            EXIT_TIMEOUT,
        )
    if state == "refused" or op is None:
        return fail(PROG, f"the operator did not start a sync: {why_not(app)}", EXIT_FAILED)
    if op.phase == SUCCEEDED:
        if not quiet:
            console.print(f"Succeeded: {op.succeeded} target(s) synced to {short_sha(op.revision)}")
        return EXIT_OK
    return fail(
        PROG,
        f"the sync Failed at {short_sha(op.revision)}: {op.message or why_not(app)}",
        EXIT_FAILED,
    )
