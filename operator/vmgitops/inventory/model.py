"""An Ansible inventory as Ansible itself sees it: hosts, groups, and where variables come
from, with Ansible's precedence rules. The parsers (`ini`, `yaml_inventory`) fill it in;
`mapping` reads it. Nothing here knows about VirtualMachineTargets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

ALL = "all"
UNGROUPED = "ungrouped"
GROUP_PRIORITY_VAR = "ansible_group_priority"
PORT_VAR = "ansible_port"


@dataclass(frozen=True)
class Location:
    """Where something was written: a file and, when known, a 1-based line."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


class InventoryError(Exception):
    """The inventory cannot be read; the message says where and what to do.

    Messages never quote variable values or whole lines, which may hold secrets."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(f"{location}: {message}" if location else message)
        self.message = message
        self.location = location


@dataclass(frozen=True)
class ParseWarning:
    """Something the parser skipped, as Ansible does with a warning; reported, never lost."""

    message: str
    location: Location | None = None


@dataclass
class Host:
    """One inventory host: its own variables and the groups that list it directly."""

    name: str
    location: Location | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    file_vars: dict[str, Any] = field(default_factory=dict)
    """From `host_vars/<host>` files next to the inventory; they win over `vars`."""
    groups: list[str] = field(default_factory=list)


@dataclass
class Group:
    """One inventory group; `depth` is the longest path from `all`, as in Ansible."""

    name: str
    location: Location | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    file_vars: dict[str, Any] = field(default_factory=dict)
    """From `group_vars/<group>` files next to the inventory."""
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    depth: int = 0

    @property
    def priority(self) -> int:
        """`ansible_group_priority`, which orders groups of the same depth (default 1)."""
        value = {**self.vars, **self.file_vars}.get(GROUP_PRIORITY_VAR, 1)
        try:
            return int(value)
        except (TypeError, ValueError):
            return 1


@dataclass(frozen=True)
class VarValue:
    """An effective variable of a host and where it came from (a group name, or None for
    the host itself)."""

    value: Any
    group: str | None


@dataclass
class Inventory:
    """Hosts and groups in the order they were first written."""

    source: str
    hosts: dict[str, Host] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    warnings: list[ParseWarning] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.group(ALL)
        self.group(UNGROUPED)

    def group(self, name: str, location: Location | None = None) -> Group:
        """The group of that name, created when first seen."""
        found = self.groups.get(name)
        if found is None:
            found = self.groups[name] = Group(name, location)
        elif found.location is None:
            found.location = location
        return found

    def host(
        self, name: str, group: str, location: Location | None = None, port: int | None = None
    ) -> Host:
        """The host of that name, created when first seen, and made a member of `group`.
        A `name:port` pattern sets `ansible_port`, as in Ansible only where the host is
        first written."""
        found = self.hosts.get(name)
        if found is None:
            found = self.hosts[name] = Host(name, location)
            if port is not None:
                found.vars[PORT_VAR] = port
        g = self.group(group)
        if group not in found.groups:
            found.groups.append(group)
        if name not in g.hosts:
            g.hosts.append(name)
        return found

    def add_child(self, parent: str, child: str, location: Location | None = None) -> None:
        """Make `child` a sub-group of `parent`; a cycle is an error, as in Ansible."""
        if parent == child or parent in self._descendants(child):
            raise InventoryError(
                f"group '{child}' cannot be a child of '{parent}': that makes a cycle "
                f"('{parent}' is already under '{child}'); remove one of the two links",
                location,
            )
        p, c = self.group(parent), self.group(child)
        if child not in p.children:
            p.children.append(child)
        if parent not in c.parents:
            c.parents.append(parent)

    def _descendants(self, name: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.groups[name].children) if name in self.groups else []
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.groups[current].children)
        return seen

    def finish(self) -> Inventory:
        """What Ansible does after parsing: top-level groups go under `all`, hosts that
        are in no group go to `ungrouped`, and each group's depth is computed."""
        for name, g in self.groups.items():
            if name != ALL and not g.parents:
                self.add_child(ALL, name)
        for host in self.hosts.values():
            if not [g for g in host.groups if g != ALL]:
                self.host(host.name, UNGROUPED)
        self._compute_depths()
        return self

    def _compute_depths(self) -> None:
        for g in self.groups.values():
            g.depth = 0
        # Longest path from `all` in a DAG: relax edges breadth-first.
        queue = [ALL]
        while queue:
            name = queue.pop(0)
            g = self.groups[name]
            for child in g.children:
                c = self.groups[child]
                if c.depth < g.depth + 1:
                    c.depth = g.depth + 1
                    queue.append(child)

    def ancestors(self, host: Host) -> list[Group]:
        """Every group the host belongs to, directly or through children, `all` included,
        in Ansible's merge order: by depth, then `ansible_group_priority`, then name."""
        seen: dict[str, Group] = {}
        stack = [*host.groups, ALL]
        while stack:
            name = stack.pop()
            if name not in seen and name in self.groups:
                g = self.groups[name]
                seen[name] = g
                stack.extend(g.parents)
        return sorted(seen.values(), key=lambda g: (g.depth, g.priority, g.name))

    def group_names(self, host: Host) -> list[str]:
        """The groups a playbook would see in `group_names`, without `ungrouped`."""
        return sorted(g.name for g in self.ancestors(host) if g.name not in (ALL, UNGROUPED))

    def effective_vars(self, host: Host) -> dict[str, VarValue]:
        """The host's variables after Ansible's precedence, lowest first: group variables
        of the inventory file (`all` < parent groups < child groups), then those of
        `group_vars/` files in the same order, then the host's own variables, then its
        `host_vars/` files."""
        merged: dict[str, VarValue] = {}
        groups = self.ancestors(host)
        for layer in ("vars", "file_vars"):
            for g in groups:
                for key, value in getattr(g, layer).items():
                    if key != GROUP_PRIORITY_VAR:  # read by `priority`, not a variable
                        merged[key] = VarValue(value, g.name)
        for layer_vars in (host.vars, host.file_vars):
            for key, value in layer_vars.items():
                merged[key] = VarValue(value, None)
        return merged

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts.values())
