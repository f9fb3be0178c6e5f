"""Rendering: sandboxed Jinja2 with StrictUndefined, concrete bytes and stable digests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vmgitops.manifest import LoadedApp, ManifestError, TargetInfo, load_app, render
from vmgitops.manifest.parse import parse_manifest
from vmgitops.manifest.templates import render_text

TARGET = TargetInfo("web-eu-1", "127.0.3.1", {"env": "staging", "region": "eu"})
FACTS = {"os": {"id": "debian", "versionId": "12"}, "arch": "x86_64"}
CONTEXT = {
    "params": {"greeting": "hello"},
    "target": TARGET.as_context(),
    "facts": FACTS,
    "revision": "abc123",
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("{{ params.greeting }}", "hello", id="params"),
        pytest.param("{{ target.name }}@{{ target.address }}", "web-eu-1@127.0.3.1", id="target"),
        pytest.param("{{ target.labels.env }}", "staging", id="target labels"),
        pytest.param("{{ facts.os.id }}-{{ facts.os.versionId }}", "debian-12", id="facts"),
        pytest.param("{{ revision }}", "abc123", id="revision"),
        pytest.param("{{ '<b>&' }}", "<b>&", id="no autoescape: config files are not HTML"),
        pytest.param("a\n", "a\n", id="trailing newline kept"),
        pytest.param("{% for i in range(3) %}{{ i }}{% endfor %}", "012", id="small loops work"),
        pytest.param("{{ params.missing | default('x') }}", "x", id="default filter still works"),
    ],
)
def test_templates_see_params_target_facts_revision(template: str, expected: str) -> None:
    assert render_text(template, CONTEXT, "t") == expected


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        pytest.param("{{ params.greting }}", "has no attribute 'greting'", id="misspelt param"),
        pytest.param("{{ greeting }}", "'greeting' is undefined", id="undefined variable"),
        pytest.param("{{ facts.nope.id }}", "has no attribute 'nope'", id="undefined fact"),
        pytest.param("{{ ''.__class__ }}", "refused by the sandbox", id="dunder attribute"),
        pytest.param(
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "refused by the sandbox",
            id="subclass walk",
        ),
        pytest.param(
            "{{ cycler.__init__.__globals__ }}", "refused by the sandbox", id="globals walk"
        ),
        pytest.param(
            "{{ params.update({'a': 1}) }}", "refused by the sandbox", id="mutating a dict"
        ),
        pytest.param("{% include '/etc/passwd' %}", "no loader", id="include reads no file"),
        pytest.param(
            "{% for i in range(100000000) %}{% endfor %}", "range() longer", id="huge range"
        ),
        pytest.param("{{ 'x' * 100000000 }}", "repeated value longer", id="huge repetition"),
        pytest.param("{{ 10 ** 1000000 }}", "exponent above", id="huge power"),
        pytest.param("a\n{% if %}", "template line 2", id="syntax error with its line"),
        pytest.param("{{ 1 / 0 }}", "ZeroDivisionError", id="runtime error"),
    ],
)
def test_template_errors_are_clear_and_contained(template: str, fragment: str) -> None:
    with pytest.raises(ManifestError) as err:
        render_text(template, CONTEXT, "vmapp.yaml: files[0] (/etc/x)")
    assert err.value.reason == "TemplateError"
    assert err.value.message.startswith("vmapp.yaml: files[0] (/etc/x): ")
    assert fragment in err.value.message


def loaded(text: str, sources: dict[str, bytes] | None = None, **kw: Any) -> LoadedApp:
    return LoadedApp(Path("/x"), parse_manifest(text), sources or {}, **kw)


MANIFEST = r"""
files:
  - {path: /etc/a.conf, content: "a={{ params.a }}\n", template: true}
  - {path: /etc/b.conf, content: "b\n"}
  - {path: /etc/raw, content: "{{ not rendered }}"}
services:
  - name: a.service
    unit: "[Service]\nEnvironment=A={{ params.a }}\n"
    template: true
    restartOnChange: [/etc/a.conf]
commands:
  - {name: on-a, run: [/bin/true], onChange: [/etc/a.conf]}
  - {name: once, run: [/bin/true]}
"""


def test_render_gives_concrete_bytes_and_digests() -> None:
    d = render(loaded(MANIFEST), {"a": 1}, TARGET, FACTS, "rev1")
    assert [(f.path, f.content, f.mode) for f in d.files] == [
        ("/etc/a.conf", b"a=1\n", 0o644),
        ("/etc/b.conf", b"b\n", 0o644),
        ("/etc/raw", b"{{ not rendered }}", 0o644),
    ]
    assert d.services[0].unit == b"[Service]\nEnvironment=A=1\n"
    assert d.services[0].unit_path == "/etc/systemd/system/a.service"
    assert render(loaded(MANIFEST), {"a": 1}, TARGET, FACTS, "rev1") == d


def test_trigger_digests_follow_their_inputs_only() -> None:
    one = render(loaded(MANIFEST), {"a": 1}, TARGET, FACTS, "rev1")
    other_rev = render(loaded(MANIFEST), {"a": 1}, TARGET, FACTS, "rev2")
    changed = render(loaded(MANIFEST), {"a": 2}, TARGET, FACTS, "rev1")
    unrelated = render(
        loaded(MANIFEST.replace('"b\\n"', '"B\\n"')), {"a": 1}, TARGET, FACTS, "rev1"
    )
    assert one.commands[0].trigger_digest == other_rev.commands[0].trigger_digest
    assert one.commands[0].trigger_digest == unrelated.commands[0].trigger_digest
    assert one.commands[0].trigger_digest != changed.commands[0].trigger_digest
    assert one.services[0].restart_digest != changed.services[0].restart_digest
    assert one.commands[1].trigger_digest == changed.commands[1].trigger_digest


def test_template_from_a_source_file(tmp_path: Path) -> None:
    (tmp_path / "vmapp.yaml").write_text(
        "files:\n- {path: /etc/x, source: x.j2, template: true, sensitive: true}\n"
    )
    (tmp_path / "x.j2").write_text("token={{ params.token }}\n")
    d = render(load_app(tmp_path), {"token": "s3cret"}, TARGET, {}, "r")
    assert d.files[0].content == b"token=s3cret\n"
    assert "s3cret" not in repr(d)


def test_template_source_must_be_utf8(tmp_path: Path) -> None:
    (tmp_path / "vmapp.yaml").write_text("files:\n- {path: /etc/x, source: x, template: true}\n")
    (tmp_path / "x").write_bytes(b"\xff\xfe")
    with pytest.raises(ManifestError, match="must be UTF-8"):
        render(load_app(tmp_path), {}, TARGET, {}, "r")


def test_binary_source_is_copied_as_is(tmp_path: Path) -> None:
    (tmp_path / "vmapp.yaml").write_text("files:\n- {path: /etc/x, source: x}\n")
    (tmp_path / "x").write_bytes(b"\x00\xff{{ a }}")
    assert render(load_app(tmp_path), {}, TARGET, {}, "r").files[0].content == b"\x00\xff{{ a }}"


def test_rendered_output_is_size_limited(tmp_path: Path) -> None:
    (tmp_path / "vmapp.yaml").write_text(
        "files:\n- {path: /etc/x, content: \"{{ 'x' * 600 }}{{ 'x' * 600 }}\", template: true}\n"
    )
    with pytest.raises(ManifestError) as err:
        render(load_app(tmp_path, max_file_bytes=1000), {}, TARGET, {}, "r")
    assert err.value.reason == "ManifestTooLarge"


def test_template_error_in_a_sensitive_file_does_not_show_its_content() -> None:
    text = (
        "files:\n- {path: /etc/x, content: 'pw=hunter2 {{ nope }}', template: true,"
        " sensitive: true}\n"
    )
    with pytest.raises(ManifestError) as err:
        render(loaded(text), {}, TARGET, {}, "r")
    assert "hunter2" not in err.value.message


@pytest.mark.parametrize("revision", ["", "../x", "a/b", "-rf", "x" * 65])
def test_revision_must_be_a_safe_directory_name(revision: str) -> None:
    with pytest.raises(ManifestError, match="revision"):
        render(loaded(""), {}, TARGET, {}, revision)
