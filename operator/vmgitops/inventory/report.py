"""The import report for standard error: one line per distinct problem, the hosts it
concerns, and a summary of the variables that had nowhere to go. Values are never shown."""

from __future__ import annotations

from dataclasses import dataclass, field

from vmgitops.inventory.mapping import Finding, ImportResult, Severity
from vmgitops.inventory.model import Location

HOSTS_SHOWN = 50


@dataclass
class _Group:
    first: Finding
    hosts: list[str] = field(default_factory=list)


def _grouped(findings: list[Finding], severity: Severity) -> list[_Group]:
    groups: dict[tuple[str | None, str | None, str], _Group] = {}
    for f in findings:
        if f.severity is not severity:
            continue
        key = (f.variable, f.origin, f.message)
        g = groups.setdefault(key, _Group(f))
        if f.host is not None and f.host not in g.hosts:
            g.hosts.append(f.host)
    return list(groups.values())


def _hosts(hosts: list[str], verbose: bool) -> str:
    if len(hosts) <= HOSTS_SHOWN or verbose:
        return ", ".join(hosts)
    rest = len(hosts) - HOSTS_SHOWN
    return ", ".join(hosts[:HOSTS_SHOWN]) + f" and {rest} more (-v lists them all)"


def _subject(f: Finding) -> str:
    if f.variable is None:
        return ""
    origin = f" ({f.origin})" if f.origin else ""
    return f"{f.variable}{origin}: "


def _where(location: Location | None) -> str:
    return f"{location}: " if location is not None else ""


def render(result: ImportResult, *, verbose: bool = False) -> list[str]:
    """The report lines, most serious first; empty when everything mapped."""
    lines: list[str] = []
    for severity in (Severity.ERROR, Severity.WARNING):
        for g in _grouped(result.findings, severity):
            f = g.first
            if len(g.hosts) <= 1:
                host = f"{g.hosts[0]}: " if g.hosts else ""
                lines.append(
                    f"{severity.value}: {_where(f.location)}{host}{_subject(f)}{f.message}"
                )
            else:
                lines.append(
                    f"{severity.value}: {_subject(f)}{f.message} "
                    f"[{len(g.hosts)} hosts: {_hosts(g.hosts, verbose)}]"
                )
    ignored = _grouped(result.findings, Severity.IGNORED)
    if ignored:
        lines.append("ignored variables (no VirtualMachineTarget field; values are never shown):")
        for g in sorted(ignored, key=lambda g: (g.first.variable or "", g.first.origin or "")):
            f = g.first
            count = f"{len(g.hosts)} host{'s' if len(g.hosts) != 1 else ''}"
            lines.append(f"  {_subject(f)}{f.message} [{count}: {_hosts(g.hosts, verbose)}]")
    lines.extend(f"note: {note}" for note in result.notes)
    return lines


def summary(result: ImportResult, hosts: int) -> str:
    """One line: how many targets, and how many problems of each kind."""
    counts = {s: sum(1 for f in result.findings if f.severity is s) for s in Severity}
    variables = len({f.variable for f in result.findings if f.severity is Severity.IGNORED})
    return (
        f"{len(result.targets)} of {hosts} host{'s' if hosts != 1 else ''} mapped to "
        f"VirtualMachineTargets; {counts[Severity.ERROR]} error(s), "
        f"{counts[Severity.WARNING]} warning(s), {variables} ignored variable(s)"
    )
