"""`vmgitops rollback APP [ID]`: deploy a revision from the application's history again.

Sets spec.source.targetRevision to the commit of history entry ID (default: the newest
successful deployment of another revision than the one deployed now) and asks for a sync
(annotation vmgitops.io/sync), so that the rollback happens also without automated
sync. The application then stays pinned to that commit: set targetRevision back to a
branch or tag to follow it again.

When the VMApplication is itself managed from Git by Argo CD, Argo CD puts the old
targetRevision back at its next sync: the command warns that the rollback belongs in Git
(it still does what it was asked).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from vmgitops.api import meta
from vmgitops.api.base import format_time
from vmgitops.cli.cmd_sync import OpView, Reporter, follow, refusal, why_not
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
    guarded,
    on_cluster,
    parse_timeout,
    short_sha,
)
from vmgitops.rollout.rollback import NoSuchEntry, managed_by_argo, rollback_entry

PROG = "vmgitops rollback"

EPILOG = f"""\
examples:
  vmgitops rollback web-prod -n shop                the previous successful revision
  vmgitops rollback web-prod 7 -n shop --wait       history entry 7, and follow the rollout
  kubectl -n shop get vmapp web-prod -o jsonpath='{{.status.history}}'   the entries

{EXIT_CODES_HELP}"""


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "rollback",
        help="deploy a previous revision from the application's history",
        description=__doc__,
        epilog=EPILOG,
    )
    add_app_argument(p)
    p.add_argument(
        "id",
        metavar="ID",
        nargs="?",
        type=int,
        help="status.history entry id (default: the previous successful deployment)",
    )
    add_wait_options(
        p,
        wait="follow the rollout until it Succeeds or Fails",
        timeout="10m",
        timeout_help="with --wait: give up after this long (default 10m); exit 4",
    )
    add_common_options(p, run)


def argo_warning(app: Mapping[str, Any], revision: str, where: str) -> str | None:
    """The warning for an application Argo CD manages from Git, or None."""
    evidence = managed_by_argo(app.get("metadata") or {})
    if evidence is None:
        return None
    return (
        f"warning: VMApplication {where} looks managed from Git by Argo CD ({evidence}): "
        "Argo CD puts spec.source.targetRevision back at its next sync. A rollback "
        f"belongs in Git: revert the commit, or set targetRevision to {revision} in the "
        "manifest Argo CD syncs."
    )


@guarded(PROG)
def run(args: argparse.Namespace) -> int:
    timeout = parse_timeout(args.timeout)
    return on_cluster(args, lambda cluster: _rollback(cluster, args, timeout))


async def _rollback(cluster: Cluster, args: argparse.Namespace, limit: float) -> int:
    quiet = args.output != "text"
    console = Console(file=sys.stderr if quiet else sys.stdout, highlight=False)
    where = f"{cluster.namespace}/{args.app}"
    app: Mapping[str, Any] = await get_application(cluster, args.app)
    status = app.get("status") or {}
    current = (status.get("sync") or {}).get("revision")
    try:
        entry = rollback_entry(status.get("history") or [], current, args.id)
    except NoSuchEntry as exc:
        raise CliError(f"VMApplication {where}: {exc}", EXIT_USAGE) from None
    revision = str(entry["revision"])
    reason = refusal(app)
    if reason is not None:
        raise CliError(f"VMApplication {where} will not sync: {reason}", EXIT_USAGE)
    warning = argo_warning(app, revision, where)
    if warning is not None:
        print(warning, file=sys.stderr)
    previous = str(((app.get("spec") or {}).get("source") or {}).get("targetRevision") or "HEAD")
    before = OpView.of(app)
    request = f"{format_time(datetime.now(UTC))} vmgitops-cli rollback to #{entry.get('id')}"
    with api_errors(f"patch VMApplication {where}", cluster):
        await cluster.kube().patch(
            meta.APPLICATION,
            cluster.namespace,
            args.app,
            {
                "metadata": {"annotations": {meta.ANNOTATION_SYNC: request}},
                "spec": {"source": {"targetRevision": revision}},
            },
        )
    result = {
        "namespace": cluster.namespace,
        "name": args.app,
        "historyId": entry.get("id"),
        "revision": revision,
        "previousTargetRevision": previous,
        "deployedAt": entry.get("deployedAt"),
    }
    if not quiet:
        console.print(
            f"{where}: spec.source.targetRevision {previous} -> {short_sha(revision)} "
            f"(history #{entry.get('id')}, deployed {entry.get('deployedAt') or '?'}); sync "
            f"requested. It stays pinned to this commit: set targetRevision back to "
            f"{previous} to follow it again."
        )
    if not args.wait:
        if quiet:
            dump(result, args.output)
        return EXIT_OK
    with Reporter(console, quiet) as reporter:
        state, app = await follow(
            cluster, args.app, before, limit=limit, interval=args.interval, reporter=reporter
        )
    op = OpView.of(app)
    if quiet:
        dump({**result, "operation": (app.get("status") or {}).get("operation")}, args.output)
    if state == "timeout":
        return fail(
            PROG,
            f"timed out after {args.timeout}; the rollback may still finish "
            f"(vmgitops status {args.app} -n {cluster.namespace})",
            EXIT_TIMEOUT,
        )
    if state == "refused" or op is None or op.revision != revision:
        return fail(PROG, f"the operator did not roll back: {why_not(app)}", EXIT_FAILED)
    if op.phase == "Succeeded":
        if not quiet:
            console.print(f"Succeeded: {op.succeeded} target(s) at {short_sha(revision)}")
        return EXIT_OK
    return fail(PROG, f"the rollback Failed: {op.message or why_not(app)}", EXIT_FAILED)
