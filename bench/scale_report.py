"""The scale run's table (bench/scale.py's JSON -> Markdown)."""

from __future__ import annotations

from typing import Any


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def render_scale(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Run {result['started']} on {m['cpus']} cores ({m['cpu_model']}), "
        f"{m['memory_gib']} GiB; load average at start {result['load_at_start']}.",
        "",
        f"**Hosts: {result['hosts']}.** Wall times include the farm's own CPU use on the "
        "same 2 cores (its column), which real VMs would not take from the operator.",
        "",
        "| phase | wall s | operator CPU s | farm CPU s | API req/s | operator RSS MiB "
        "| SSH commands | new SSH conns | etcd DB MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in result["phases"]:
        lines.append(
            f"| {p['phase']} | {p['wall']:.1f} | {p['operator_cpu']:.1f} | {p['farm_cpu']:.1f} "
            f"| {p['api_requests_per_second']:.1f} | {_mib(p['operator_rss'])} "
            f"| {p['ssh_commands']} | {p['ssh_connections']} "
            f"| {_mib(p['etcd']['db_bytes'])} |"
        )
    objects = result.get("objects") or {}
    if objects:
        lines.append("")
        for kind in ("VirtualMachineTarget", "VMApplication"):
            o = objects.get(kind)
            if o:
                lines.append(
                    f"- {kind}: {o['count']} objects, the largest {o['largest_bytes']} bytes "
                    f"of JSON ({o['largest']}), {o['total_bytes'] / 2**20:.1f} MiB in all."
                )
        ev = objects.get("Event") or {}
        if ev:
            lines.append(f"- Events in the namespace: {ev.get('count', ev.get('count_at_least'))}.")
    if result["phases"]:
        hwm = max(p["operator_hwm"] for p in result["phases"])
        lines.append(f"- Operator peak RSS (VmHWM): {_mib(hwm)} MiB.")
    for note in result.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"
