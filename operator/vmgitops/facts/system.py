"""System facts of a VM: one constant probe script and a pure parser of its output.

The script takes no input and interpolates nothing; run it as `system_probe_argv()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vmgitops.facts.records import PRELUDE, MalformedOutput, parse_records

SYSTEM_PROBE_SCRIPT = (
    PRELUDE
    + r"""
r hostname "$(uname -n)"
r os-release "$(cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null)"
r kernel "$(uname -r)"
r arch "$(uname -m)"
if [ -d /run/systemd/system ]; then _sd=1; else _sd=0; fi
r init "$_sd" "$(cat /proc/1/comm 2>/dev/null)"
set --
for _t in apt-get dnf yum apk; do
  command -v "$_t" >/dev/null 2>&1 && set -- "$@" "$_t"
done
r pm "$@"
r end
"""
)

_MANAGERS = (("apt-get", "apt"), ("dnf", "dnf"), ("apk", "apk"), ("yum", "yum"))


def system_probe_argv() -> list[str]:
    """The argv that runs the probe (C locale, so record lengths count bytes)."""
    return ["env", "LC_ALL=C", "sh", "-c", SYSTEM_PROBE_SCRIPT, "vmgitops-facts"]


@dataclass(frozen=True)
class OsInfo:
    id: str = ""
    version_id: str = ""
    pretty_name: str = ""


@dataclass(frozen=True)
class SystemFacts:
    """What VirtualMachineTarget.status.facts shows, and what templates see as `facts`."""

    hostname: str = ""
    os: OsInfo = field(default_factory=OsInfo)
    kernel: str = ""
    arch: str = ""
    init_system: str = "unknown"
    package_manager: str = "unknown"

    def to_status(self) -> dict[str, Any]:
        """The camelCase form of the API (status.facts) and of the template's `facts`."""
        return {
            "hostname": self.hostname,
            "os": {
                "id": self.os.id,
                "versionId": self.os.version_id,
                "prettyName": self.os.pretty_name,
            },
            "kernel": self.kernel,
            "arch": self.arch,
            "initSystem": self.init_system,
            "packageManager": self.package_manager,
        }


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines of os-release(5), with shell quoting removed."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                for escaped in ('\\"', "\\$", "\\`", "\\\\"):
                    value = value.replace(escaped, escaped[1])
        out[key.strip()] = value
    return out


def parse_system_facts(stdout: bytes | str) -> SystemFacts:
    """The probe's output -> SystemFacts; raises MalformedOutput when it is not ours."""
    records = {r.tag: r for r in parse_records(stdout)}
    for needed in ("hostname", "kernel", "arch", "init", "pm"):
        if needed not in records:
            raise MalformedOutput(f"the facts probe printed no {needed!r} record")
    release = parse_os_release(records["os-release"].text(0)) if "os-release" in records else {}
    init = records["init"]
    comm = init.text(1).strip()
    booted = init.text(0) == "1" or comm == "systemd"
    init_system = "systemd" if booted else (comm or "unknown")
    found = {f.decode(errors="replace") for f in records["pm"].fields}
    manager = next((name for tool, name in _MANAGERS if tool in found), "unknown")
    return SystemFacts(
        hostname=records["hostname"].text(0).strip(),
        os=OsInfo(
            id=release.get("ID", ""),
            version_id=release.get("VERSION_ID", ""),
            pretty_name=release.get("PRETTY_NAME", ""),
        ),
        kernel=records["kernel"].text(0).strip(),
        arch=records["arch"].text(0).strip(),
        init_system=init_system,
        package_manager=manager,
    )
