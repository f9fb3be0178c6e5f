"""The YAML inventory format, read the way Ansible's `yaml` plugin reads it, and the JSON
that `ansible-inventory --list` prints (so a dynamic inventory can be imported through it).

```yaml
all:
  vars: {ansible_user: deploy}
  children:
    web:
      hosts:
        web[01:03].example.com:
        web04.example.com: {ansible_port: 2222}
```

Every top-level key is a group; a group holds `hosts`, `children` and `vars`, each a
mapping (or null). The document is walked as YAML nodes, so errors carry line numbers;
they never quote values (a value may be a password). `!vault` values are kept opaque and
`!unsafe` ones read as plain strings.
"""

from __future__ import annotations

from typing import Any

import yaml

from vmgitops.inventory.hostpattern import HostPatternError, parse_host_pattern
from vmgitops.inventory.model import (
    ALL,
    Inventory,
    InventoryError,
    Location,
    ParseWarning,
)

SECTIONS = ("hosts", "children", "vars")
META = "_meta"


class VaultValue:
    """An Ansible Vault-encrypted value: never decrypted, never shown."""

    def __repr__(self) -> str:
        return "<vault-encrypted>"


class _Loader(yaml.SafeLoader):
    """SafeLoader that also accepts Ansible's `!vault` and `!unsafe` tags."""


def _vault(loader: yaml.SafeLoader, node: yaml.Node) -> VaultValue:
    return VaultValue()


def _unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return None


_Loader.add_constructor("!vault", _vault)
_Loader.add_constructor("!unsafe", _unsafe)

_NULL_TAG = "tag:yaml.org,2002:null"


class _Walker:
    def __init__(self, loader: _Loader, inv: Inventory) -> None:
        self.loader = loader
        self.inv = inv

    def loc(self, node: yaml.Node) -> Location:
        return Location(self.inv.source, node.start_mark.line + 1)

    def value(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def name(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL_TAG:
            raise InventoryError(f"a {what} name must be a plain string", self.loc(node))
        value = self.value(node)
        if isinstance(value, VaultValue):
            raise InventoryError(f"a {what} name cannot be vault-encrypted", self.loc(node))
        return str(value)

    @staticmethod
    def is_null(node: yaml.Node) -> bool:
        return isinstance(node, yaml.ScalarNode) and (node.tag == _NULL_TAG or node.value == "")

    def entries(
        self, node: yaml.Node, what: str, *, lone_string: bool = True
    ) -> list[tuple[yaml.Node, yaml.Node]]:
        """The pairs of a mapping section; null is empty, and (for hosts, children and
        vars, as in Ansible) a lone string is {string: null}."""
        if self.is_null(node):
            return []
        if isinstance(node, yaml.ScalarNode) and lone_string:
            return [(node, yaml.ScalarNode(_NULL_TAG, "", node.start_mark, node.end_mark))]
        if not isinstance(node, yaml.MappingNode):
            raise InventoryError(
                f"{what} must be a mapping (name: ...), not a "
                f"{'list' if isinstance(node, yaml.SequenceNode) else 'value'}; write each "
                "entry as a key followed by ':'",
                self.loc(node),
            )
        return list(node.value)

    def group(self, name: str, node: yaml.Node, loc: Location) -> None:
        self.inv.group(name, loc)
        if self.is_null(node):
            return
        if not isinstance(node, yaml.MappingNode):
            self.inv.warnings.append(
                ParseWarning(
                    f"group '{name}' is not a mapping of hosts, children and vars; skipped",
                    loc,
                )
            )
            return
        for key_node, value_node in node.value:
            key = self.name(key_node, "section")
            if key == "vars":
                for var_key, var_value in self.entries(value_node, f"vars of group '{name}'"):
                    var = self.name(var_key, "variable")
                    self.inv.group(name).vars[var] = self.value(var_value)
            elif key == "children":
                for child_key, child_value in self.entries(
                    value_node, f"children of group '{name}'"
                ):
                    child = self.name(child_key, "group")
                    self.group(child, child_value, self.loc(child_key))
                    self.inv.add_child(name, child, self.loc(child_key))
            elif key == "hosts":
                for host_key, host_value in self.entries(value_node, f"hosts of group '{name}'"):
                    self.host(name, host_key, host_value)
            else:
                self.inv.warnings.append(
                    ParseWarning(
                        f"group '{name}' has a key '{key}', which is not one of "
                        f"{', '.join(SECTIONS)}; skipped (is it a misspelling, or a host or "
                        "variable at the wrong indentation?)",
                        self.loc(key_node),
                    )
                )

    def host(self, group: str, key: yaml.Node, node: yaml.Node) -> None:
        pattern = self.name(key, "host")
        loc = self.loc(key)
        try:
            names, port = parse_host_pattern(pattern)
        except HostPatternError as exc:
            raise InventoryError(f"host pattern '{pattern}': {exc}", loc) from None
        variables: dict[str, Any] = {}
        for var_key, var_value in self.entries(
            node, f"variables of host '{pattern}'", lone_string=False
        ):
            variables[self.name(var_key, "variable")] = self.value(var_value)
        for host in names:
            self.inv.host(host, group, loc, port).vars.update(variables)

    def list_output(self, root: yaml.MappingNode) -> None:
        """`ansible-inventory --list`: groups with lists of hosts and children, and all
        host variables under `_meta.hostvars`."""
        hostvars: dict[str, Any] = {}
        for key_node, value_node in root.value:
            name = self.name(key_node, "group")
            loc = self.loc(key_node)
            if name == META:
                meta = self.value(value_node) or {}
                hv = meta.get("hostvars", {}) if isinstance(meta, dict) else None
                if not isinstance(hv, dict):
                    raise InventoryError("_meta.hostvars must be a mapping", loc)
                hostvars = hv
                continue
            data = self.value(value_node)
            if data is None:
                self.inv.group(name, loc)
                continue
            if not isinstance(data, dict):
                raise InventoryError(f"group '{name}' must be a mapping", loc)
            self.inv.group(name, loc)
            for host in _str_list(data.get("hosts"), f"hosts of group '{name}'", loc):
                self.inv.host(host, name, loc)
            for child in _str_list(data.get("children"), f"children of group '{name}'", loc):
                self.inv.add_child(name, child, loc)
            group_vars = data.get("vars") or {}
            if not isinstance(group_vars, dict):
                raise InventoryError(f"vars of group '{name}' must be a mapping", loc)
            self.inv.group(name).vars.update({str(k): v for k, v in group_vars.items()})
        for host, variables in hostvars.items():
            if not isinstance(variables, dict):
                raise InventoryError(f"_meta.hostvars of '{host}' must be a mapping")
            if str(host) not in self.inv.hosts:
                self.inv.host(str(host), ALL)
            self.inv.hosts[str(host)].vars.update({str(k): v for k, v in variables.items()})


def _str_list(value: Any, what: str, loc: Location) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InventoryError(f"{what} must be a list in ansible-inventory --list output", loc)
    return [str(v) for v in value]


def _yaml_error(exc: yaml.YAMLError, source: str) -> InventoryError:
    """The parser's own words and position, without the snippet of the line it quotes."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        return InventoryError(
            f"not valid YAML: {problem}"
            + (f" (column {mark.column + 1})" if mark is not None else ""),
            Location(source, mark.line + 1) if mark is not None else Location(source),
        )
    return InventoryError("not valid YAML", Location(source))


def parse_vars_file(text: str, source: str) -> dict[str, Any]:
    """A `group_vars/` or `host_vars/` file: a mapping of variables (or nothing)."""
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InventoryError(
            "a variables file must be a mapping of names to values", Location(source)
        )
    return {str(k): v for k, v in data.items()}


def parse_yaml(text: str, source: str) -> Inventory:
    """Parse a YAML (or JSON) inventory; raises InventoryError with file and line."""
    inv = Inventory(source)
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, source) from None
        walker = _Walker(loader, inv)
        if root is None or walker.is_null(root):
            return inv.finish()
        if not isinstance(root, yaml.MappingNode):
            raise InventoryError(
                "a YAML inventory is a mapping of group names (usually just 'all:') to "
                "hosts, children and vars",
                walker.loc(root),
            )
        try:
            keys = {walker.name(k, "group") for k, _ in root.value}
            if META in keys:
                walker.list_output(root)
            else:
                for key_node, value_node in root.value:
                    name = walker.name(key_node, "group")
                    walker.group(name, value_node, walker.loc(key_node))
        except yaml.constructor.ConstructorError as exc:
            mark = exc.problem_mark
            raise InventoryError(
                f"cannot read a value: {exc.problem}",
                Location(source, mark.line + 1) if mark is not None else Location(source),
            ) from None
    finally:
        loader.dispose()
    return inv.finish()
