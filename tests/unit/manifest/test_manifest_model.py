"""vmapp.yaml validation: every bad manifest names the file, the field and why."""

from __future__ import annotations

import pytest

from vmgitops.manifest.errors import ManifestError
from vmgitops.manifest.parse import parse_manifest

GOOD = r"""
files:
  - path: /etc/hello/hello.conf
    content: "greeting={{ params.greeting }}\n"
    template: true
    mode: "0644"
    owner: root
    group: root
  - {path: /usr/local/bin/hello, source: bin/hello, mode: "0755"}
directories:
  - {path: /var/lib/hello, mode: "0750"}
packages:
  - {name: curl, state: present}
services:
  - name: hello.service
    unit: "[Service]\nExecStart=/usr/local/bin/hello\n"
    enabled: true
    state: running
    restartOnChange: [/etc/hello/hello.conf]
release: {path: /opt/hello, source: dist, keep: 5}
commands:
  - name: migrate
    run: ["/opt/hello/current/bin/migrate", "--yes"]
    onChange: [release]
    creates: /var/lib/hello/.migrated
healthChecks:
  - {name: unit, command: ["systemctl", "is-active", "hello.service"]}
  - {name: http, http: {url: "http://127.0.0.1:8080/healthz", expectStatus: 200}, timeoutSeconds: 5}
  - {name: tcp, tcp: {port: 8080}}
"""


def test_the_documented_example_is_valid() -> None:
    m = parse_manifest(GOOD)
    assert [f.path for f in m.files] == ["/etc/hello/hello.conf", "/usr/local/bin/hello"]
    assert m.services[0].restart_on_change == ["/etc/hello/hello.conf"]
    assert m.release is not None and m.release.keep == 5
    assert m.health_checks[1].http is not None and m.health_checks[1].http.expect_status == 200
    assert m.health_checks[2].tcp is not None and m.health_checks[2].tcp.host == "127.0.0.1"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="an empty file manages nothing"),
        pytest.param("files:\ndirectories:\n", id="empty lists written as nothing"),
        pytest.param("files:\n- {path: /etc/x, content: '', mode: '4755'}\n", id="setuid mode"),
        pytest.param("files:\n- {path: /etc/x, content: a, owner: '0', group: '0'}\n", id="uid"),
    ],
)
def test_valid_manifests(text: str) -> None:
    parse_manifest(text)


BAD = [
    (
        "files:\n- {path: /etc/x, content: a, mode: '999'}\n",
        "vmapp.yaml: files[0].mode: '999' is not an octal mode like '0644'",
        "mode not octal",
    ),
    (
        "files:\n- {path: /etc/x, content: a, mode: 0644}\n",
        'files[0].mode: write the mode as a quoted string like "0644"',
        "unquoted mode is a number",
    ),
    (
        "files:\n- {path: /etc/x, content: a, moed: '0644'}\n",
        "files[0].moed: unknown field (did you mean 'mode'?)",
        "typo in a field name",
    ),
    (
        "heathChecks: []\n",
        "heathChecks: unknown field (did you mean 'healthChecks'?)",
        "typo at the top level",
    ),
    (
        "files:\n- {path: etc/x, content: a}\n",
        "files[0].path: 'etc/x' is not an absolute path",
        "relative VM path",
    ),
    (
        "files:\n- {path: /etc/../shadow, content: a}\n",
        "files[0].path: '/etc/../shadow' contains '..'",
        "dot-dot in a VM path",
    ),
    (
        "files:\n- {path: /etc//x, content: a}\n",
        "is not normalised (write '/etc/x')",
        "VM path not normalised",
    ),
    (
        "files:\n- {path: /proc/sys/x, content: a}\n",
        "is under /proc, which vmgitops never writes",
        "kernel interface",
    ),
    (
        "directories:\n- {path: /}\n",
        "directories[0].path: '/' is the root directory",
        "root directory",
    ),
    (
        "files:\n- {path: /var/lib/vmgitops/app/inventory.json, content: a}\n",
        "is under /var/lib/vmgitops",
        "our own state directory",
    ),
    (
        'files:\n- {path: "/etc/a\\nb", content: a}\n',
        "files[0].path: path contains a control character",
        "newline in a path",
    ),
    (
        "files:\n- {path: /etc/x}\n",
        "files[0]: give exactly one of 'content' or 'source'",
        "neither content nor source",
    ),
    (
        "files:\n- {path: /etc/x, content: a, source: b}\n",
        "give exactly one of 'content' or 'source'",
        "both content and source",
    ),
    (
        "files:\n- {path: /etc/x, content: a}\n- {path: /etc/x, content: b}\n",
        "files[1].path: '/etc/x' is already declared by files[0].path",
        "duplicate file",
    ),
    (
        "files:\n- {path: /etc/x, content: a}\ndirectories:\n- {path: /etc/x/y}\n",
        "directories[0].path: '/etc/x/y' is below the file '/etc/x'",
        "directory below a file",
    ),
    (
        "packages:\n- {name: 'curl; rm -rf /'}\n",
        "packages[0].name: 'curl; rm -rf /' is not a safe package name",
        "package name with shell",
    ),
    (
        "packages:\n- {name: curl, state: latest}\n",
        "packages[0].state: should be 'present' or 'absent'",
        "package state unknown",
    ),
    (
        "services:\n- {name: hello}\n",
        "services[0].name: 'hello' is not a systemd unit name",
        "unit without a suffix",
    ),
    (
        "services:\n- {name: ../x.service}\n",
        "services[0].name: '../x.service' is not a systemd unit",
        "unit name with a path",
    ),
    (
        "services:\n- {name: a.service, state: started}\n",
        "services[0].state: should be 'running' or 'stopped'",
        "service state unknown",
    ),
    (
        "services:\n- {name: a.service, restartOnChange: [/etc/nope]}\n",
        "services[0].restartOnChange[0]: '/etc/nope' is neither a path in files[] nor 'release'",
        "restart on an unmanaged path",
    ),
    (
        "commands:\n- {name: m, run: [x], onChange: [release]}\n",
        "commands[0].onChange[0]: 'release' is named but the manifest has no release",
        "onChange release without a release",
    ),
    ("commands:\n- {name: m, run: []}\n", "commands[0].run: must not be empty", "empty argv"),
    (
        "commands:\n- {name: m, run: 'echo hi'}\n",
        "commands[0].run: should be a valid list",
        "a shell string instead of argv",
    ),
    (
        "commands:\n- {name: m, run: [x]}\n- {name: m, run: [y]}\n",
        "commands[1].name: 'm' is already declared by commands[0]",
        "duplicate command",
    ),
    (
        "commands:\n- {name: M!, run: [x]}\n",
        "commands[0].name: 'M!' is not a name",
        "bad command name",
    ),
    (
        "release: {path: /opt/x, source: dist, keep: 0}\n",
        "release.keep: should be greater than or equal to 1",
        "keep zero",
    ),
    (
        "release: {path: /opt/x, source: dist}\nfiles:\n- {path: /opt/x/y, content: a}\n",
        "files[0].path: '/opt/x/y' is inside release.path",
        "file inside the release",
    ),
    (
        "healthChecks:\n- {name: h}\n",
        "healthChecks[0]: give exactly one of 'command', 'http' or 'tcp'",
        "check with no probe",
    ),
    (
        "healthChecks:\n- {name: h, tcp: {port: 70000}}\n",
        "healthChecks[0].tcp.port: should be less than",
        "port out of range",
    ),
    (
        "healthChecks:\n- {name: h, http: {url: 'file:///etc/passwd'}}\n",
        "healthChecks[0].http.url:",
        "http check with another scheme",
    ),
    (
        "files:\n- {path: /etc/x, content: a, template: 'yes'}\n",
        "files[0].template: should be a valid boolean",
        "string instead of boolean",
    ),
    ("files: {path: /etc/x}\n", "files: should be a valid list", "mapping instead of list"),
    ("release: [1]\n", "release: should be a mapping", "list instead of mapping"),
    ("- a\n- b\n", "vmapp.yaml: the top level must be a mapping", "top level is a list"),
    ("files: [\n", "vmapp.yaml: line 2, column 1:", "YAML syntax error with a position"),
    (
        "files: []\nfiles: []\n",
        "vmapp.yaml: line 2, column 1: duplicate key 'files'",
        "duplicate key",
    ),
    ("a: &x [1]\nb: *x\n", "anchors and aliases are not supported", "YAML alias (bomb guard)"),
]


@pytest.mark.parametrize(("text", "fragment"), [pytest.param(t, f, id=i) for t, f, i in BAD])
def test_bad_manifests(text: str, fragment: str) -> None:
    with pytest.raises(ManifestError) as err:
        parse_manifest(text)
    assert err.value.reason == "ManifestInvalid"
    assert err.value.message.startswith("vmapp.yaml: ")
    assert fragment in err.value.message


def test_every_problem_is_reported_at_once() -> None:
    text = "files:\n- {path: etc/a, content: a}\n- {path: /b, content: b, mode: '9'}\n"
    with pytest.raises(ManifestError) as err:
        parse_manifest(text)
    assert "files[0].path" in err.value.message and "files[1].mode" in err.value.message


def test_error_never_quotes_file_content() -> None:
    text = "files:\n- {path: /etc/x, content: 12345, sensitive: true}\n"
    with pytest.raises(ManifestError) as err:
        parse_manifest(text)
    assert "12345" not in err.value.message
    assert "files[0].content: should be a valid string" in err.value.message
