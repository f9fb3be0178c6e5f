"""The test bed itself: real systemd machines, private overlays, a real Git server."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from testbed import DEV, GIT_BASE_URL, VM

pytestmark = pytest.mark.integration


def test_each_vm_runs_systemd_as_pid1_with_its_own_identity(fleet: list[VM]) -> None:
    names = set()
    for vm in fleet[:3]:
        out = vm.ssh("cat /proc/1/comm; hostname; systemctl is-active ssh.service").stdout
        comm, hostname, ssh_state = out.decode().split()
        assert comm == "systemd"
        assert ssh_state == "active"
        names.add(hostname)
    assert names == {vm.name for vm in fleet[:3]}


def test_vm_files_are_private_to_the_vm(fleet: list[VM]) -> None:
    marker = f"/root/marker-{uuid.uuid4().hex}"
    a, b = fleet[0], fleet[1]
    a.ssh(f"echo hi > {marker}")
    try:
        assert b.ssh(f"test -e {marker}", check=False).returncode == 1
        assert not Path(marker).exists()
    finally:
        a.ssh(f"rm -f {marker}")


def test_systemd_units_can_be_managed_inside_a_vm(fleet: list[VM]) -> None:
    vm = fleet[0]
    unit = f"tb-{uuid.uuid4().hex[:6]}.service"
    vm.ssh(
        f"printf '[Service]\\nExecStart=/bin/sleep 300\\n' > /etc/systemd/system/{unit} && "
        f"systemctl daemon-reload && systemctl start {unit}"
    )
    try:
        assert vm.ssh(f"systemctl is-active {unit}").stdout.strip() == b"active"
    finally:
        vm.ssh(f"systemctl stop {unit}; rm -f /etc/systemd/system/{unit}; systemctl daemon-reload")


def test_git_daemon_serves_bare_repositories(fleet: list[VM], tmp_path: Path) -> None:
    name = f"tb-{uuid.uuid4().hex[:8]}"
    bare = DEV / "git" / f"{name}.git"
    work = tmp_path / "work"

    def git(*args: str, cwd: Path = work) -> str:
        return subprocess.run(
            ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
        ).stdout.strip()

    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    try:
        work.mkdir()
        git("init", "-q", "-b", "main")
        (work / "README").write_text("hello\n")
        git("add", "README")
        git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "one")
        sha = git("rev-parse", "HEAD")
        git("push", "-q", str(bare), "main")
        url = f"{GIT_BASE_URL}/{name}.git"
        listed = git("ls-remote", url, "refs/heads/main", cwd=tmp_path)
        assert listed.split()[0] == sha
        git("clone", "-q", url, str(tmp_path / "clone"), cwd=tmp_path)
        assert (tmp_path / "clone" / "README").read_text() == "hello\n"
        # Read-only: a push over git:// is refused.
        push = subprocess.run(
            ["git", "push", url, "main:other"],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        assert push.returncode != 0
    finally:
        subprocess.run(["rm", "-rf", str(bare)], check=True)
