"""Pieces several kinds share: references, label selectors, object metadata, and the
status vocabulary (sync, health, observed generation and conditions)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from pydantic import Field, NonNegativeInt

from vmgitops.api.base import ApiModel, ObjectName, Time
from vmgitops.api.conditions import Condition


class LocalObjectReference(ApiModel):
    """A reference to an object of a known kind in the same namespace."""

    name: ObjectName
    """The object's name."""


class Credentials(ApiModel):
    """Where credentials come from: a Secret in the same namespace."""

    secret_ref: LocalObjectReference
    """The Secret, in the same namespace."""


class SelectorOperator(StrEnum):
    """How a label selector requirement compares the label's value."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(ApiModel):
    """One set-based requirement on a label, as in metav1.LabelSelectorRequirement."""

    key: str = Field(min_length=1, max_length=317)
    """The label key."""
    operator: SelectorOperator
    """In, NotIn, Exists or DoesNotExist."""
    values: list[str] = Field(default_factory=list)
    """The values for In and NotIn; empty for Exists and DoesNotExist."""

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator is SelectorOperator.EXISTS:
            return self.key in labels
        if self.operator is SelectorOperator.DOES_NOT_EXIST:
            return self.key not in labels
        if self.operator is SelectorOperator.IN:
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values


class LabelSelector(ApiModel):
    """Selects objects by label; all requirements must hold. An empty selector selects all."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    """Labels that must have exactly these values."""
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)
    """Set-based requirements."""

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with these labels is selected."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            r.matches(labels) for r in self.match_expressions
        )


class ObjectMeta(ApiModel):
    """The part of metav1.ObjectMeta that vmgitops reads; the rest is ignored."""

    name: str = ""
    generate_name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None
    resource_version: str | None = None
    creation_timestamp: Time | None = None
    deletion_timestamp: Time | None = None


class SyncStatusCode(StrEnum):
    """Whether the VMs match the desired state at the revision."""

    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


class HealthStatusCode(StrEnum):
    """How healthy an application is, as in Argo CD."""

    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    SUSPENDED = "Suspended"
    MISSING = "Missing"
    UNKNOWN = "Unknown"


class OperationPhase(StrEnum):
    """Where a rollout (an operation) stands."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TERMINATING = "Terminating"


class ObservedStatus(ApiModel):
    """What every kind's status has: the generation it describes and its conditions."""

    observed_generation: NonNegativeInt | None = None
    """The metadata.generation this status was computed from."""
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """The latest observations of the object's state."""
