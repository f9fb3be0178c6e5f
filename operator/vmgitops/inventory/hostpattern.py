"""Ansible host patterns: `name`, `name:port`, `[v6::addr]:port` and numeric or alphabetic
ranges such as `web[01:03].example.com` or `db-[a:c]`, which both formats accept."""

from __future__ import annotations

import re
import string

MAX_EXPANSION = 100_000
"""A pattern that expands to more hosts than this is refused rather than exhausting memory."""

_BRACKETED_V6 = re.compile(r"^\[([0-9A-Fa-f:.%]+)\](?::(\d+))?$")
_BARE_V6 = re.compile(r"^[0-9A-Fa-f:.%]*:[0-9A-Fa-f:.%]*:[0-9A-Fa-f:.%]*$")
_RANGE_BODY = re.compile(r"^[A-Za-z0-9]*:[A-Za-z0-9]+(:\d+)?$")
_PORT_SUFFIX = re.compile(r"^(.*?):(\d+)$")


class HostPatternError(ValueError):
    """A host pattern that cannot be expanded; the message says why."""


def _is_range(body: str) -> bool:
    return bool(_RANGE_BODY.match(body))


def parse_host_pattern(pattern: str) -> tuple[list[str], int | None]:
    """The host names a pattern stands for and the port it names, if any."""
    pattern = pattern.strip()
    if not pattern:
        raise HostPatternError("empty host name")
    m = _BRACKETED_V6.match(pattern)
    if m and not _is_range(m.group(1)):
        return [m.group(1)], _port(m.group(2))
    if _BARE_V6.match(pattern) and "[" not in pattern:
        return [pattern], None
    host, port = pattern, None
    m = _PORT_SUFFIX.match(pattern)
    if m and ":" not in _outside_brackets(m.group(1)):
        host, port = m.group(1), _port(m.group(2))
    if ":" in _outside_brackets(host):
        raise HostPatternError("more than one ':' outside a range; write name:port")
    return expand_ranges(host), port


def _outside_brackets(text: str) -> str:
    return re.sub(r"\[[^\]]*\]", "", text)


def _port(text: str | None) -> int | None:
    if text is None:
        return None
    port = int(text)
    if not 1 <= port <= 65535:
        raise HostPatternError(f"port {port} is outside 1-65535")
    return port


def expand_ranges(pattern: str) -> list[str]:
    """Expand every `[begin:end]` or `[begin:end:step]` range, as Ansible does: numbers
    keep a leading-zero width (`[01:10]`), letters run through a-z then A-Z."""
    if "[" not in pattern and "]" not in pattern:
        return [pattern]
    m = re.match(r"^([^\[\]]*)\[([^\[\]]*)\](.*)$", pattern)
    if m is None:
        raise HostPatternError("unbalanced '[' or ']' in a host range")
    head, body, tail = m.groups()
    bounds = body.split(":")
    if len(bounds) not in (2, 3):
        raise HostPatternError("a host range must be [begin:end] or [begin:end:step]")
    begin, end = bounds[0] or "0", bounds[1]
    if not end:
        raise HostPatternError("a host range must name its end, as in [01:10]")
    try:
        step = int(bounds[2]) if len(bounds) == 3 else 1
    except ValueError:
        raise HostPatternError("the step of a host range must be a number") from None
    if step < 1:
        raise HostPatternError("the step of a host range must be at least 1")
    items = _range_items(begin, end, step)
    if len(items) > MAX_EXPANSION:
        raise HostPatternError(f"the host range expands to more than {MAX_EXPANSION} hosts")
    out: list[str] = []
    for item in items:
        out.extend(expand_ranges(f"{head}{item}{tail}"))
        if len(out) > MAX_EXPANSION:
            raise HostPatternError(f"the host range expands to more than {MAX_EXPANSION} hosts")
    return out


def _range_items(begin: str, end: str, step: int) -> list[str]:
    letters = string.ascii_letters
    if len(begin) == 1 and len(end) == 1 and begin in letters and end in letters:
        i, j = letters.index(begin), letters.index(end)
        if i > j:
            raise HostPatternError("a host range must have begin <= end")
        return list(letters[i : j + 1 : step])
    if not (begin.isdigit() and end.isdigit()):
        raise HostPatternError(
            "a host range is numbers ([01:10]) or single letters ([a:f]), not a mix"
        )
    width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
    if width and len(end) != width:
        raise HostPatternError(
            "a zero-padded host range needs begin and end of the same width, as in [01:10]"
        )
    lo, hi = int(begin), int(end)
    if lo > hi:
        raise HostPatternError("a host range must have begin <= end")
    if (hi - lo) // step + 1 > MAX_EXPANSION:
        raise HostPatternError(f"the host range expands to more than {MAX_EXPANSION} hosts")
    return [str(n).zfill(width) for n in range(lo, hi + 1, step)]
