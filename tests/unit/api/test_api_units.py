"""Durations and int-or-percent, as the operator reads them from specs."""

from __future__ import annotations

import re

import pytest

from vmgitops.api.units import (
    DURATION_PATTERN,
    PERCENT_PATTERN,
    DurationError,
    IntOrPercentError,
    check_int_or_percent,
    parse_duration,
    resolve_int_or_percent,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("5s", 5.0, id="seconds"),
        pytest.param("3m", 180.0, id="minutes"),
        pytest.param("1h", 3600.0, id="hours"),
        pytest.param("1h30m", 5400.0, id="hours-and-minutes"),
        pytest.param("1h30m15s", 5415.0, id="three-units"),
        pytest.param("250ms", 0.25, id="milliseconds-are-not-minutes"),
        pytest.param("1m500ms", 60.5, id="minutes-then-milliseconds"),
        pytest.param("1.5h", 5400.0, id="decimal-number"),
        pytest.param("0s", 0.0, id="zero-is-allowed-for-pauses"),
        pytest.param("90m", 5400.0, id="units-need-not-be-normalised"),
        pytest.param("30s1m", 90.0, id="units-in-any-order-like-go"),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("5", id="number-without-unit"),
        pytest.param("often", id="words"),
        pytest.param("5d", id="days-are-not-a-unit"),
        pytest.param("5 s", id="space-inside"),
        pytest.param(" 5s", id="leading-space"),
        pytest.param("5s\n", id="trailing-newline"),
        pytest.param("-5s", id="negative"),
        pytest.param("1.s", id="dot-without-decimals"),
        pytest.param("5S", id="unit-is-case-sensitive"),
        pytest.param("1h30", id="trailing-number-without-unit"),
    ],
)
def test_parse_duration_refuses_with_a_clear_message(text: str) -> None:
    with pytest.raises(DurationError, match=r'invalid duration .*like "90s", "5m" or "1h30m"'):
        parse_duration(text)


def test_duration_error_is_a_value_error() -> None:
    """So that pydantic reports it as a validation error of the field."""
    assert issubclass(DurationError, ValueError)


@pytest.mark.parametrize(
    ("text", "valid"),
    [("5s", True), ("1h30m", True), ("250ms", True), ("5", False), ("5d", False), ("", False)],
    ids=lambda v: repr(v),
)
def test_duration_pattern_agrees_with_the_parser(text: str, valid: bool) -> None:
    """The API server checks the pattern, the operator the parser: they must agree."""
    assert bool(re.fullmatch(DURATION_PATTERN, text)) is valid


@pytest.mark.parametrize(
    ("value", "total", "count"),
    [
        pytest.param("25%", 4, 1, id="quarter-of-four"),
        pytest.param("25%", 10, 2, id="percent-rounds-down"),
        pytest.param("25%", 3, 1, id="rounds-down-to-zero-but-at-least-one"),
        pytest.param("0%", 10, 1, id="zero-percent-still-makes-progress"),
        pytest.param("100%", 7, 7, id="all-at-once"),
        pytest.param("50%", 5000, 2500, id="large-fleet"),
        pytest.param(2, 10, 2, id="plain-count"),
        pytest.param(0, 10, 1, id="zero-count-still-makes-progress"),
        pytest.param(20, 3, 3, id="count-larger-than-fleet-is-capped"),
        pytest.param("25%", 0, 0, id="no-targets-no-batch"),
        pytest.param(3, 0, 0, id="count-with-no-targets"),
    ],
)
def test_resolve_int_or_percent(value: int | str, total: int, count: int) -> None:
    assert resolve_int_or_percent(value, total) == count


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("25", id="string-without-percent"),
        pytest.param("101%", id="more-than-all"),
        pytest.param("-5%", id="negative-percent"),
        pytest.param("2.5%", id="fractional-percent"),
        pytest.param(-1, id="negative-count"),
        pytest.param(True, id="bool-is-not-a-count"),
        pytest.param("", id="empty"),
    ],
)
def test_int_or_percent_refuses(value: int | str) -> None:
    with pytest.raises(IntOrPercentError):
        check_int_or_percent(value)
    with pytest.raises(IntOrPercentError):
        resolve_int_or_percent(value, 10)


def test_negative_total_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="total"):
        resolve_int_or_percent(1, -1)


@pytest.mark.parametrize(
    ("text", "valid"),
    [("0%", True), ("25%", True), ("100%", True), ("101%", False), ("05%", False)],
    ids=lambda v: repr(v),
)
def test_percent_pattern(text: str, valid: bool) -> None:
    assert bool(re.fullmatch(PERCENT_PATTERN, text)) is valid
