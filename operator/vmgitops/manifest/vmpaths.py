"""Rules for names and absolute paths on the VM, shared by the model and the planner.

A path is accepted only in its one canonical spelling (absolute, normalised, no `..`),
so that two spellings of one file can never be two entries, and a prefix test on
strings is a prefix test on the file system tree.
"""

from __future__ import annotations

import posixpath
import re

#: Where vmgitops keeps, per application, its inventory, markers and lock on a VM.
STATE_ROOT = "/var/lib/vmgitops"

#: Roots no manifest entry may be, or live under: kernel interfaces and our own state.
FORBIDDEN_ROOTS: tuple[str, ...] = ("/proc", "/sys", "/dev", STATE_ROOT)

MAX_PATH = 4096
MAX_COMPONENT = 255

PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,127}$")
UNIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@_.:-]{0,240}\.(service|socket|timer)$")
ITEM_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
ACCOUNT_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|[0-9]{1,10})$")
OCTAL_MODE = re.compile(r"^[0-7]?[0-7]{3}$")
REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def vm_path_problem(path: str) -> str | None:
    """Why `path` is not an acceptable absolute path on the VM, or None when it is."""
    if not path:
        return "is empty"
    if _CONTROL.search(path):
        return "contains a control character (NUL, newline, tab...)"
    if not path.startswith("/"):
        return "is not an absolute path"
    if len(path) > MAX_PATH:
        return f"is longer than {MAX_PATH} characters"
    if ".." in path.split("/"):
        return "contains '..'"
    if posixpath.normpath(path) != path or path.startswith("//"):
        return f"is not normalised (write {posixpath.normpath(path)!r})"
    if path == "/":
        return "is the root directory"
    if any(len(part) > MAX_COMPONENT for part in path.split("/")):
        return f"has a component longer than {MAX_COMPONENT} characters"
    for root in FORBIDDEN_ROOTS:
        if is_within(path, root):
            return f"is under {root}, which vmgitops never writes"
    return None


def is_within(path: str, root: str) -> bool:
    """True when normalised `path` is `root` or below it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def parse_mode(text: str) -> int:
    """'0644' -> 0o644; the caller has validated it with OCTAL_MODE."""
    return int(text, 8)


def format_mode(mode: int) -> str:
    """0o644 -> '0644', the spelling used in manifests, diffs and inventories."""
    return f"{mode:04o}"


def unit_path(name: str) -> str:
    """Where a unit whose text the manifest carries is written."""
    return f"/etc/systemd/system/{name}"
