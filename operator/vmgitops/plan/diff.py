"""Human-readable diffs: unified diffs for text, a summary for binary or hidden content.

A sensitive file's content never appears in a diff, whatever else is true.
"""

from __future__ import annotations

import difflib
import hashlib

SENSITIVE = "(sensitive content hidden)"
MAX_DIFF_LINES = 400
_NO_EOL = "\\ No newline at end of file\n"


def is_binary(data: bytes) -> bool:
    """Binary when it has a NUL byte or is not UTF-8 (as git decides, roughly)."""
    if b"\x00" in data[:8192]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _short(sha: str) -> str:
    return sha[:12] if sha else "?"


def content_diff(
    path: str,
    old: bytes | None,
    new: bytes,
    *,
    old_exists: bool,
    old_sha256: str = "",
    sensitive: bool = False,
) -> str:
    """The diff from what is on the VM (`old`, None when not fetched) to `new`."""
    if sensitive:
        return SENSITIVE
    new_sha = hashlib.sha256(new).hexdigest()
    if old_exists and old is None:
        return (
            f"content differs (sha256 {_short(old_sha256)} -> {_short(new_sha)}, {len(new)} bytes)"
        )
    before = old or b""
    if is_binary(before) or is_binary(new):
        size = f"{len(before)} -> {len(new)} bytes" if old_exists else f"{len(new)} bytes"
        verb = "differs" if old_exists else "is new"
        return f"binary content {verb} ({size})"
    return unified(path, before.decode(), new.decode(), old_exists=old_exists)


def unified(path: str, old: str, new: str, *, old_exists: bool = True) -> str:
    """A `diff -u` of two texts, with git's marker for a missing final newline."""
    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    fromfile = f"a{path}" if old_exists else "/dev/null"
    lines = []
    for line in difflib.unified_diff(a, b, fromfile=fromfile, tofile=f"b{path}"):
        if not line.endswith("\n"):
            line += "\n" + _NO_EOL
        lines.append(line)
    if len(lines) > MAX_DIFF_LINES:
        more = len(lines) - MAX_DIFF_LINES
        lines = [*lines[:MAX_DIFF_LINES], f"... ({more} more diff lines)\n"]
    return "".join(lines)


def field_diff(changes: list[tuple[str, str, str]]) -> str:
    """'mode: 0600 -> 0644' lines for metadata changes (name, before, after)."""
    return "".join(f"{name}: {before} -> {after}\n" for name, before, after in changes)
