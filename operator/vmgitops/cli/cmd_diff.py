"""`vmgitops diff APP [--target T]`: what a sync would change, VM by VM, as unified diffs.

Runs the operator's own drift check from where you are: reads the VMApplication, the
targets it selects and their credential Secrets through the API, resolves and checks out
the Git revision, connects to each VM over SSH (host keys verified as the operator
does) and plans the sync. Nothing is changed: not the VMs, not the cluster.

You need what the operator has: `get` on the VMApplication, its targets and the Secrets
they name, network access to Git and to the VMs (on their SSH port).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text

from vmgitops.api import meta
from vmgitops.cli.common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    Cluster,
    add_app_argument,
    add_command,
    add_common_options,
    api_errors,
    dump,
    get_application,
    guarded,
    on_cluster,
    output_console,
    short_sha,
)

PROG = "vmgitops diff"
#: VMs observed at once.
CONCURRENCY = 8

EPILOG = f"""\
examples:
  vmgitops diff web-staging -n shop                   every VM the application selects
  vmgitops diff web-prod -n shop --target vm3         one VM
  vmgitops diff web-prod -n shop --revision 1a2b3c4   what promoting that commit would do
  vmgitops diff web-staging -n shop -o json           for a script (diffs included)

{EXIT_CODES_HELP}"""


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "diff",
        help="what a sync would change on each VM, as unified diffs (changes nothing)",
        description=__doc__,
        epilog=EPILOG,
    )
    add_app_argument(p)
    p.add_argument(
        "--target",
        "-t",
        action="append",
        default=[],
        metavar="NAME",
        help="only this VirtualMachineTarget (repeatable); default: every selected target",
    )
    p.add_argument(
        "--revision",
        metavar="REV",
        help="compare with this branch, tag or commit instead of spec.source.targetRevision",
    )
    p.add_argument(
        "--show-bookkeeping",
        action="store_true",
        help="also show the steps that record the operator's inventory on the VM",
    )
    add_common_options(p, run)


# -- what the command found, per target ----------------------------------------------------


@dataclass
class TargetDiff:
    name: str
    address: str
    sync: str = "Unknown"
    health: str = "Unknown"
    health_message: str = ""
    #: (kind, description, diff) per step of the plan.
    steps: list[tuple[str, str, str]] = field(default_factory=list)
    issues: list[tuple[str, str, bool]] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    #: "Reason: message" when the VM could not be observed.
    error: str = ""

    @property
    def differs(self) -> bool:
        return not self.error and self.sync != "Synced"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "sync": self.sync,
            "health": {"status": self.health, "message": self.health_message},
            "steps": [{"kind": k, "description": d, "diff": x} for k, d, x in self.steps],
            "issues": [{"reason": r, "message": m, "blocking": b} for r, m, b in self.issues],
            "orphans": list(self.orphans),
            "error": self.error or None,
        }


def from_result(name: str, address: str, result: Any) -> TargetDiff:
    """A TargetDiff from the engine's TargetResult (plan, health, issues, error)."""
    out = TargetDiff(name=name, address=address)
    out.sync = str(result.sync)
    out.health = str(result.health.health)
    out.health_message = str(result.health.message or "")
    if result.error is not None:
        out.error = f"{result.error.reason}: {result.error.message}"
    plan = result.plan
    if plan is not None:
        out.steps = [(str(s.kind), s.describe(), s.diff) for s in plan.steps]
        out.issues = [(i.reason, i.message, i.blocking) for i in plan.issues]
        out.orphans = list(plan.orphans)
    return out


# -- text output ----------------------------------------------------------------------------

_LINE_STYLES = (("+++", "bold"), ("---", "bold"), ("@@", "cyan"), ("+", "green"), ("-", "red"))


def diff_text(diff: str) -> Text:
    """A unified diff, coloured by line (on a terminal; plain text in a pipe)."""
    text = Text()
    for line in diff.splitlines(keepends=True):
        style = next((s for prefix, s in _LINE_STYLES if line.startswith(prefix)), "")
        text.append(line, style=style)
    if diff and not diff.endswith("\n"):
        text.append("\n")
    return text


BOOKKEEPING = ("WriteInventory",)


def render_target(d: TargetDiff, revision: str, *, bookkeeping: bool) -> Text:
    where = f"{d.name} ({d.address})"
    out = Text()
    if d.error:
        out.append(f"=== {where}: not observed: {d.error}\n", style="bold red")
        return out
    steps = [s for s in d.steps if bookkeeping or s[0] not in BOOKKEEPING]
    health = "" if d.health == "Healthy" else f"; health {d.health}"
    if d.health_message and d.health != "Healthy":
        health += f" ({d.health_message})"
    if not d.differs:
        out.append(f"=== {where}: Synced at {short_sha(revision)}{health}\n", style="bold green")
        return out
    head = f"=== {where}: OutOfSync, {len(steps)} step(s) to reach {short_sha(revision)}{health}\n"
    out.append(head, style="bold yellow")
    for i, (_kind, description, diff) in enumerate(steps, 1):
        out.append(f"# {i}. {description}\n", style="bold")
        if diff:
            out.append_text(diff_text(diff))
    for reason, message, blocking in d.issues:
        verb = "blocks the sync" if blocking else "warning"
        out.append(f"! {reason} ({verb}): {message}\n", style="red" if blocking else "yellow")
    for orphan in d.orphans:
        out.append(f"~ would prune {orphan} (prune is off, so it stays)\n", style="dim")
    return out


# -- the command --------------------------------------------------------------------------


@dataclass
class Inputs:
    """What the diff needs from the cluster, read once."""

    app: dict[str, Any]
    targets: list[dict[str, Any]]
    selected: list[dict[str, Any]]
    secrets: dict[tuple[str, str], dict[str, Any] | None]


async def read_inputs(cluster: Cluster, name: str, only: Sequence[str]) -> Inputs:
    from vmgitops.cli.cmd_status import selects
    from vmgitops.reconcile.target_probe import bastion_name, referenced_secrets

    app = await get_application(cluster, name)
    ns = cluster.namespace
    kube = cluster.kube()
    with api_errors(f"list VirtualMachineTargets in {ns}", cluster):
        targets: list[dict[str, Any]] = await kube.list(meta.TARGET, ns)
    targets.sort(key=lambda t: str(t["metadata"]["name"]))
    selected = [t for t in targets if selects(app, t)]
    if only:
        names = {str(t["metadata"]["name"]) for t in selected}
        missing = [t for t in only if t not in names]
        if missing:
            known = ", ".join(sorted(names)) or "none"
            raise CliError(
                f"--target {', '.join(missing)}: not selected by {name}'s destination.selector "
                f"in namespace {ns} (selected: {known})",
                EXIT_USAGE,
            )
        selected = [t for t in selected if t["metadata"]["name"] in only]
    by_name = {str(t["metadata"]["name"]): t for t in targets}
    wanted: set[str] = set()
    for t in selected:
        hop: Mapping[str, Any] | None = t
        for _ in range(8):  # the target and its bastion chain (bounded like the operator's)
            if hop is None:
                break
            wanted.update(referenced_secrets(hop.get("spec") or {}))
            hop = by_name.get(bastion_name(hop.get("spec") or {}))
    git_ref = ((app.get("spec") or {}).get("source") or {}).get("credentials") or {}
    git_secret = str((git_ref.get("secretRef") or {}).get("name") or "")
    if git_secret:
        wanted.add(git_secret)
    secrets: dict[tuple[str, str], dict[str, Any] | None] = {}
    for secret in sorted(wanted):
        with api_errors(
            f"read Secret {ns}/{secret} (diff connects with the same credentials as the operator)",
            cluster,
        ):
            secrets[(ns, secret)] = await kube.get_secret(ns, secret)
    return Inputs(app=app, targets=targets, selected=selected, secrets=secrets)


async def load_revision(
    inputs: Inputs, namespace: str, revision_override: str | None
) -> tuple[str, Any]:
    """Resolves the revision and loads the app folder at it: (commit, LoadedApp)."""
    from vmgitops.api.application import VMApplicationSpec
    from vmgitops.manifest import ManifestError, load_app
    from vmgitops.source import GitSource
    from vmgitops.source.errors import SourceError

    try:
        spec = VMApplicationSpec.model_validate(inputs.app.get("spec") or {})
    except ValueError as exc:
        raise CliError(f"the VMApplication's spec is not valid: {exc}", EXIT_USAGE) from None
    src = spec.source
    creds = None
    if src.credentials is not None:
        creds = inputs.secrets.get((namespace, src.credentials.secret_ref.name))
        if creds is None:
            raise CliError(
                f"Secret {namespace}/{src.credentials.secret_ref.name} "
                "(spec.source.credentials) does not exist",
                EXIT_UNAVAILABLE,
            )
    source = GitSource()
    try:
        wanted = revision_override or src.target_revision
        resolved = await source.resolve(src.repo_url, wanted, creds)
        folder = await source.checkout(src.repo_url, resolved.commit, src.path, creds)
        app = await asyncio.to_thread(load_app, folder)
    except SourceError as exc:
        raise CliError(f"Git: {exc.reason}: {exc}", EXIT_UNAVAILABLE) from None
    except ManifestError as exc:
        raise CliError(
            f"the app folder {src.path} at {short_sha(resolved.commit)} is invalid: "
            f"{exc.reason}: {exc} (check it with `vmgitops render FOLDER`)",
            EXIT_FAILED,
        ) from None
    finally:
        source.close()
    return resolved.commit, app


async def observe_all(inputs: Inputs, namespace: str, commit: str, loaded: Any) -> list[TargetDiff]:
    """The operator's drift check on every selected VM, a few at a time."""
    from vmgitops import settings
    from vmgitops.api.application import VMApplicationSpec
    from vmgitops.engine import observe_target
    from vmgitops.manifest.render import TargetInfo
    from vmgitops.reconcile.app_context import AppContext
    from vmgitops.reconcile.target_probe import connection_config
    from vmgitops.transport import ConnectionPool, KeyCache, Timeouts, TransportError

    spec = VMApplicationSpec.model_validate(inputs.app.get("spec") or {})
    automated = spec.sync_policy.automated if spec.sync_policy else None
    m = inputs.app["metadata"]
    ctx = AppContext(
        namespace,
        str(m["name"]),
        int(m.get("generation") or 0),
        commit,
        loaded,
        dict(spec.parameters),
        prune=bool(automated and automated.prune),
    )
    s = settings.current()
    timeouts = Timeouts(connect=s.connect_timeout)
    keys = KeyCache()
    by_name = {str(t["metadata"]["name"]): t for t in inputs.targets}
    sem = asyncio.Semaphore(CONCURRENCY)

    def secret(ns: str, name: str) -> Mapping[str, Any] | None:
        return inputs.secrets.get((ns, name))

    def target(ns: str, name: str) -> Mapping[str, Any] | None:
        return by_name.get(name) if ns == namespace else None

    async with ConnectionPool() as pool:

        async def one(t: Mapping[str, Any]) -> TargetDiff:
            name = str(t["metadata"]["name"])
            tspec = t.get("spec") or {}
            address = str(tspec.get("address") or "")
            if tspec.get("port") not in (None, 22):
                address += f":{tspec.get('port')}"
            try:
                config = connection_config(
                    t, secrets=secret, targets=target, key_cache=keys, timeouts=timeouts
                )
            except TransportError as exc:
                return TargetDiff(name, address, error=f"{exc.reason}: {exc.message}")
            except ValueError as exc:
                return TargetDiff(name, address, error=f"InvalidSpec: {exc}")
            info = TargetInfo(
                name=name,
                address=str(tspec.get("address") or ""),
                labels=dict((t.get("metadata") or {}).get("labels") or {}),
            )
            facts = (t.get("status") or {}).get("facts") or {}
            async with sem:
                result = await observe_target(
                    pool.runner(config),
                    app_key=ctx.app_key,
                    revision=commit,
                    app=loaded,
                    params=ctx.params,
                    target=info,
                    facts=facts,
                    prune=ctx.prune,
                )
            return from_result(name, address, result)

        return list(await asyncio.gather(*(one(t) for t in inputs.selected)))


@guarded(PROG)
def run(args: argparse.Namespace) -> int:
    return on_cluster(args, lambda cluster: _diff(cluster, args))


async def _diff(cluster: Cluster, args: argparse.Namespace) -> int:
    ns = cluster.namespace
    inputs = await read_inputs(cluster, args.app, args.target)
    if not inputs.selected:
        raise CliError(
            f"{args.app}'s destination.selector matches no VirtualMachineTarget in {ns} "
            "(kubectl get vmt --show-labels to compare)",
            EXIT_USAGE,
        )
    commit, loaded = await load_revision(inputs, ns, args.revision)
    diffs = await observe_all(inputs, ns, commit, loaded)
    if args.output == "text":
        with output_console() as console:
            for d in diffs:
                console.print(render_target(d, commit, bookkeeping=args.show_bookkeeping), end="")
        differ = sum(1 for d in diffs if d.differs)
        failed = sum(1 for d in diffs if d.error)
        line = f"{differ} of {len(diffs)} target(s) differ from {short_sha(commit)}"
        if failed:
            line += f"; {failed} could not be observed"
        print(line, file=sys.stderr)
    else:
        dump(
            {
                "namespace": ns,
                "application": args.app,
                "revision": commit,
                "targets": [d.to_dict() for d in diffs],
            },
            args.output,
        )
    if any(d.error for d in diffs):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED if any(d.differs for d in diffs) else EXIT_OK
