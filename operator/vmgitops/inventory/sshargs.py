"""What `ansible_ssh_common_args` / `ansible_ssh_extra_args` ask of ssh: a jump host is the
one thing vmgitops can honour (as spec.bastion); every other option is reported.

Understood jump forms: `-J [user@]host[:port]`, `-o ProxyJump=[user@]host[:port]` (also
`-oProxyJump=...` and `-o 'ProxyJump host'`), and `-o ProxyCommand="ssh -W %h:%p [-q]
[-p PORT] [-l USER] [user@]host"`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

HOST_KEY_OPTIONS = frozenset(
    {"stricthostkeychecking", "userknownhostsfile", "globalknownhostsfile"}
)
"""Options that would weaken or move host key checking, which vmgitops always does."""


@dataclass(frozen=True)
class Jump:
    """A jump host as ssh names it."""

    host: str
    port: int | None = None
    user: str | None = None

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.host}{port}"


@dataclass
class SshArgs:
    """The jump host (if any) and what could not be understood, by option name only
    (values may hold paths or secrets)."""

    jump: Jump | None = None
    unsupported: list[str] = field(default_factory=list)
    host_key_options: list[str] = field(default_factory=list)


_JUMP = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:@\s\[\]]+)(?::(?P<port>\d+))?$")


def parse_jump(text: str) -> Jump | None:
    """`[user@]host[:port]`, or `ssh://[user@]host[:port]`; None if it is not one."""
    text = text.removeprefix("ssh://")
    m = _JUMP.match(text)
    if m is None:
        return None
    port = int(m.group("port")) if m.group("port") else None
    if port is not None and not 1 <= port <= 65535:
        return None
    return Jump(m.group("host").strip("[]"), port, m.group("user"))


def _proxy_command(command: str) -> Jump | None:
    """The jump host of `ssh -W %h:%p ... [user@]host`; None for any other command."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if not argv or argv[0].rsplit("/", 1)[-1] != "ssh":
        return None
    forward, port, user, hosts = False, None, None, []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-W" and i + 1 < len(argv):
            forward = argv[i + 1] == "%h:%p"
            i += 2
            continue
        if arg in ("-p", "-l") and i + 1 < len(argv):
            if arg == "-p":
                if not argv[i + 1].isdigit():
                    return None
                port = int(argv[i + 1])
            else:
                user = argv[i + 1]
            i += 2
            continue
        if arg in ("-q", "-T", "-N", "-4", "-6", "-C"):
            i += 1
            continue
        if arg.startswith("-"):
            return None  # an option we do not model (identity file, config, ...)
        hosts.append(arg)
        i += 1
    if not forward or len(hosts) != 1:
        return None
    jump = parse_jump(hosts[0])
    if jump is None:
        return None
    return Jump(jump.host, port or jump.port, jump.user or user)


def parse_ssh_args(text: str) -> SshArgs:
    """Read one `ansible_ssh_*_args` value."""
    out = SshArgs()
    try:
        argv = shlex.split(text)
    except ValueError:
        out.unsupported.append("(unbalanced quotes)")
        return out
    i = 0
    while i < len(argv):
        arg = argv[i]
        value: str | None = None
        if arg in ("-o", "-J") and i + 1 < len(argv):
            value = argv[i + 1]
            i += 2
        elif (arg.startswith("-o") or arg.startswith("-J")) and len(arg) > 2:
            value = arg[2:]
            i += 1
        else:
            out.unsupported.append(arg.split("=", 1)[0] if arg.startswith("-") else "(argument)")
            i += 1
            continue
        if arg.startswith("-J"):
            _set_jump(out, "ProxyJump", value)
            continue
        m = re.match(r"^\s*([A-Za-z]+)\s*(?:=\s*|\s+)(.*)$", value, re.S)
        if m is None:
            out.unsupported.append("-o (malformed)")
            continue
        name, option_value = m.group(1), m.group(2).strip()
        lower = name.lower()
        if lower == "proxyjump":
            _set_jump(out, "ProxyJump", option_value)
        elif lower == "proxycommand":
            jump = _proxy_command(option_value)
            if jump is None:
                out.unsupported.append(
                    "ProxyCommand (only 'ssh -W %h:%p [-p PORT] [user@]host' maps to a bastion)"
                )
            else:
                _set_jump(out, "ProxyCommand", str(jump))
        elif lower in HOST_KEY_OPTIONS:
            out.host_key_options.append(name)
        else:
            out.unsupported.append(name)
    return out


def _set_jump(out: SshArgs, option: str, value: str) -> None:
    if value.lower() == "none":
        return
    if "," in value:
        out.unsupported.append(f"{option} with several hops (only one bastion is supported)")
        return
    jump = parse_jump(value)
    if jump is None:
        out.unsupported.append(f"{option} (not [user@]host[:port])")
    elif out.jump is not None and out.jump != jump:
        out.unsupported.append(f"{option} (a second, different jump host)")
    else:
        out.jump = jump
