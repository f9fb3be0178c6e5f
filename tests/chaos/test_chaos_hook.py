"""The operator's crash hook (VMGITOPS_CRASH_AT / VMGITOPS_CRASH_FILE): which sync dies."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmgitops.engine.sync import crash_point_from_env


@pytest.mark.parametrize(
    ("value", "target", "expected"),
    [
        pytest.param("", "vm1", None, id="unset-never-crashes"),
        pytest.param("upload", "vm1", "upload", id="any-target"),
        pytest.param("pending:stamp@vm2", "vm2", "pending:stamp", id="named-target"),
        pytest.param("pending:stamp@vm2", "vm1", None, id="other-target-spared"),
        pytest.param("write:/etc/a@b/c.conf", "vm1", "write:/etc/a@b/c.conf", id="at-in-a-path"),
        pytest.param("synced@vm1", "vm1", "synced", id="before-the-status-write"),
    ],
)
def test_crash_point_from_env(
    monkeypatch: pytest.MonkeyPatch, value: str, target: str, expected: str | None
) -> None:
    monkeypatch.delenv("VMGITOPS_CRASH_FILE", raising=False)
    monkeypatch.setenv("VMGITOPS_CRASH_AT", value)
    assert crash_point_from_env(target) == expected


def test_crash_file_arms_a_running_operator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    f = tmp_path / "crash"
    monkeypatch.delenv("VMGITOPS_CRASH_AT", raising=False)
    monkeypatch.setenv("VMGITOPS_CRASH_FILE", str(f))
    assert crash_point_from_env("vm1") is None  # no file yet
    f.write_text("upload@vm1\n")
    assert crash_point_from_env("vm1") == "upload"
    f.write_text("")
    assert crash_point_from_env("vm1") is None
