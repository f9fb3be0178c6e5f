"""The desired-state engine: one application at one revision on one VM.

The controller's entry points:

* `sync_target(runner, app_key=, generation=, revision=, app=, params=, target=, facts=,
  prune=, dry_run=False) -> TargetResult`: observe, plan, apply, verify, health.
* `observe_target(...)`: the same without changing anything (diff, drift detection).
* `load_and_render(folder, ...)`: load an app folder and render it, or a ManifestError.

A `TargetResult` carries the plan, per-step outcomes, sync and health status, per
resource statuses, blocking issues, and the SSH round trips it took.
"""

from vmgitops.engine.render import load_and_render
from vmgitops.engine.result import EngineError, TargetResult
from vmgitops.engine.sync import (
    CountingRunner,
    EngineOptions,
    observe_request,
    observe_target,
    package_manager,
    sync_target,
)

__all__ = [
    "CountingRunner",
    "EngineError",
    "EngineOptions",
    "TargetResult",
    "load_and_render",
    "observe_request",
    "observe_target",
    "package_manager",
    "sync_target",
]
