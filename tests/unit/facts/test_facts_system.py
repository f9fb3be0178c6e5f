"""System facts: the real probe script on this machine's shells, and parser tables."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from vmgitops.facts.records import MalformedOutput
from vmgitops.facts.system import (
    SYSTEM_PROBE_SCRIPT,
    SystemFacts,
    parse_os_release,
    parse_system_facts,
    system_probe_argv,
)


def stream(records: list[tuple[str, list[str]]]) -> bytes:
    out = b""
    for tag, fields in records:
        out += f"{tag} {len(fields)}\n".encode()
        for f in fields:
            data = f.encode()
            out += str(len(data)).encode() + b":" + data + b"\n"
    return out + b"end 0\n"


DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
ALPINE = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.1\nPRETTY_NAME='Alpine Linux v3.20'\n"
FEDORA = 'ID=fedora\nVERSION_ID=40\nPRETTY_NAME="Fedora Linux 40 (\\"Server\\")"\n'


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        pytest.param(
            [
                ("hostname", ["web-1\n"]),
                ("os-release", [DEBIAN]),
                ("kernel", ["6.1.0"]),
                ("arch", ["x86_64"]),
                ("init", ["1", "systemd"]),
                ("pm", ["apt-get"]),
            ],
            {
                "hostname": "web-1",
                "os": {
                    "id": "debian",
                    "versionId": "12",
                    "prettyName": "Debian GNU/Linux 12 (bookworm)",
                },
                "kernel": "6.1.0",
                "arch": "x86_64",
                "initSystem": "systemd",
                "packageManager": "apt",
            },
            id="debian with systemd",
        ),
        pytest.param(
            [
                ("hostname", ["a"]),
                ("os-release", [ALPINE]),
                ("kernel", ["6.6"]),
                ("arch", ["aarch64"]),
                ("init", ["0", "init"]),
                ("pm", ["apk"]),
            ],
            {
                "hostname": "a",
                "os": {"id": "alpine", "versionId": "3.20.1", "prettyName": "Alpine Linux v3.20"},
                "kernel": "6.6",
                "arch": "aarch64",
                "initSystem": "init",
                "packageManager": "apk",
            },
            id="alpine with busybox init",
        ),
        pytest.param(
            [
                ("hostname", ["f"]),
                ("os-release", [FEDORA]),
                ("kernel", ["6.8"]),
                ("arch", ["x86_64"]),
                ("init", ["0", "systemd"]),
                ("pm", ["dnf", "yum"]),
            ],
            {
                "hostname": "f",
                "os": {
                    "id": "fedora",
                    "versionId": "40",
                    "prettyName": 'Fedora Linux 40 ("Server")',
                },
                "kernel": "6.8",
                "arch": "x86_64",
                "initSystem": "systemd",
                "packageManager": "dnf",
            },
            id="fedora: dnf wins over yum, systemd from PID 1's name",
        ),
        pytest.param(
            [
                ("hostname", ["x"]),
                ("os-release", [""]),
                ("kernel", ["5"]),
                ("arch", ["riscv64"]),
                ("init", ["0", ""]),
                ("pm", []),
            ],
            {
                "hostname": "x",
                "os": {"id": "", "versionId": "", "prettyName": ""},
                "kernel": "5",
                "arch": "riscv64",
                "initSystem": "unknown",
                "packageManager": "unknown",
            },
            id="nothing known: unknown, not an error",
        ),
    ],
)
def test_parse_system_facts(
    records: list[tuple[str, list[str]]], expected: dict[str, object]
) -> None:
    assert parse_system_facts(stream(records)).to_status() == expected


def test_missing_record_is_malformed() -> None:
    with pytest.raises(MalformedOutput, match="'pm'"):
        parse_system_facts(
            stream(
                [
                    ("hostname", ["a"]),
                    ("kernel", ["1"]),
                    ("arch", ["x"]),
                    ("init", ["1", "systemd"]),
                ]
            )
        )


def test_os_release_quoting() -> None:
    assert parse_os_release('# c\nA="x \\"y\\" \\$z"\nB=\'q\'\nC=plain\nbad line\n') == {
        "A": 'x "y" $z',
        "B": "q",
        "C": "plain",
    }


SHELLS = [s for s in ("sh", "dash", "bash") if shutil.which(s)]


@pytest.mark.parametrize("shell", SHELLS)
def test_real_probe_on_this_machine(shell: str) -> None:
    argv = system_probe_argv()
    argv[argv.index("sh")] = shell
    out = subprocess.run(argv, capture_output=True, timeout=30, check=True).stdout
    facts = parse_system_facts(out)
    assert isinstance(facts, SystemFacts)
    assert facts.kernel and facts.arch and facts.hostname
    assert facts.package_manager in ("apt", "dnf", "apk", "yum", "unknown")


def test_the_probe_is_a_constant() -> None:
    assert system_probe_argv()[4] is SYSTEM_PROBE_SCRIPT
