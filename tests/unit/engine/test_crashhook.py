"""The crash hooks' shared reading (vmgitops.crashhook) and the two parsers on top."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vmgitops.crashhook import CRASH_EXIT, armed_value
from vmgitops.engine import sync
from vmgitops.promotion import crashpoints


def test_env_first_then_file_then_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("X_AT", raising=False)
    monkeypatch.delenv("X_FILE", raising=False)
    assert armed_value("X_AT", "X_FILE") == ""
    f = tmp_path / "hook"
    monkeypatch.setenv("X_FILE", str(f))
    assert armed_value("X_AT", "X_FILE") == ""  # no file yet
    f.write_text(" upload@vm1 \n")
    assert armed_value("X_AT", "X_FILE") == "upload@vm1"
    monkeypatch.setenv("X_AT", " synced ")
    assert armed_value("X_AT", "X_FILE") == "synced"


def test_each_hook_reads_only_its_own_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in (
        sync.CRASH_ENV,
        sync.CRASH_FILE_ENV,
        crashpoints.CRASH_ENV,
        crashpoints.CRASH_FILE_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(sync.CRASH_ENV, "upload@vm1")
    assert sync.crash_point_from_env("vm1") == "upload"
    assert crashpoints.armed_point("vm1") is None
    monkeypatch.delenv(sync.CRASH_ENV)
    f = tmp_path / "hook"
    f.write_text("written@p1")
    monkeypatch.setenv(crashpoints.CRASH_FILE_ENV, str(f))
    assert crashpoints.armed_point("p1") == "written"
    assert crashpoints.armed_point("p2") is None
    assert sync.crash_point_from_env("p1") is None


def test_die_exits_137_with_the_message() -> None:
    code = (
        "from vmgitops.crashhook import die\ndie('vmgitops: crash hook: dying at x')\nprint('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == CRASH_EXIT == 137
    assert done.stderr == "vmgitops: crash hook: dying at x\n"
    assert done.stdout == ""
