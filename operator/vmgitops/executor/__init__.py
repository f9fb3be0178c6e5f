"""Applying a plan on one VM: one SSH command, under a VM lock, with a fence.

Entry point: `apply_plan(runner, plan, app_key=..., generation=..., revision=...,
expected_serial=...) -> ApplyResult` (outcomes per step). The remote side is one
constant script (`script.py`); steps compile to its ops (`ops.py`); its records are read
back into outcomes (`outcome.py`); the fence record (`fence.py`) keeps an older
generation, or a plan made from a stale observation, from being applied.
"""

from vmgitops.executor.apply import APP_KEY, ApplyOptions, apply_plan, make_app_key
from vmgitops.executor.fence import Fence, FenceUnreadable, parse_fence
from vmgitops.executor.outcome import ApplyError, ApplyResult, StepOutcome, StepStatus

__all__ = [
    "APP_KEY",
    "ApplyError",
    "ApplyOptions",
    "ApplyResult",
    "Fence",
    "FenceUnreadable",
    "StepOutcome",
    "StepStatus",
    "apply_plan",
    "make_app_key",
    "parse_fence",
]
