"""`vmgitops promote --from A --to B [--revision R] [--wait]`: create a Promotion.

The operator does the promotion (soak gate, approval, write, verification, rollback);
this creates the Promotion and, with --wait, follows it until it ends.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from vmgitops.api import meta
from vmgitops.api.units import DurationError, parse_duration
from vmgitops.cli.common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    CliError,
    Cluster,
    add_command,
    add_common_options,
    api_errors,
    connect,
    dump,
    fail,
    guarded,
    short_sha,
)
from vmgitops.promotion.cliops import (
    WaitTimedOut,
    parse_ref,
    phase_of,
    promotion_manifest,
    wait_for,
)

PROG = "vmgitops promote"

EPILOG = f"""\
examples:
  vmgitops promote --from web-staging --to web-prod -n shop
  vmgitops promote --from web-staging --to web-prod --to Application/web-prod-k8s \\
      --revision 3f2a1c9 --require-approval --soak-time 10m --wait -n shop
  vmgitops promote --from web-staging --to web-prod --method GitCommit \\
      --git-repo https://git.example.com/config.git --git-path envs/prod --git-secret git-push

Destinations are VMApplications (NAME) or Argo CD Applications (Application/NAME). The
revision defaults to the one --from is Synced and Healthy at. With --require-approval the
promotion waits for `vmgitops approve NAME`.

{
    EXIT_CODES_HELP.replace("the sync Succeeded", "the promotion Succeeded").replace(
        "the sync Failed, or the diff found differences", "the promotion Failed or RolledBack"
    )
}"""


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "promote",
        help="promote the revision of one application to others (creates a Promotion)",
        description=__doc__,
        epilog=EPILOG,
    )
    p.add_argument("--from", dest="source", required=True, metavar="APP", help="where from")
    p.add_argument(
        "--to",
        dest="to",
        action="append",
        required=True,
        metavar="APP",
        help="a destination (repeatable); Application/NAME for Argo CD",
    )
    p.add_argument(
        "--revision",
        default="",
        help="branch, tag or commit (default: the one --from is Synced and Healthy at)",
    )
    p.add_argument("--require-approval", action="store_true", help="wait for vmgitops approve")
    p.add_argument("--soak-time", metavar="DURATION", help="how long --from must have been healthy")
    p.add_argument("--timeout", metavar="DURATION", help="verification timeout (default 30m)")
    p.add_argument("--method", choices=("Patch", "GitCommit"), default="Patch")
    g = p.add_argument_group("GitCommit")
    g.add_argument("--git-repo", metavar="URL", help="the configuration repository")
    g.add_argument("--git-branch", metavar="BRANCH", help="default main")
    g.add_argument("--git-path", metavar="PATH", help="file or folder of the manifests")
    g.add_argument("--git-key", metavar="KEY", help="dotted key of the revision")
    g.add_argument("--git-secret", metavar="SECRET", help="Secret with push credentials")
    p.add_argument("--no-rollback", action="store_true", help="keep what failed verification")
    p.add_argument("--name", help="the Promotion's name (default: generated)")
    p.add_argument("--wait", action="store_true", help="follow the promotion until it ends")
    p.add_argument(
        "--wait-timeout",
        default="2h",
        metavar="DURATION",
        help="with --wait: give up waiting after this long (default 2h); exit 4",
    )
    add_common_options(p, run)


def _git_commit(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.method != "GitCommit":
        if args.git_repo:
            raise CliError("--git-repo is for --method GitCommit", EXIT_USAGE)
        return None
    if not args.git_repo:
        raise CliError("--method GitCommit needs --git-repo", EXIT_USAGE)
    out: dict[str, Any] = {"repoURL": args.git_repo}
    for key, value in (("branch", args.git_branch), ("path", args.git_path), ("key", args.git_key)):
        if value:
            out[key] = value
    if args.git_secret:
        out["credentials"] = {"secretRef": {"name": args.git_secret}}
    return out


def _duration(value: str | None, flag: str) -> str | None:
    if value is None:
        return None
    try:
        parse_duration(value)
    except DurationError as exc:
        raise CliError(f"{flag}: {exc}", EXIT_USAGE) from None
    return value


def manifest_from(args: argparse.Namespace) -> dict[str, Any]:
    try:
        return promotion_manifest(
            parse_ref(args.source),
            [parse_ref(t) for t in args.to],
            revision=args.revision.strip(),
            approval=args.require_approval,
            soak_time=_duration(args.soak_time, "--soak-time"),
            timeout=_duration(args.timeout, "--timeout"),
            method=args.method,
            git_commit=_git_commit(args),
            rollback=not args.no_rollback,
            name=args.name,
        )
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _api(cluster: Cluster) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(cluster.api_client)


def get_promotion(cluster: Cluster, name: str) -> dict[str, Any]:
    with api_errors(f"get Promotion {cluster.namespace}/{name}", cluster):
        obj: dict[str, Any] = _api(cluster).get_namespaced_custom_object(
            meta.GROUP, meta.VERSION, cluster.namespace, meta.PROMOTION.plural, name
        )
    return obj


def line_of(obj: Mapping[str, Any]) -> str:
    st = obj.get("status") or {}
    name = (obj.get("metadata") or {}).get("name")
    text = f"{name}: {st.get('phase')} ({st.get('reason') or '-'})"
    if st.get("revision"):
        text += f" {short_sha(st['revision'])}"
    return text + (f": {st['message']}" if st.get("message") else "")


@guarded(PROG)
def run(args: argparse.Namespace) -> int:
    manifest = manifest_from(args)
    limit = parse_duration(_duration(args.wait_timeout, "--wait-timeout") or "2h")
    cluster = connect(args)
    with api_errors(f"create a Promotion in {cluster.namespace}", cluster):
        obj: dict[str, Any] = _api(cluster).create_namespaced_custom_object(
            meta.GROUP, meta.VERSION, cluster.namespace, meta.PROMOTION.plural, manifest
        )
    name = obj["metadata"]["name"]
    text = args.output == "text"
    say = sys.stdout if text else sys.stderr
    print(f"promotion.vmgitops.io/{name} created in namespace {cluster.namespace}", file=say)
    if args.wait:
        if args.require_approval:
            print(f"it waits for: vmgitops approve {name} -n {cluster.namespace}", file=say)
        try:
            obj = dict(
                wait_for(
                    lambda: get_promotion(cluster, name),
                    limit,
                    lambda o: print(line_of(o), file=say, flush=True),
                )
            )
        except WaitTimedOut as exc:
            return fail(PROG, f"{name}: {exc}", EXIT_TIMEOUT)
    if not text:
        dump(obj, args.output)
    if not args.wait:
        return EXIT_OK
    phase = phase_of(obj)
    return EXIT_OK if phase is not None and phase.value == "Succeeded" else EXIT_FAILED
