"""The reliability and security figures: each test records its own, the session prints
them all in one table at the end (and keeps them in .dev/logs/figures-*.jsonl).

A figure has a bound (`== 0`, `== 100%`, `>= 200`...) and says whether it met it, so the
table reads as the README's Reliability section does.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from testbed import DEV

_FIGURES: list[Figure] = []
_FILE = DEV / "logs" / f"figures-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
_printed = False


@dataclass(frozen=True)
class Figure:
    area: str
    name: str
    value: str
    bound: str
    ok: bool


def record(area: str, name: str, value: Any, bound: str, ok: bool) -> Figure:
    """Records one figure and prints it (visible with -s, and in the session summary)."""
    shown = f"{value:.1f}" if isinstance(value, float) else str(value)
    fig = Figure(area, name, shown, bound, bool(ok))
    _FIGURES.append(fig)
    print(f"\n[figure] {area}: {name} = {shown} (bound {bound}) {'ok' if ok else 'MISSED'}")
    try:
        _FILE.parent.mkdir(parents=True, exist_ok=True)
        with open(_FILE, "a") as f:
            f.write(json.dumps(asdict(fig)) + "\n")
    except OSError:
        pass
    return fig


def count(area: str, name: str, value: int, *, at_most: int = 0) -> Figure:
    return record(area, name, value, f"<= {at_most}" if at_most else "== 0", value <= at_most)


def at_least(area: str, name: str, value: int, minimum: int) -> Figure:
    return record(area, name, value, f">= {minimum}", value >= minimum)


def percent(area: str, name: str, part: int, whole: int, minimum: float = 100.0) -> Figure:
    value = 100.0 * part / whole if whole else 0.0
    return record(
        area,
        name,
        f"{value:.0f}% ({part}/{whole})",
        f">= {minimum:.0f}%",
        whole > 0 and value >= minimum,
    )


def summary_lines() -> list[str]:
    if not _FIGURES:
        return []
    w_area = max(len(f.area) for f in _FIGURES)
    w_name = max(len(f.name) for f in _FIGURES)
    w_val = max(len(f.value) for f in _FIGURES)
    lines = [f"{'area':{w_area}}  {'figure':{w_name}}  {'value':{w_val}}  bound"]
    for f in _FIGURES:
        mark = "" if f.ok else "   <-- MISSED"
        lines.append(f"{f.area:{w_area}}  {f.name:{w_name}}  {f.value:{w_val}}  {f.bound}{mark}")
    return lines


def print_summary(terminalreporter: Any) -> None:
    global _printed
    if _printed or not _FIGURES:
        return
    _printed = True
    terminalreporter.section("reliability and security figures")
    for line in summary_lines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(also in {_FILE})")
