"""`vmgitops approve PROMOTION [--by WHO]`: approve a Promotion that waits for approval.

Sets the annotation vmgitops.io/approved-by=<who> (default: --by, else the kubeconfig
context's user, else your login name); the operator records who and when in the
Promotion's status and goes on. The operator itself never approves.

This module also adds the promotion sections to `vmgitops status`: pipelines (each
stage's revision, hold and what it waits for), pending approvals (with the command that
approves each) and promotions in progress.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from vmgitops.api import meta
from vmgitops.cli import cmd_status
from vmgitops.cli.cmd_promote import _api, get_promotion
from vmgitops.cli.cmd_status import StatusQuery, new_table, styled
from vmgitops.cli.common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    add_command,
    add_common_options,
    age,
    api_errors,
    connect,
    dump,
    guarded,
    short_sha,
)
from vmgitops.promotion.cliops import (
    approval_patch,
    approval_refusal,
    approvals,
    approved_by,
    in_progress,
    involves,
    pipeline_row,
)

PROG = "vmgitops approve"

EPILOG = f"""\
examples:
  vmgitops status -n shop                       lists the promotions waiting for approval
  vmgitops approve web-staging-to-web-prod-x7k2p -n shop
  vmgitops approve web-prod-3f2a1c9 --by alice -n shop

{EXIT_CODES_HELP}"""


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "approve",
        help="approve a Promotion waiting for approval",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=EPILOG,
    )
    p.add_argument("promotion", metavar="PROMOTION", help="the Promotion's name")
    p.add_argument("--by", metavar="WHO", help="who approves (default: the kubeconfig user)")
    add_common_options(p, run)


def _who(by: str | None, kubeconfig: str | None, context: str | None) -> str:
    if by and by.strip():
        return by.strip()
    try:
        from kubernetes import config as k8s_config

        config: Any = k8s_config
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
        if context:
            active = next((c for c in contexts if c.get("name") == context), active)
        user = ((active or {}).get("context") or {}).get("user")
        if user:
            return str(user)
    except Exception:  # noqa: S110 - in-cluster or no kubeconfig: fall back below
        pass
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@guarded(PROG)
def run(args: argparse.Namespace) -> int:
    cluster = connect(args)
    name = args.promotion
    obj = get_promotion(cluster, name)
    refusal = approval_refusal(obj)
    if refusal:
        raise CliError(refusal, EXIT_FAILED)
    say = sys.stdout if args.output == "text" else sys.stderr
    already = approved_by(obj)
    if already:
        print(f"promotion.vmgitops.io/{name} was already approved by {already}", file=say)
    else:
        who = _who(args.by, args.kubeconfig, getattr(args, "context", None))
        with api_errors(f"approve Promotion {cluster.namespace}/{name}", cluster):
            obj = _api(cluster).patch_namespaced_custom_object(
                meta.GROUP,
                meta.VERSION,
                cluster.namespace,
                meta.PROMOTION.plural,
                name,
                approval_patch(who),
            )
        required = ((obj.get("spec") or {}).get("approval") or {}).get("required") is True
        note = "" if required else " (it does not require approval)"
        print(f"promotion.vmgitops.io/{name} approved by {who}{note}", file=say)
    if args.output != "text":
        dump(obj, args.output)
    return EXIT_OK


# -- sections of `vmgitops status` ------------------------------------------------------


def _flow(row: dict[str, Any]) -> str:
    return f"{row['from']} -> {', '.join(row['to'])}"


class PipelinesSection:
    """Every PromotionPipeline (with APP: those that have it as a stage)."""

    key = "pipelines"

    async def collect(self, query: StatusQuery) -> Any | None:
        pipes = await query.objects(meta.PIPELINE)
        if query.app is not None:
            pipes = [
                p
                for p in pipes
                if any(
                    s.get("name") == query.app for s in (p.get("spec") or {}).get("stages") or []
                )
            ]
        return [pipeline_row(p) for p in pipes] or None

    def render(self, data: Any, console: Console, query: StatusQuery) -> None:
        table = new_table("Pipelines", ["PIPELINE", "STAGE", "REVISION", "LAST PROMOTION", "STATE"])
        for p in data:
            first = True
            for s in p["stages"]:
                state = Text()
                if s["hold"]:
                    state.append("HELD ", style="red bold")
                    state.append(f"{s['hold'].get('reason')}: {s['hold'].get('message', '')}")
                elif s["waiting"]:
                    state.append(f"{s['waiting'].get('reason')}: ", style="yellow")
                    state.append(str(s["waiting"].get("message", "")))
                last = Text(s["promotion"] or "")
                if s["phase"]:
                    last.append(" ")
                    last.append_text(styled(s["phase"]))
                name = p["name"] if first else ""
                if first and query.namespace is None:
                    name = f"{p['namespace']}/{p['name']}"
                table.add_row(name, s["name"], short_sha(s["revision"]), last, state)
                first = False
        console.print(table)


class ApprovalsSection:
    """Promotions waiting for approval, with the command that approves each."""

    key = "pendingApprovals"

    async def collect(self, query: StatusQuery) -> Any | None:
        promos = await query.objects(meta.PROMOTION)
        if query.app is not None:
            promos = [p for p in promos if involves(p, query.app)]
        return approvals(promos) or None

    def render(self, data: Any, console: Console, query: StatusQuery) -> None:
        table = new_table(
            "Pending approvals", ["PROMOTION", "REVISION", "FLOW", "WAITING", "APPROVE WITH"]
        )
        for r in data:
            table.add_row(
                r["name"], short_sha(r["revision"]), _flow(r), age(r["startedAt"]), r["approve"]
            )
        console.print(table)


class PromotionsSection:
    """Promotions in progress (pending, promoting, verifying)."""

    key = "promotions"

    async def collect(self, query: StatusQuery) -> Any | None:
        promos = await query.objects(meta.PROMOTION)
        if query.app is not None:
            promos = [p for p in promos if involves(p, query.app)]
        return in_progress(promos) or None

    def render(self, data: Any, console: Console, query: StatusQuery) -> None:
        table = new_table(
            "Promotions in progress", ["PROMOTION", "PHASE", "REVISION", "FLOW", "MESSAGE"]
        )
        for r in data:
            phase = styled(r["phase"])
            if r["reason"]:
                phase.append(f" {r['reason']}")
            table.add_row(r["name"], phase, short_sha(r["revision"]), _flow(r), r["message"])
        console.print(table)


cmd_status.register_section(PipelinesSection(), before="targets")
cmd_status.register_section(ApprovalsSection(), before="targets")
cmd_status.register_section(PromotionsSection(), before="targets")
