"""Pure planning: desired state versus observed state -> ordered steps; health vocabulary.

Imports nothing that does I/O. Entry point: `compute_plan(desired, observed, prune=...)`.
"""

from vmgitops.plan.assess import Assessment, assess_health
from vmgitops.plan.compute import compute_plan
from vmgitops.plan.health import Health, SyncStatus, is_worse, worst
from vmgitops.plan.plan import Plan, PlanIssue
from vmgitops.plan.resources import ResourceStatus, resource_statuses
from vmgitops.plan.steps import Step, StepKind

__all__ = [
    "Assessment",
    "Health",
    "Plan",
    "PlanIssue",
    "ResourceStatus",
    "Step",
    "StepKind",
    "SyncStatus",
    "assess_health",
    "compute_plan",
    "is_worse",
    "resource_statuses",
    "worst",
]
