"""`vmgitops status [APP]`: applications and targets as readable tables.

Without APP: every VMApplication and VirtualMachineTarget of the namespace (or of all
namespaces with -A). With APP: that application (source, sync, health, operation,
conditions), the targets it selects with their per-target state, and its history.

The output is a list of sections; each one collects what it needs (through a shared,
caching query) and renders itself. Other kinds add a section with `register_section`,
so `status` grows with the API without this module knowing every kind.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vmgitops.api import meta
from vmgitops.api.meta import KindInfo
from vmgitops.cli.common import (
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Cluster,
    add_command,
    add_common_options,
    age,
    api_errors,
    condition,
    connect,
    dump,
    get_application,
    guarded,
    output_console,
    short_sha,
)

PROG = "vmgitops status"

EPILOG = f"""\
examples:
  vmgitops status -n shop               every application and target in namespace shop
  vmgitops status web-staging -n shop   one application, its targets and history
  vmgitops status -A -o json            everything, for a script

{EXIT_CODES_HELP}"""

#: Colours of the sync and health vocabularies (Argo CD's, so they read the same).
STYLES = {
    "Synced": "green",
    "OutOfSync": "yellow",
    "Healthy": "green",
    "Progressing": "cyan",
    "Suspended": "magenta",
    "Degraded": "red",
    "Missing": "yellow",
    "Unknown": "dim",
    "Succeeded": "green",
    "Running": "cyan",
    "Failed": "red",
    "Terminating": "yellow",
    "True": "green",
    "False": "red",
}


# -- the query every section shares ------------------------------------------------------


@dataclass
class StatusQuery:
    """What `status` was asked, and the objects read so far (each kind listed once)."""

    cluster: Cluster
    #: None: every namespace (-A).
    namespace: str | None
    app: str | None = None
    _lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _app: dict[str, Any] | None = None

    async def objects(self, kind: KindInfo) -> list[dict[str, Any]]:
        """Every object of `kind` in the namespace (or all), sorted by namespace and name."""
        if kind.plural not in self._lists:
            where = self.namespace or "all namespaces"
            with api_errors(f"list {kind.plural} in {where}", self.cluster):
                items = await self.cluster.kube().list(kind, self.namespace)
            items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            self._lists[kind.plural] = items
        return self._lists[kind.plural]

    async def application(self) -> dict[str, Any]:
        """The application named on the command line."""
        assert self.app is not None
        if self._app is None:
            self._app = await get_application(self.cluster, self.app)
        return self._app


class Section(Protocol):
    """One part of the output: a table (or a few lines) and its key in -o json/yaml."""

    key: str

    async def collect(self, query: StatusQuery) -> Any | None:
        """The section's data (JSON-able), or None when it has nothing to say here."""

    def render(self, data: Any, console: Console, query: StatusQuery) -> None:
        """Draws `data` (what collect returned) as tables."""


# -- rows: pure functions of the objects, shared by tables and -o json ----------------------


def _ns_name(obj: Mapping[str, Any]) -> tuple[str, str]:
    m = obj.get("metadata") or {}
    return str(m.get("namespace") or ""), str(m.get("name") or "")


def app_row(app: Mapping[str, Any]) -> dict[str, Any]:
    """One VMApplication as the list shows it."""
    namespace, name = _ns_name(app)
    status = app.get("status") or {}
    sync, health = status.get("sync") or {}, status.get("health") or {}
    op = status.get("operation") or {}
    summary = status.get("summary") or {}
    ready = condition(app, "Ready")
    message = str(health.get("message") or "")
    if ready.get("status") == "False" and ready.get("reason") not in (None, "NotReady"):
        message = f"{ready.get('reason')}: {ready.get('message') or ''}".strip()
    spec = app.get("spec") or {}
    generation = (app.get("metadata") or {}).get("generation")
    if not status:
        message = "no status yet: is the operator running and watching this namespace?"
    elif generation is not None and status.get("observedGeneration") not in (None, generation):
        message = message or "the operator has not acted on the latest spec yet"
    return {
        "namespace": namespace,
        "name": name,
        "sync": str(sync.get("status") or "Unknown"),
        "revision": str(sync.get("revision") or ""),
        "health": str(health.get("status") or "Unknown"),
        "message": message,
        "targets": int(summary.get("targets") or 0),
        "synced": int(summary.get("synced") or 0),
        "healthy": int(summary.get("healthy") or 0),
        "unreachable": int(summary.get("unreachable") or 0),
        "operation": {
            "phase": str(op.get("phase") or ""),
            "revision": str(op.get("revision") or ""),
            "batch": int((op.get("batches") or {}).get("current") or 0),
            "batches": int((op.get("batches") or {}).get("total") or 0),
            "startedAt": op.get("startedAt"),
            "finishedAt": op.get("finishedAt"),
            "message": str(op.get("message") or ""),
        },
        "automated": bool(((spec.get("syncPolicy") or {}).get("automated")) is not None),
        "paused": bool(spec.get("paused")),
    }


def app_detail(app: Mapping[str, Any]) -> dict[str, Any]:
    """One VMApplication in full, for `status APP`."""
    row = app_row(app)
    spec = app.get("spec") or {}
    src = spec.get("source") or {}
    policy = spec.get("syncPolicy") or {}
    automated = policy.get("automated")
    strategy = spec.get("strategy") or {}
    row.update(
        {
            "source": {
                "repoURL": src.get("repoURL"),
                "targetRevision": src.get("targetRevision") or "HEAD",
                "path": src.get("path") or ".",
            },
            "selector": (spec.get("destination") or {}).get("selector") or {},
            "syncPolicy": (
                "automated"
                + "".join(f", {k}" for k in ("prune", "selfHeal") if (automated or {}).get(k))
                if automated is not None
                else "manual"
            ),
            "strategy": str(strategy.get("type") or "Rolling"),
            "managementPolicy": str(spec.get("managementPolicy") or "Full"),
            "conditions": [
                {
                    "type": c.get("type"),
                    "status": c.get("status"),
                    "reason": c.get("reason"),
                    "message": c.get("message") or "",
                    "lastTransitionTime": c.get("lastTransitionTime"),
                }
                for c in (app.get("status") or {}).get("conditions") or []
            ],
        }
    )
    return row


def target_row(target: Mapping[str, Any], app: str | None = None) -> dict[str, Any]:
    """One VirtualMachineTarget; with `app`, that application's entry on it too."""
    namespace, name = _ns_name(target)
    spec, status = target.get("spec") or {}, target.get("status") or {}
    reachable = condition(target, "Reachable")
    facts = status.get("facts") or {}
    apps = list(status.get("applications") or [])
    row: dict[str, Any] = {
        "namespace": namespace,
        "name": name,
        "address": str(spec.get("address") or ""),
        "reachable": str(reachable.get("status") or "Unknown"),
        "reason": str(reachable.get("reason") or ""),
        "message": "" if reachable.get("status") == "True" else str(reachable.get("message") or ""),
        "os": str((facts.get("os") or {}).get("prettyName") or ""),
        "lastProbeTime": status.get("lastProbeTime"),
        "paused": bool(spec.get("paused")),
        "applications": [
            {k: a.get(k) for k in ("name", "sync", "health", "revision", "lastSyncTime", "message")}
            for a in apps
        ],
    }
    if not status:
        row["message"] = "not probed yet: is the operator running and watching this namespace?"
    if app is not None:
        entry: Mapping[str, Any] = next((a for a in apps if a.get("name") == app), {})
        row["app"] = {
            "sync": str(entry.get("sync") or "Unknown"),
            "health": str(entry.get("health") or "Unknown"),
            "revision": str(entry.get("revision") or ""),
            "lastSyncTime": entry.get("lastSyncTime"),
            "message": str(entry.get("message") or ""),
        }
    return row


def selects(app: Mapping[str, Any], target: Mapping[str, Any]) -> bool:
    """Whether the application's destination selector picks the target (same namespace)."""
    from vmgitops.api.common import LabelSelector

    if _ns_name(app)[0] != _ns_name(target)[0]:
        return False
    raw = ((app.get("spec") or {}).get("destination") or {}).get("selector") or {}
    try:
        selector = LabelSelector.model_validate(raw)
    except ValueError:
        return False
    return selector.matches((target.get("metadata") or {}).get("labels") or {})


# -- rendering helpers --------------------------------------------------------------------


def styled(value: str) -> Text:
    return Text(value, style=STYLES.get(value, ""))


def new_table(title: str, columns: Sequence[str]) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
    )
    for col in columns:
        table.add_column(col, overflow="fold" if col == "MESSAGE" else "ellipsis")
    return table


def operation_text(op: Mapping[str, Any]) -> Text:
    phase = str(op.get("phase") or "")
    if not phase:
        return Text("")
    text = styled(phase)
    if op.get("batches"):
        text.append(f" {op.get('batch')}/{op.get('batches')}")
    return text


# -- the sections -------------------------------------------------------------------------


class ApplicationsSection:
    """Every application of the namespace (list view)."""

    key = "applications"

    async def collect(self, query: StatusQuery) -> Any | None:
        if query.app is not None:
            return None
        return [app_row(a) for a in await query.objects(meta.APPLICATION)]

    def render(self, data: Any, console: Console, query: StatusQuery) -> None:
        if not data:
            console.print(f"No VMApplications in {_where(query)}.")
            return
        all_ns = query.namespace is None
        cols = ["NAME", "SYNC", "HEALTH", "REVISION", "TARGETS", "OPERATION", "LAST SYNC"]
        table = new_table("Applications", (["NAMESPACE"] if all_ns else []) + [*cols, "MESSAGE"])
        for r in data:
            targets = f"{r['synced']}/{r['targets']} synced"
            if r["unreachable"]:
                targets += f", {r['unreachable']} unreachable"
            cells: list[Any] = [r["namespace"]] if all_ns else []
            health = styled(r["health"])
            if r["paused"]:
                health.append(" (paused)")
            cells += [
                r["name"],
                styled(r["sync"]),
                health,
                short_sha(r["revision"]),
                targets,
                operation_text(r["operation"]),
                age(r["operation"]["finishedAt"]),
                r["message"],
            ]
            table.add_row(*cells)
        console.print(table)


class TargetsSection:
    """Every target of the namespace; with APP, the targets it selects and their state."""

    key = "targets"

    async def collect(self, query: StatusQuery) -> Any | None:
        targets = await query.objects(meta.TARGET)
        if query.app is None:
            return [target_row(t) for t in targets]
        app = await query.application()
        name = query.app
        chosen = [
            t
            for t in targets
            if selects(app, t)
            or any(a.get("name") == name for a in (t.get("status") or {}).get("applications") or [])
        ]
        return [target_row(t, name) for t in chosen]

    def render(self, data: Any, console: Console, query: StatusQuery) -> None:
        if query.app is not None:
            self._render_for_app(data, console)
            return
        if not data:
            console.print(f"No VirtualMachineTargets in {_where(query)}.")
            return
        all_ns = query.namespace is None
        cols = ["NAME", "ADDRESS", "REACHABLE", "OS", "APPLICATIONS", "LAST PROBE", "MESSAGE"]
        table = new_table("Targets", (["NAMESPACE"] if all_ns else []) + cols)
        for r in data:
            reach = styled(r["reachable"])
            if r["reason"]:
                reach.append(f" {r['reason']}")
            apps = Text()
            for i, a in enumerate(r["applications"]):
                if i:
                    apps.append(", ")
                apps.append(f"{a.get('name')} ")
                apps.append_text(styled(str(a.get("sync") or "Unknown")))
                apps.append("/")
                apps.append_text(styled(str(a.get("health") or "Unknown")))
            cells: list[Any] = [r["namespace"]] if all_ns else []
            cells += [
                r["name"],
                r["address"],
                reach,
                r["os"],
                apps,
                age(r["lastProbeTime"]),
                r["message"],
            ]
            table.add_row(*cells)
        console.print(table)

    @staticmethod
    def _render_for_app(data: Any, console: Console) -> None:
        if not data:
            console.print(
                "No VirtualMachineTarget matches the destination selector "
                "(kubectl get vmt --show-labels to compare)."
            )
            return
        cols = ["TARGET", "ADDRESS", "REACHABLE", "SYNC", "HEALTH", "REVISION", "LAST SYNC"]
        table = new_table("Targets", [*cols, "MESSAGE"])
        for r in data:
            a = r["app"]
            reach = styled(r["reachable"])
            if r["reachable"] != "True" and r["reason"]:
                reach.append(f" {r['reason']}")
            message = a["message"] or (r["message"] if r["reachable"] != "True" else "")
            table.add_row(
                r["name"],
                r["address"],
                reach,
                styled(a["sync"]),
                styled(a["health"]),
                short_sha(a["revision"]),
                age(a["lastSyncTime"]),
                message,
            )
        console.print(table)


class ApplicationSection:
    """The named application in full: source, policy, sync, health, operation, conditions."""

    key = "application"

    async def collect(self, query: StatusQuery) -> Any | None:
        if query.app is None:
            return None
        return app_detail(await query.application())

    def render(self, data: Any, console: Console, query: StatusQuery) -> None:
        d = data
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        src = d["source"]
        grid.add_row("Application", f"{d['namespace']}/{d['name']}")
        grid.add_row("Source", f"{src['repoURL']} {src['targetRevision']} ({src['path']})")
        grid.add_row("Revision", d["revision"] or "(not resolved yet)")
        sync = styled(d["sync"])
        if d["targets"]:
            sync.append(f"  {d['synced']}/{d['targets']} targets synced")
        grid.add_row("Sync", sync)
        health = styled(d["health"])
        if d["message"]:
            health.append(f"  {d['message']}")
        grid.add_row("Health", health)
        policy = d["syncPolicy"]
        if d["managementPolicy"] != "Full":
            policy += f", {d['managementPolicy']}"
        if d["paused"]:
            policy += ", paused"
        grid.add_row("Policy", f"{policy}; strategy {d['strategy']}")
        op = d["operation"]
        if op["phase"]:
            line = operation_text(op)
            line.append(f" at {short_sha(op['revision'])}")
            if op["finishedAt"]:
                line.append(f", finished {age(op['finishedAt'])} ago")
            elif op["startedAt"]:
                line.append(f", started {age(op['startedAt'])} ago")
            if op["message"]:
                line.append(f"; {op['message']}")
            grid.add_row("Operation", line)
        console.print(grid)
        if d["conditions"]:
            table = new_table("Conditions", ["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"])
            for c in d["conditions"]:
                table.add_row(
                    str(c["type"]),
                    styled(str(c["status"])),
                    str(c["reason"] or ""),
                    age(c["lastTransitionTime"]),
                    str(c["message"]),
                )
            console.print(table)


class HistorySection:
    """The named application's last rollouts."""

    key = "history"

    async def collect(self, query: StatusQuery) -> Any | None:
        if query.app is None:
            return None
        app = await query.application()
        history = list((app.get("status") or {}).get("history") or [])
        return sorted(history, key=lambda h: -int(h.get("id") or 0))

    def render(self, data: Any, console: Console, query: StatusQuery) -> None:
        if not data:
            return
        table = new_table("History", ["ID", "REVISION", "PHASE", "DEPLOYED"])
        for h in data:
            table.add_row(
                str(h.get("id")),
                short_sha(h.get("revision")),
                styled(str(h.get("phase") or "")),
                f"{age(h.get('deployedAt'))} ago" if h.get("deployedAt") else "",
            )
        console.print(table)


#: The sections, in the order they print. Extend with `register_section`.
SECTIONS: list[Section] = [
    ApplicationSection(),
    ApplicationsSection(),
    TargetsSection(),
    HistorySection(),
]


def register_section(section: Section, *, before: str | None = None) -> None:
    """Adds a section (once per key), at the end or before the section keyed `before`."""
    if any(s.key == section.key for s in SECTIONS):
        return
    index = next((i for i, s in enumerate(SECTIONS) if s.key == before), len(SECTIONS))
    SECTIONS.insert(index, section)


def _where(query: StatusQuery) -> str:
    return f"namespace {query.namespace}" if query.namespace else "any namespace"


# -- the command --------------------------------------------------------------------------


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "status",
        help="applications and targets (or one application) as tables",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=EPILOG,
    )
    p.add_argument("app", nargs="?", metavar="APP", help="a VMApplication; default: all")
    add_common_options(p, run, ("table", "yaml", "json"), all_namespaces=True)


async def collect(query: StatusQuery) -> dict[str, Any]:
    """Every section's data by key, in order (sections with nothing to say are left out)."""
    if query.app is not None:
        await query.application()  # a missing APP is the first thing to say
    out: dict[str, Any] = {}
    for section in SECTIONS:
        data = await section.collect(query)
        if data is not None:
            out[section.key] = data
    return out


@guarded(PROG)
def run(args: argparse.Namespace) -> int:
    if args.app is not None and getattr(args, "all_namespaces", False):
        raise CliError("APP and -A do not go together: name the namespace with -n", EXIT_USAGE)
    cluster = connect(args)
    namespace = None if getattr(args, "all_namespaces", False) else cluster.namespace
    query = StatusQuery(cluster=cluster, namespace=namespace, app=args.app)
    data = asyncio.run(collect(query))
    if args.output != "table":
        dump({"namespace": namespace, **data}, args.output)
        return EXIT_OK
    with output_console() as console:
        for section in SECTIONS:
            if section.key in data:
                section.render(data[section.key], console, query)
    return EXIT_OK
