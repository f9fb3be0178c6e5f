"""Reading an inventory as Ansible would: pick the format, then add the `group_vars/` and
`host_vars/` files that sit next to the inventory file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from vmgitops.inventory.ini import parse_ini
from vmgitops.inventory.model import Inventory, InventoryError, Location, ParseWarning
from vmgitops.inventory.yaml_inventory import parse_vars_file, parse_yaml

Format = Literal["auto", "ini", "yaml"]
YAML_SUFFIXES = (".yml", ".yaml", ".json")
VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")
VAULT_HEADER = "$ANSIBLE_VAULT;"
MAX_VARS_FILE = 4 * 1024 * 1024
_YAML_KEY = re.compile(r"^[^\s=#;\[]+:(\s|$)")


def detect_format(text: str, source: str) -> Literal["ini", "yaml"]:
    """YAML for .yml/.yaml/.json names; otherwise from the first meaningful line: `key:`
    (a word, then ':' and a space or the end), `---` or `{` is YAML; anything else, such
    as `[section]`, `host var=value` or `host:2222`, is INI."""
    if source.lower().endswith(YAML_SUFFIXES):
        return "yaml"
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        return "yaml" if line.startswith(("---", "{")) or _YAML_KEY.match(line) else "ini"
    return "ini"


def parse_inventory(text: str, source: str, fmt: Format = "auto") -> Inventory:
    """Parse inventory text; InventoryError says where and what to do."""
    if text.lstrip().startswith(VAULT_HEADER):
        raise InventoryError(
            "the file is encrypted with ansible-vault; decrypt it first "
            "(ansible-vault view FILE > plain-inventory)",
            Location(source),
        )
    chosen = detect_format(text, source) if fmt == "auto" else fmt
    return parse_yaml(text, source) if chosen == "yaml" else parse_ini(text, source)


def _vars_files(directory: Path, name: str) -> list[Path]:
    """Ansible's host_group_vars lookup: `DIR/name` as a folder of files, or `DIR/name`
    with no suffix or .yml, .yaml or .json."""
    base = directory / name
    if base.is_dir():
        return sorted(
            p
            for p in base.rglob("*")
            if p.is_file()
            and not p.name.startswith(".")
            and not p.name.endswith("~")
            and p.suffix in VARS_SUFFIXES
        )
    return [p for p in (Path(f"{base}{suffix}") for suffix in VARS_SUFFIXES) if p.is_file()]


def _read_vars(path: Path, inv: Inventory) -> dict[str, Any] | None:
    if path.stat().st_size > MAX_VARS_FILE:
        raise InventoryError("variables file larger than 4 MiB", Location(str(path)))
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith(VAULT_HEADER):
        inv.warnings.append(
            ParseWarning(
                "encrypted with ansible-vault, so its variables are not read (decrypt it, "
                "or move what vmgitops needs into a plain file)",
                Location(str(path)),
            )
        )
        return None
    return parse_vars_file(text, str(path))


def add_vars_dirs(inv: Inventory, directory: Path) -> None:
    """Merge `group_vars/<group>` and `host_vars/<host>` files found in `directory`."""
    for group in inv.groups.values():
        for path in _vars_files(directory / "group_vars", group.name):
            group.file_vars.update(_read_vars(path, inv) or {})
    for host in inv.hosts.values():
        for path in _vars_files(directory / "host_vars", host.name):
            host.file_vars.update(_read_vars(path, inv) or {})
    for kind, known in (("group", set(inv.groups)), ("host", set(inv.hosts))):
        root = directory / f"{kind}_vars"
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir()):
            if child.name.startswith(".") or child.name.endswith("~"):
                continue
            stem = child.name
            if child.is_file():
                for suffix in VARS_SUFFIXES[1:]:
                    stem = stem.removesuffix(suffix)
            if stem not in known:
                inv.warnings.append(
                    ParseWarning(
                        f"names no {kind} of the inventory; its variables are not used",
                        Location(str(child)),
                    )
                )


def load_inventory(path: Path, fmt: Format = "auto", *, vars_dirs: bool = True) -> Inventory:
    """Read an inventory file and, with `vars_dirs`, the variables folders beside it."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InventoryError("not UTF-8 text", Location(str(path))) from None
    inv = parse_inventory(text, str(path), fmt)
    if vars_dirs:
        add_vars_dirs(inv, path.resolve().parent)
    return inv
