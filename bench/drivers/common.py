"""What the bench's own drivers share: the fleet file, batches, the JSON summary."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def arguments(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--dev", type=Path, required=True, help="the bench's VMGITOPS_DEV")
    p.add_argument("--hosts", type=int, required=True, help="use the first N VMs")
    p.add_argument("--version", required=True)
    p.add_argument("--batch-percent", type=float, default=0.0, help="0: all at once")
    p.add_argument("--app-dir", type=Path, help="the vmapp folder (engine only)")
    p.add_argument("--generation", type=int, default=1)
    p.add_argument("--mode", default="workload", help="floor: workload, connect, commands")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--light", action="store_true", help="the light hosts and the light workload variant"
    )
    return p.parse_args()


def batches(items: Sequence[T], percent: float) -> list[list[T]]:
    """All at once (percent 0), else batches of ceil(percent % of all), at least 1."""
    if percent <= 0:
        return [list(items)]
    size = max(1, math.ceil(len(items) * percent / 100))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def emit(summary: dict[str, Any]) -> None:
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()
