"""`vmgitops render FOLDER`: the rendered desired state as YAML, or one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from vmgitops.manifest.render_cli import render_folder, run_render

MANIFEST = r"""
files:
  - {path: /etc/hello.conf, content: "hi {{ target.name }} {{ facts.os.id }}\n", template: true}
  - {path: /etc/token, content: "s3cret\n", sensitive: true, mode: "0600"}
  - {path: /usr/local/bin/blob, source: blob}
release: {path: /opt/hello, source: dist}
"""


def folder(tmp_path: Path) -> Path:
    (tmp_path / "vmapp.yaml").write_text(MANIFEST)
    (tmp_path / "blob").write_bytes(b"\x00\x01\x02")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "app").write_text("v1\n")
    return tmp_path


def test_render_with_a_target_object(tmp_path: Path) -> None:
    target = tmp_path / "vmt.json"
    target.write_text(
        json.dumps(
            {
                "metadata": {"name": "web-eu-1", "labels": {"env": "staging"}},
                "spec": {"address": "127.0.3.1"},
                "status": {"facts": {"os": {"id": "debian"}}},
            }
        )
    )
    doc = yaml.safe_load(render_folder(folder(tmp_path), {}, target))
    assert doc["target"] == {
        "name": "web-eu-1",
        "address": "127.0.3.1",
        "labels": {"env": "staging"},
    }
    assert doc["files"][0]["content"] == "hi web-eu-1 debian\n"
    assert doc["files"][1] == {
        "path": "/etc/token",
        "mode": "0600",
        "content": "(sensitive content hidden)",
    }
    assert doc["files"][2]["content"] == "(binary, 3 bytes)"
    assert doc["release"]["files"] == 1


def test_render_with_a_plain_target_json(tmp_path: Path) -> None:
    target = tmp_path / "t.json"
    target.write_text(
        json.dumps({"name": "vm9", "address": "127.0.0.9", "facts": {"os": {"id": "alpine"}}})
    )
    out = render_folder(folder(tmp_path), {}, target)
    assert "hi vm9 alpine" in out and "s3cret" not in out


def test_errors_are_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    code, text = run_render(folder(tmp_path))
    assert code == 1
    assert text == (
        "error: TemplateError: vmapp.yaml: files[0] (/etc/hello.conf): the template uses an "
        "undefined value: 'dict object' has no attribute 'os'\n"
    )


def test_unreadable_target_json(tmp_path: Path) -> None:
    bad = tmp_path / "t.json"
    bad.write_text("{")
    code, text = run_render(folder(tmp_path), {}, bad)
    assert code == 1 and text.startswith("error: ManifestInvalid: ")
