"""The base model and the field types every kind shares.

Each type carries its own JSON schema (pattern, int-or-string) so that the CRD the API
server enforces and the pydantic validation the operator runs come from one place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from vmgitops.api.units import (
    DURATION_PATTERN,
    PERCENT_PATTERN,
    check_int_or_percent,
    parse_duration,
)

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CAMEL_CASE_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class ApiModel(BaseModel):
    """Base of every spec and status model: camelCase on the wire, snake_case in Python.

    Unknown fields are ignored, not refused: the API server already prunes what the CRD
    does not know, and an older operator must still read objects written by a newer CLI.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="ignore",
    )

    def to_dict(self, *, exclude_none: bool = True) -> dict[str, Any]:
        """The object as the API server wants it: camelCase keys, JSON values."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=exclude_none)


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as the API server writes it (UTC when no offset), or None."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes metav1.Time."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "maxLength": 64}),
]
"""A duration string such as "5s", "3m" or "1h30m"; see `units.parse_duration`."""

IntOrPercent = Annotated[
    int | str,
    AfterValidator(check_int_or_percent),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": PERCENT_PATTERN,
            "minimum": 0,
        }
    ),
]
"""A count (2) or a percentage ("25%"); see `units.resolve_int_or_percent`."""

Time = Annotated[AwareDatetime, PlainSerializer(format_time, return_type=str, when_used="json")]
"""A timezone-aware timestamp, written as "2024-05-01T12:00:00Z"."""

ObjectName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
]
"""The name of an object in the same namespace (an RFC 1123 subdomain)."""

Reason = Annotated[
    str, StringConstraints(min_length=1, max_length=1024, pattern=CAMEL_CASE_REASON_PATTERN)
]
"""A machine-readable CamelCase reason, as in metav1.Condition."""
