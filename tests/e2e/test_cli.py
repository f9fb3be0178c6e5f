"""The command line against the real operator, API server, Git daemon and VMs:
`status`, `diff` and `sync --wait`, as a user (or a script) runs them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from apprepo import AppRepo, app_status, apply, setup_targets
from testbed import KUBECONFIG, ROOT, VM, eventually, kubectl

pytestmark = pytest.mark.e2e

CLI = str(ROOT / ".venv/bin/vmgitops")
PLUGIN = str(ROOT / ".venv/bin/kubectl-vmgitops")


def cli(*args: str, timeout: float = 300, exe: str = CLI) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG), "COLUMNS": "200"}
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def manual_app(namespace: str, repo: AppRepo, env: str) -> dict[str, Any]:
    """A VMApplication without automated sync: only `vmgitops sync` changes the VMs."""
    return {
        "apiVersion": "vmgitops.io/v1alpha1",
        "kind": "VMApplication",
        "metadata": {"name": repo.app, "namespace": namespace},
        "spec": {
            "source": {"repoURL": repo.url, "targetRevision": "main", "path": f"apps/{repo.app}"},
            "destination": {"selector": {"matchLabels": {"env": env}}},
            "parameters": {"greeting": "hello"},
            "strategy": {"type": "Rolling", "rolling": {"maxUnavailable": 1}},
            "refreshInterval": "5s",
        },
    }


@pytest.fixture
def repo(tmp_path: Path, fleet: list[VM]) -> Iterator[AppRepo]:
    r = AppRepo(tmp_path)
    yield r
    for vm in fleet[:2]:
        vm.ssh(r.cleanup_vm_command(), check=False)
    r.remove()


def test_status_diff_sync_on_a_manual_application(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    vms = fleet[:2]
    setup_targets(namespace, vms, env="cli")
    repo.write_app(version="1")
    first = repo.commit("v1")
    apply(manual_app(namespace, repo, env="cli"))
    eventually(
        lambda: app_status(namespace, repo.app).get("sync", {}).get("status") == "OutOfSync",
        timeout=120,
        what="the manual app observed OutOfSync",
    )

    # status: both kinds listed, as a table and as JSON.
    out = cli("status", "-n", namespace)
    assert out.returncode == 0, out.stderr
    assert "Applications" in out.stdout and "Targets" in out.stdout
    row = next(line for line in out.stdout.splitlines() if line.startswith(repo.app))
    assert "OutOfSync" in row and "0/2 synced" in row
    for vm in vms:
        assert any(
            line.startswith(vm.name) and "Connected" in line for line in out.stdout.splitlines()
        )
    data = json.loads(cli("status", "-n", namespace, "-o", "json").stdout)
    assert [a["name"] for a in data["applications"]] == [repo.app]
    assert sorted(t["name"] for t in data["targets"]) == sorted(vm.name for vm in vms)

    # diff before the first sync: every file is new; exit 1 says "differences".
    out = cli("diff", repo.app, "-n", namespace)
    assert out.returncode == 1, out.stdout + out.stderr
    conf = f"/etc/{repo.app}/{repo.app}.conf"
    for vm in vms:
        assert f"=== {vm.name} ({vm.address}): OutOfSync" in out.stdout
    assert f"+++ b{conf}" in out.stdout and "+greeting=hello" in out.stdout
    assert "2 of 2 target(s) differ" in out.stderr
    assert vms[0].ssh(f"test -e {conf}", check=False).returncode != 0, "diff changed a VM"

    # sync --wait: progress per batch (maxUnavailable 1: two batches), then exit 0.
    out = cli("sync", repo.app, "-n", namespace, "--wait", "--timeout", "5m")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "batch 2/2" in out.stdout, out.stdout
    assert f"Succeeded: 2 target(s) synced to {first[:12]}" in out.stdout
    status = app_status(namespace, repo.app)
    assert status["operation"]["phase"] == "Succeeded"
    meta = json.loads(kubectl("-n", namespace, "get", "vmapp", repo.app, "-o", "json"))["metadata"]
    assert "vmgitops.io/sync" not in (meta.get("annotations") or {})
    assert "greeting=hello" in vms[0].ssh(f"cat {conf}").stdout.decode()

    # A hand edit on one VM: diff shows it as a unified diff for that VM only, and leaves it.
    eventually(
        lambda: app_status(namespace, repo.app).get("sync", {}).get("status") == "Synced",
        timeout=60,
        what="Synced after the sync",
    )
    vms[0].ssh(f"sed -i 's/^greeting=hello$/greeting=tampered/' {conf}")
    out = cli("diff", repo.app, "-n", namespace)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"=== {vms[1].name} ({vms[1].address}): Synced at {first[:12]}" in out.stdout
    section = out.stdout.split(f"=== {vms[0].name}")[1].split("===")[0]
    assert f"--- a{conf}\n+++ b{conf}\n" in section
    assert "-greeting=tampered\n+greeting=hello\n" in section
    assert "greeting=tampered" in vms[0].ssh(f"cat {conf}").stdout.decode(), "diff healed the VM"

    # --target narrows it; JSON carries the same diff; an unknown target is a usage error.
    out = cli("diff", repo.app, "-n", namespace, "--target", vms[1].name, "-o", "json")
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert doc["revision"] == first
    assert [(t["name"], t["sync"], t["steps"]) for t in doc["targets"]] == [
        (vms[1].name, "Synced", [])
    ]
    bad = cli("diff", repo.app, "-n", namespace, "--target", "nope")
    assert bad.returncode == 2 and "not selected" in bad.stderr

    # status APP: the app, its targets (one drifted after the next observation) and history.
    out = cli("status", repo.app, "-n", namespace)
    assert out.returncode == 0, out.stderr
    assert f"Application  {namespace}/{repo.app}" in out.stdout
    assert "History" in out.stdout and first[:12] in out.stdout
    detail = yaml.safe_load(cli("status", repo.app, "-n", namespace, "-o", "yaml").stdout)
    assert detail["application"]["name"] == repo.app
    assert detail["history"][0]["revision"] == first
    assert sorted(t["name"] for t in detail["targets"]) == sorted(vm.name for vm in vms)

    # The same binary as a kubectl plugin.
    out = cli("status", repo.app, "-n", namespace, "-o", "json", exe=PLUGIN)
    assert out.returncode == 0 and json.loads(out.stdout)["application"]["name"] == repo.app


def test_errors_say_what_to_do(namespace: str, operator: object) -> None:
    out = cli("status", "nope", "-n", namespace)
    assert out.returncode == 2
    assert "VMApplication 'nope' not found" in out.stderr and "vmgitops status -n" in out.stderr
    out = cli("sync", "nope", "-n", namespace, "--wait")
    assert out.returncode == 2 and "not found" in out.stderr
    out = cli("sync", "x", "-n", namespace, "--timeout", "soon")
    assert out.returncode == 2 and "--timeout 'soon'" in out.stderr
    out = cli("status", "-n", namespace, "--kubeconfig", "/nonexistent/kubeconfig")
    assert out.returncode == 2 and "cannot load the kubeconfig" in out.stderr
    # An API server that does not answer: exit 3, and it says what to check.
    bad = Path(os.environ.get("TMPDIR", "/tmp")) / f"kubeconfig-down-{namespace}"
    cfg = yaml.safe_load(KUBECONFIG.read_text())
    cfg["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    bad.write_text(yaml.safe_dump(cfg))
    try:
        out = cli("status", "-n", namespace, "--kubeconfig", str(bad), timeout=120)
    finally:
        bad.unlink()
    assert out.returncode == 3, out.stderr
    assert "cannot reach" in out.stderr and "make up" in out.stderr


def test_paused_application_refuses_sync(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    repo.write_app(version="1")
    repo.commit("v1")
    app = manual_app(namespace, repo, env="none")
    app["spec"]["paused"] = True
    apply(app)
    out = cli("sync", repo.app, "-n", namespace, "--wait")
    assert out.returncode == 2
    assert "spec.paused is true" in out.stderr and "kubectl patch" in out.stderr


@pytest.mark.parametrize("command", ["status", "diff", "sync"])
def test_help_names_options_and_exit_codes(command: str) -> None:
    out = cli(command, "--help")
    assert out.returncode == 0
    for option in ("--namespace", "--kubeconfig", "--output", "exit codes:"):
        assert option in out.stdout, f"{command} --help lacks {option}"
