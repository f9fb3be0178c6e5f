"""Injection payloads against every field of vmapp.yaml that reaches a VM: each is either
refused with a one-line ManifestInvalid naming the field, or accepted exactly as written
(never rewritten, never able to pass for an option). The VM half (what actually runs)
is tests/security/test_security_injection.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from chaos import figures
from security.payloads import OPTIONS, payloads
from vmgitops.manifest.errors import ManifestError
from vmgitops.manifest.parse import parse_manifest

RUN = "model"

#: field location -> (manifest with the payload in that field, how to read it back)
Field = tuple[Callable[[str], dict[str, Any]], Callable[[Any], str]]

FIELDS: dict[str, Field] = {
    "files[0].path": (
        lambda p: {"files": [{"path": f"/tmp/vmgt-inj/{p}", "content": "x"}]},
        lambda m: m.files[0].path.removeprefix("/tmp/vmgt-inj/"),
    ),
    "files[0].owner": (
        lambda p: {"files": [{"path": "/tmp/f", "content": "x", "owner": p}]},
        lambda m: m.files[0].owner,
    ),
    "files[0].group": (
        lambda p: {"files": [{"path": "/tmp/f", "content": "x", "group": p}]},
        lambda m: m.files[0].group,
    ),
    "files[0].mode": (
        lambda p: {"files": [{"path": "/tmp/f", "content": "x", "mode": p}]},
        lambda m: m.files[0].mode,
    ),
    "directories[0].path": (
        lambda p: {"directories": [{"path": f"/tmp/vmgt-inj/{p}"}]},
        lambda m: m.directories[0].path.removeprefix("/tmp/vmgt-inj/"),
    ),
    "packages[0].name": (
        lambda p: {"packages": [{"name": p}]},
        lambda m: m.packages[0].name,
    ),
    "services[0].name": (
        lambda p: {"services": [{"name": f"{p}.service", "state": "running"}]},
        lambda m: m.services[0].name.removesuffix(".service"),
    ),
    "commands[0].name": (
        lambda p: {"commands": [{"name": p, "run": ["/bin/true"]}]},
        lambda m: m.commands[0].name,
    ),
    "commands[0].run[2]": (
        lambda p: {"commands": [{"name": "c", "run": ["/usr/bin/printf", "%s\n", p]}]},
        lambda m: m.commands[0].run[2],
    ),
    "commands[0].run[0]": (
        lambda p: {"commands": [{"name": "c", "run": [p]}]},
        lambda m: m.commands[0].run[0],
    ),
    "commands[0].creates": (
        lambda p: {"commands": [{"name": "c", "run": ["/bin/true"], "creates": f"/tmp/{p}"}]},
        lambda m: m.commands[0].creates.removeprefix("/tmp/"),
    ),
    "healthChecks[0].command": (
        lambda p: {"healthChecks": [{"name": "h", "command": ["/bin/echo", p]}]},
        lambda m: m.health_checks[0].command[1],
    ),
    "healthChecks[0].tcp.host": (
        lambda p: {"healthChecks": [{"name": "h", "tcp": {"host": p, "port": 80}}]},
        lambda m: m.health_checks[0].tcp.host,
    ),
    "healthChecks[0].http.url": (
        lambda p: {"healthChecks": [{"name": "h", "http": {"url": f"http://127.0.0.1/{p}"}}]},
        lambda m: m.health_checks[0].http.url.removeprefix("http://127.0.0.1/"),
    ),
    "release.path": (
        lambda p: {"release": {"path": f"/opt/{p}", "source": "dist"}},
        lambda m: m.release.path.removeprefix("/opt/"),
    ),
}

#: Fields whose value becomes an argument of a program on the VM (sudo, apt, systemctl,
#: chown, nc...): an accepted value must never start with "-".
OPTION_FIELDS = (
    "files[0].owner",
    "files[0].group",
    "packages[0].name",
    "services[0].name",
    "healthChecks[0].tcp.host",
    "commands[0].name",
)


@functools.cache
def outcome(field: str, payload: str) -> tuple[bool, str]:
    build, read = FIELDS[field]
    text = yaml.safe_dump(build(payload), allow_unicode=True, width=10**6)
    try:
        manifest = parse_manifest(text)
    except ManifestError as exc:
        return False, f"{exc.reason}|{exc.message}"
    return True, read(manifest)


ALL = payloads(RUN) + OPTIONS


@pytest.mark.parametrize("field", sorted(FIELDS), ids=lambda f: f"payloads-in-{f}")
def test_every_payload_is_refused_clearly_or_kept_exactly(field: str) -> None:
    accepted = refused = 0
    problems = []
    for p in ALL:
        ok, got = outcome(field, p)
        if ok:
            accepted += 1
            if got != p:
                problems.append(f"accepted but rewritten: {p!r} -> {got!r}")
            if field in OPTION_FIELDS and got.startswith("-"):
                problems.append(f"accepted an option-like value: {p!r}")
        else:
            refused += 1
            reason, _, message = got.partition("|")
            if reason != "ManifestInvalid" or field not in message or "\n" in message:
                problems.append(f"unclear refusal of {p!r}: {reason}: {message!r}")
    print(f"\n{field}: {len(ALL)} payloads, {accepted} accepted exactly, {refused} refused")
    assert len(ALL) >= 500
    assert not problems, problems[:10]


def test_injection_refusals_summary() -> None:
    """The figure: every (field, payload) pair refused clearly or kept exactly."""
    cases = accepted = unclear = 0
    for field in FIELDS:
        for p in ALL:
            ok, got = outcome(field, p)
            cases += 1
            if ok:
                accepted += 1
                unclear += got != p or (field in OPTION_FIELDS and got.startswith("-"))
            else:
                reason, _, message = got.partition("|")
                unclear += reason != "ManifestInvalid" or field not in message or "\n" in message
    area = "5 injection"
    figures.record(
        area,
        "field x payload cases refused (one line, naming the field) / kept exactly",
        f"{cases - accepted} / {accepted} of {cases}",
        "informative",
        True,
    )
    figures.count(area, "cases rewritten, option-like, or refused unclearly", unclear)
    assert unclear == 0
