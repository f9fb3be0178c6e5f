"""`vmgitops resolve APP --target NAME --command CMD (--ran | --rerun)`: settle a
CommandOutcomeUnknown.

When an apply stops while a non-idempotent command runs (connection lost, operator
killed), nobody knows whether the command did its work, and the application stops on
that VM until a human who checked it says so:

  --ran     it did its work: record it as done (at its current trigger) without
            running it; it runs again only when its trigger changes
  --rerun   it did not, or running it twice is fine: forget the interrupted run; the
            next apply runs it (`vmgitops sync APP` applies now)

Sets the annotation `vmgitops.io/resolve-command: APP/CMD=ran|rerun` on the
VirtualMachineTarget and waits until the operator has acted on it and removed it; the
operator leaves its answer in `vmgitops.io/resolve-command-result` and in an Event on the
target. Refused (nothing changes) when the target has no pending run of that command.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from typing import Any

from vmgitops.api import meta
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
    dump,
    fail,
    get_application,
    get_object,
    guarded,
    on_cluster,
    parse_timeout,
    wait_until,
)
from vmgitops.plan.resolution import RAN, RERUN, RESOLVED, MalformedResolve, parse_resolve

PROG = "vmgitops resolve"

EPILOG = f"""\
examples:
  vmgitops resolve web-prod -n shop --target web-eu-1 --command migrate --ran
  vmgitops resolve web-prod -n shop --target web-eu-1 --command migrate --rerun
  kubectl -n shop annotate vmt web-eu-1 vmgitops.io/resolve-command=web-prod/migrate=ran

{EXIT_CODES_HELP}"""


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "resolve",
        help="settle a command whose outcome is unknown (CommandOutcomeUnknown)",
        description=__doc__,
        epilog=EPILOG,
    )
    add_app_argument(p)
    p.add_argument("--target", required=True, metavar="NAME", help="the VirtualMachineTarget")
    p.add_argument("--command", required=True, metavar="CMD", help="the command's name")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--ran",
        dest="action",
        action="store_const",
        const=RAN,
        help="it did its work: record it as done without running it",
    )
    action.add_argument(
        "--rerun",
        dest="action",
        action="store_const",
        const=RERUN,
        help="forget the interrupted run: the next apply runs it",
    )
    add_wait_options(
        p,
        wait=None,
        timeout="2m",
        timeout_help="give up waiting for the operator after this long (default 2m); exit 4",
    )
    add_common_options(p, run)


def request_value(app: str, command: str, action: str) -> str:
    """The annotation's value; a CliError (usage) when it would be malformed."""
    value = f"{app}/{command}={action}"
    try:
        parse_resolve(value)
    except MalformedResolve as exc:
        raise CliError(f"{PROG}: {exc}", EXIT_USAGE) from None
    return value


def answer(target: Mapping[str, Any], value: str) -> tuple[str, str] | None:
    """(reason, message) once the operator removed the request and left its result for
    `value`; None while the request is still there (or someone else's result is)."""
    annotations = (target.get("metadata") or {}).get("annotations") or {}
    if meta.ANNOTATION_RESOLVE_COMMAND in annotations:
        return None
    result = str(annotations.get(meta.ANNOTATION_RESOLVE_RESULT) or "")
    prefix = f"{value}: "
    if not result.startswith(prefix):
        return None
    reason, _, message = result[len(prefix) :].partition(": ")
    return reason, message


async def _get_target(cluster: Cluster, name: str) -> dict[str, Any]:
    return await get_object(cluster, meta.TARGET, name)


async def wait_answer(
    cluster: Cluster,
    name: str,
    value: str,
    *,
    limit: float,
    interval: float,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[str, str] | None:
    """Polls the target until the operator answered `value`; None after `limit` seconds."""

    async def check() -> tuple[str, str] | None:
        return answer(await _get_target(cluster, name), value)

    return await wait_until(check, limit=limit, interval=interval, clock=clock)


@guarded(PROG)
def run(args: argparse.Namespace) -> int:
    timeout = parse_timeout(args.timeout)
    value = request_value(args.app, args.command, args.action)
    return on_cluster(args, lambda cluster: _resolve(cluster, args, value, timeout))


async def _resolve(cluster: Cluster, args: argparse.Namespace, value: str, limit: float) -> int:
    quiet = args.output != "text"
    await get_application(cluster, args.app)
    target = await _get_target(cluster, args.target)
    where = f"{cluster.namespace}/{args.target}"
    annotations = (target.get("metadata") or {}).get("annotations") or {}
    waiting = annotations.get(meta.ANNOTATION_RESOLVE_COMMAND)
    if waiting is not None and waiting != value:
        raise CliError(
            f"VirtualMachineTarget {where} already has a request the operator has not acted "
            f"on yet ({meta.ANNOTATION_RESOLVE_COMMAND}={waiting}); wait for it, or remove "
            "it with kubectl annotate",
            EXIT_USAGE,
        )
    patch = {
        "metadata": {
            "annotations": {
                meta.ANNOTATION_RESOLVE_COMMAND: value,
                # A result left by an earlier request must not be read as this one's.
                meta.ANNOTATION_RESOLVE_RESULT: None,
            }
        }
    }
    with api_errors(f"annotate VirtualMachineTarget {where}", cluster):
        await cluster.kube().patch(meta.TARGET, cluster.namespace, args.target, patch)
    if not quiet:
        print(f"{value} requested on {where}; waiting for the operator")
    found = await wait_answer(cluster, args.target, value, limit=limit, interval=args.interval)
    if found is None:
        return fail(
            PROG,
            f"timed out after {args.timeout}: the operator has not acted on "
            f"{meta.ANNOTATION_RESOLVE_COMMAND}={value} yet (it stays set and is acted on "
            f"at the application's next tick); is the operator running and is "
            f"{args.app} able to load its revision?",
            EXIT_TIMEOUT,
        )
    reason, message = found
    if quiet:
        dump({"target": where, "request": value, "reason": reason, "message": message}, args.output)
    if reason != RESOLVED:
        return fail(PROG, f"{reason}: {message}", EXIT_FAILED)
    if not quiet:
        print(f"{reason}: {message}")
        if args.action == RERUN:
            print(f"run `vmgitops sync {args.app} -n {cluster.namespace}` to apply it now")
    return EXIT_OK
