"""Parsing of the string-typed quantities in specs: durations and int-or-percent.

The API server validates the same syntax with the patterns below, so by the time the
operator parses a value it is well formed; the errors here are for values that never
went through the API server (the CLI, tests, `vmgitops render`).
"""

from __future__ import annotations

import re

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
"""A Go-style duration restricted to ms, s, m and h: "500ms", "90s", "1h30m"."""

PERCENT_PATTERN = r"^(100|[1-9]?[0-9])%$"
"""A whole percentage from 0% to 100%."""

_DURATION_RE = re.compile(DURATION_PATTERN)
_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_PERCENT_RE = re.compile(PERCENT_PATTERN)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class DurationError(ValueError):
    """A duration string that is not like "90s", "5m" or "1h30m"."""


class IntOrPercentError(ValueError):
    """A value that is neither a non-negative integer nor a percentage like "25%"."""


def parse_duration(value: str) -> float:
    """Seconds in a duration such as "5s", "3m", "1h30m" or "250ms"."""
    if not isinstance(value, str) or not _DURATION_RE.fullmatch(value):
        raise DurationError(
            f"invalid duration {value!r}: expected numbers with units ms, s, m or h, "
            'like "90s", "5m" or "1h30m"'
        )
    return sum(
        float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART_RE.findall(value)
    )


def check_int_or_percent(value: int | str) -> int | str:
    """`value` unchanged if it is a non-negative int or a percentage string like "25%"."""
    if isinstance(value, bool):
        raise IntOrPercentError(f"invalid value {value!r}: expected an integer or a percentage")
    if isinstance(value, int):
        if value < 0:
            raise IntOrPercentError(f"invalid value {value}: must not be negative")
        return value
    if isinstance(value, str) and _PERCENT_RE.fullmatch(value):
        return value
    raise IntOrPercentError(
        f'invalid value {value!r}: expected an integer like 2 or a percentage like "25%"'
    )


def resolve_int_or_percent(value: int | str, total: int) -> int:
    """How many of `total` items `value` allows, rounded down, at least 1, at most `total`.

    At least 1 so that a rollout always makes progress ("0%" or 0 of 3 targets would
    never start); with no items at all the answer is 0.
    """
    if total < 0:
        raise ValueError(f"total must not be negative, got {total}")
    checked = check_int_or_percent(value)
    count = checked if isinstance(checked, int) else total * int(checked[:-1]) // 100
    if total == 0:
        return 0
    return min(total, max(1, count))
