"""Result rows, the ratio tables, the JSON file and bench/RESULTS.md."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCENARIOS = {
    "S1": "cold converge",
    "S2": "no-op re-run (drift check)",
    "S3": "1% of hosts drifted by hand",
    "S4": "new version, 10% batches, health gate",
}
TOOLS = {
    "vmgitops-engine": "vmgitops engine (one process, cold connections)",
    "vmgitops-operator": "vmgitops operator (warm connections, via the API server)",
    "floor": "floor: bare asyncssh, one shell command per host",
    "ansible-f5": "ansible-core, forks 5",
    "ansible-f50": "ansible-core, forks 50",
    "pyinfra": "pyinfra 3",
}
REFERENCE = "vmgitops-engine"


@dataclass
class Row:
    tool: str
    scenario: str
    hosts: int
    wall: float
    tool_cpu: float
    fleet_cpu: float
    peak_mem: int
    max_rss: int
    connections: int
    commands: int
    ok: bool
    problems: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(
            int(line.split()[1]) * 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
    except (OSError, StopIteration):
        mem = 0
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f}"


def _ratio(a: float, b: float) -> str:
    if a <= 0 or b <= 0:
        return "-"
    return f"{a / b:.1f}x"


def _ratio_cell(r: Row | None, ref: Row) -> str:
    """A peer's row against vmgitops's: wall and CPU ratios."""
    if r is None:
        return "-"
    if not r.ok:
        return "failed"  # it failed its verification: it did not do the work
    return f"{_ratio(r.wall, ref.wall)} wall, {_ratio(r.tool_cpu, ref.tool_cpu)} CPU"


def _find(rows: Sequence[Row], tool: str, scenario: str) -> Row | None:
    return next((r for r in rows if r.tool == tool and r.scenario == scenario), None)


def scenario_table(rows: Sequence[Row], scenario: str) -> list[str]:
    ref = _find(rows, REFERENCE, scenario)
    out = [
        f"**{scenario}: {SCENARIOS[scenario]}**",
        "",
        "| tool | wall s | wall / vmgitops | tool CPU s | fleet CPU s | peak MiB "
        "| SSH conns | commands | ok |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for tool in TOOLS:
        r = _find(rows, tool, scenario)
        if r is None:
            continue
        vs = _ratio(r.wall, ref.wall) if ref is not None else "-"
        ok = "yes" if r.ok else "NO: " + "; ".join(r.problems[:2])
        out.append(
            f"| {tool} | {r.wall:.2f} | {vs} | {r.tool_cpu:.2f} | {r.fleet_cpu:.2f} "
            f"| {_mib(r.peak_mem)} | {r.connections} | {r.commands} | {ok} |"
        )
    return out


def ratio_table(rows: Sequence[Row]) -> list[str]:
    """How many times slower (wall) or costlier (CPU) each peer is than vmgitops."""
    peers = [t for t in ("ansible-f5", "ansible-f50", "pyinfra") if any(r.tool == t for r in rows)]
    head = "| scenario | " + " | ".join(f"{p} / vmgitops" for p in peers)
    head += " | vmgitops / floor | operator / floor |"
    out = [head, "|---" * (len(peers) + 3) + "|"]
    for sc in SCENARIOS:
        ref = _find(rows, REFERENCE, sc)
        if ref is None:
            continue
        cells = []
        for p in peers:
            r = _find(rows, p, sc)
            cells.append(_ratio_cell(r, ref))
        floor = _find(rows, "floor", sc)
        op = _find(rows, "vmgitops-operator", sc)
        cells.append(_ratio(ref.wall, floor.wall) if floor is not None else "-")
        cells.append(_ratio(op.wall, floor.wall) if floor is not None and op is not None else "-")
        out.append(f"| {sc} {SCENARIOS[sc]} | " + " | ".join(cells) + " |")
    return out


def render(result: dict[str, Any]) -> str:
    rows = [Row(**r) for r in result["rows"]]
    m = result["machine"]
    if result.get("light"):
        fleet = (
            f"{result['hosts']} LIGHT HOSTS (hack/fleet/light.py: sshd alone in its own mount "
            "namespace, no systemd) on loopback, running the light workload (the restart is a "
            "command run when the config changed, the health check compares the loaded "
            "config's sha256; see bench/README.md)"
        )
    else:
        fleet = f"{result['hosts']} real systemd VMs (hack/fleet) on loopback"
    lines = [
        f"Run {result['started']} on {m['cpus']} cores ({m['cpu_model']}), "
        f"{m['memory_gib']} GiB, kernel {m['kernel']}; {fleet}; every sshd pinned to "
        f"{result['crypto']}.",
        *_light_fleet(result),
        f"Load average at start: {result['load_at_start']} (a shared machine: other work "
        "ran beside the bench; each row's own load is in the JSON).",
        "",
        "Wall / vmgitops and CPU ratios: how many times longer the peer took than the "
        "vmgitops engine (above 1x: vmgitops is faster).",
        "",
        *ratio_table(rows),
        "",
    ]
    for sc in SCENARIOS:
        if any(r.scenario == sc for r in rows):
            lines += [*scenario_table(rows, sc), ""]
    floor = result.get("floor") or {}
    if floor:
        lines += [
            "**The SSH floor on this machine** (bare asyncssh, same key exchange):",
            f"{floor.get('hosts')} fresh connections in {floor.get('connect_seconds', 0):.2f} s "
            f"({floor.get('connections_per_second', 0):.0f}/s); one command per host over "
            f"open connections: {min(floor.get('round_seconds') or [0]):.3f} s per round "
            f"({floor.get('commands_per_second', 0):.0f} commands/s).",
            "",
        ]
    for note in result.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"


def _light_fleet(result: dict[str, Any]) -> list[str]:
    lf = result.get("light_fleet") or {}
    if not result.get("light") or not lf:
        return []
    pss = lf.get("pss_per_host_at_start") or lf.get("pss_per_host") or 0
    return [
        f"The light fleet: {lf.get('booted', result['hosts'])} hosts booted in "
        f"{lf.get('boot_seconds', 0):.1f} s (+{lf.get('prepare_seconds', 0):.1f} s of host "
        f"keys); per host {pss / 2**20:.2f} MiB of PSS (sshd), "
        f"{lf.get('slab_growth_per_host', 0) / 1024:.0f} KiB of kernel slab; MemAvailable "
        f"fell by {lf.get('memavailable_drop_per_host', 0) / 2**20:.2f} MiB per host "
        "(machine-wide, other work included)."
    ]


def save(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def document(results: Sequence[dict[str, Any]]) -> str:
    """bench/RESULTS.md from the JSON results of one `make bench`."""
    parts = [
        "# Benchmark results",
        "",
        "Written by `make bench` (bench/run.sh) from the JSON files under bench/results/ "
        "(not committed); how each figure is measured: bench/README.md.",
        "",
    ]
    for result in results:
        if result.get("kind") == "scale":
            from bench.scale_report import render_scale

            parts += [f"## Scale: {result['targets']} targets", "", render_scale(result)]
        else:
            kind = "light hosts (sshd alone, no systemd)" if result.get("light") else "VMs"
            parts += [f"## {result['hosts']} {kind}", "", render(result)]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.report")
    p.add_argument("--write", type=Path, help="write the Markdown here (else print it)")
    p.add_argument("files", nargs="+", type=Path)
    a = p.parse_args(argv)
    text = document([json.loads(f.read_text()) for f in a.files])
    if a.write:
        a.write.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def row_dict(row: Row) -> dict[str, Any]:
    return asdict(row)
