"""The INI inventory format, read the way Ansible's `ini` plugin reads it.

* `[group]` lists hosts, one per line: `pattern [name=value ...]`, where the pattern may
  hold a `:port` and ranges; `#` starts a comment; values are quoted like a shell.
* `[group:children]` lists sub-groups; `[group:vars]` holds `name=value` lines.
* Lines before the first section are hosts of `ungrouped`.
* A value is read as a Python literal when it is one (`2222`, `True`, `['a']`), else kept
  as the string, so `ansible_become=true` is the string "true", as in Ansible.
* A group named only in a `:children` or `:vars` section and never declared is an error.

Errors name the file and line, never the values on it (a line may hold a password).
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from dataclasses import dataclass
from typing import Any

from vmgitops.inventory.hostpattern import HostPatternError, parse_host_pattern
from vmgitops.inventory.model import ALL, UNGROUPED, Inventory, InventoryError, Location

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:[#;].*)?$")
_COMMENT = ("#", ";")


@dataclass
class _Pending:
    state: str
    location: Location
    parents: list[str]


def parse_value(text: str) -> Any:
    """A value as Ansible's ini plugin reads it: a Python literal when it is one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_ini(text: str, source: str) -> Inventory:
    """Parse an INI inventory; raises InventoryError with file and line."""
    inv = Inventory(source)
    declared: set[str] = {ALL, UNGROUPED}
    pending: dict[str, _Pending] = {}
    group, state = UNGROUPED, "hosts"
    for lineno, raw in enumerate(text.splitlines(), start=1):
        loc = Location(source, lineno)
        line = raw.strip()
        if not line or line.startswith(_COMMENT):
            continue
        m = _SECTION.match(line)
        if m:
            group, state = m.group(1), m.group(2) or "hosts"
            if state not in ("hosts", "children", "vars"):
                raise InventoryError(
                    f"section [{group}:{state}] has an unknown type '{state}'; "
                    "use [group], [group:children] or [group:vars]",
                    loc,
                )
            if state == "vars":
                if group not in declared and group not in pending:
                    pending[group] = _Pending("vars", loc, [])
            else:
                _declare(inv, group, loc, declared, pending)
            continue
        if line.startswith("[") and line.endswith("]"):
            raise InventoryError(
                "invalid section header: write [group], [group:children] or [group:vars], "
                "with no spaces inside the brackets",
                loc,
            )
        if state == "hosts":
            _host_line(inv, group, line, loc)
        elif state == "vars":
            name, value = _var_line(line, loc)
            inv.group(group).vars[name] = value
        else:
            child = _child_line(line, loc)
            if child in declared:
                inv.add_child(group, child, loc)
            elif child in pending and pending[child].state == "children":
                pending[child].parents.append(group)
            else:
                pending[child] = _Pending("children", loc, [group])
    for name, decl in pending.items():
        if decl.state == "vars":
            raise InventoryError(
                f"section [{name}:vars] is for a group that is never declared; add a [{name}] "
                f"or [{name}:children] section, or fix the group name",
                decl.location,
            )
        raise InventoryError(
            f"section [{decl.parents[-1]}:children] includes group '{name}', which is never "
            f"declared; add a [{name}] section (it may be empty) or fix the name",
            decl.location,
        )
    return inv.finish()


def _declare(
    inv: Inventory,
    group: str,
    loc: Location,
    declared: set[str],
    pending: dict[str, _Pending],
) -> None:
    inv.group(group, loc)
    declared.add(group)
    decl = pending.pop(group, None)
    if decl is not None and decl.state == "children":
        for parent in decl.parents:
            inv.add_child(parent, group, decl.location)


def _host_line(inv: Inventory, group: str, line: str, loc: Location) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        raise InventoryError(
            "cannot split this host line (an unclosed quote?); quote values that hold "
            "spaces with matching ' or \"",
            loc,
        ) from None
    if not tokens:
        return
    try:
        names, port = parse_host_pattern(tokens[0])
    except HostPatternError as exc:
        raise InventoryError(f"host pattern '{tokens[0]}': {exc}", loc) from None
    variables: dict[str, Any] = {}
    for index, token in enumerate(tokens[1:], start=2):
        if "=" not in token or token.startswith("="):
            raise InventoryError(
                f"host '{tokens[0]}': word {index} of the line is not name=value; write "
                "variables as name=value with no spaces around '=', and quote values that "
                "hold spaces",
                loc,
            )
        key, value = token.split("=", 1)
        variables[key] = parse_value(value)
    for name in names:
        inv.host(name, group, loc, port).vars.update(variables)


def _var_line(line: str, loc: Location) -> tuple[str, Any]:
    if "=" not in line:
        raise InventoryError("a line in a [group:vars] section must be name=value", loc)
    key, value = (part.strip() for part in line.split("=", 1))
    if not key or any(c.isspace() for c in key):
        raise InventoryError(
            "a line in a [group:vars] section must be name=value, with a name without spaces",
            loc,
        )
    return key, parse_value(value)


def _child_line(line: str, loc: Location) -> str:
    m = _GROUP_NAME.match(line)
    if m is None:
        raise InventoryError(
            "a line in a [group:children] section must be a single group name", loc
        )
    return m.group(1)
