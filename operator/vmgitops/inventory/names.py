"""Names the import makes: Kubernetes object names and labels from inventory names and
values, and the few readings of Ansible values they need. Pure functions."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from vmgitops.api.meta import GROUP

GROUP_LABEL_PREFIX = f"{GROUP}/group-"
HOSTNAME_ANNOTATION = f"{GROUP}/ansible-inventory-hostname"
SECRET_WORDS = ("password", "pass", "secret", "token", "key")

LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
UNIX_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$")


def is_secret_name(name: str) -> bool:
    """Whether a variable's name suggests it holds a secret; its value is never shown."""
    lower = name.lower()
    return any(word in lower for word in SECRET_WORDS)


def target_name(host: str, *, short: bool = False) -> str:
    """A DNS-1123 subdomain from an inventory host name: lower case, runs of other
    characters made '-', each dot-separated part trimmed; '' when nothing is left.
    With `short`, only the first part of a DNS name (not of an IP address)."""
    name = host.strip().lower()
    if short and not is_ip(name):
        name = name.split(".", 1)[0]
    name = re.sub(r"[^a-z0-9.-]+", "-", name)
    parts = [p.strip("-") for p in name.split(".")]
    name = ".".join(p for p in parts if p)
    return name[:253].rstrip("-.")


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def group_label_key(group: str) -> str | None:
    """`vmgitops.io/group-<group>`, or None when the group name cannot make a label key
    (characters other than letters, digits, '-', '_', '.' become '-')."""
    part = ("group-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", group)).rstrip("-_.")
    if len(part) > 63 or not LABEL_NAME.match(part) or part == "group":
        return None
    return f"{GROUP}/{part}"


def valid_label_key(key: str) -> bool:
    """A Kubernetes label key: `[prefix/]name`, prefix a DNS subdomain."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not all(DNS_LABEL.match(p) for p in prefix.split("."))):
        return False
    return bool(LABEL_NAME.match(name)) and len(name) <= 63


def valid_label_value(value: str) -> bool:
    return len(value) <= 63 and bool(LABEL_VALUE.match(value))


def ansible_bool(value: Any) -> bool | None:
    """Ansible's boolean reading of a variable; None when it is not a boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {1: True, 0: False}.get(value)
    if isinstance(value, str):
        lower = value.strip().lower()
        if lower in ("yes", "on", "1", "true", "y", "t"):
            return True
        if lower in ("no", "off", "0", "false", "n", "f", ""):
            return False
    return None


def ansible_port(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        port = value
    elif isinstance(value, str) and value.strip().isdigit():
        port = int(value.strip())
    else:
        return None
    return port if 1 <= port <= 65535 else None
