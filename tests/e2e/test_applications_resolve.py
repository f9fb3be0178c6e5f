"""A command whose outcome is unknown, settled the supported way: `vmgitops resolve`
(the vmgitops.io/resolve-command annotation on the target), through the real operator,
API server and a fleet VM.

The interrupted apply is made the way one leaves a VM: its pending marker, written on the
VM over SSH (an apply killed while the command ran leaves exactly that). Runs of the
command are counted by the file it appends to."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apprepo import AppRepo, app_status, application, apply, entry_of, events, get, setup_targets
from testbed import KUBECONFIG, ROOT, VM, eventually, kubectl

pytestmark = pytest.mark.e2e

MANIFEST = """\
files:
  - path: /etc/{app}/{app}.conf
    content: "version={version}\\n"
    mode: "0644"
directories:
  - {{path: /var/lib/{app}, mode: "0755"}}
commands:
  - name: once
    run: ["/bin/sh", "-c", "echo run >> /var/lib/{app}/runs.log"]
    onChange: [/etc/{app}/{app}.conf]
"""
RESOLVE = "vmgitops.io/resolve-command"
RESULT = "vmgitops.io/resolve-command-result"


@pytest.fixture
def repo(tmp_path: Path, fleet: list[VM]) -> Iterator[AppRepo]:
    r = AppRepo(tmp_path)
    yield r
    fleet[0].ssh(r.cleanup_vm_command(), check=False)
    r.remove()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv/bin/vmgitops"), *args],
        env={**os.environ, "KUBECONFIG": str(KUBECONFIG)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def annotations(ns: str, vm: VM) -> dict[str, str]:
    found: dict[str, str] = get(ns, "vmt", vm.name)["metadata"].get("annotations") or {}
    return found


def runs(vm: VM, app: str) -> int:
    out = vm.ssh(f"cat /var/lib/{app}/runs.log 2>/dev/null || true").stdout.decode()
    return len(out.splitlines())


def markers(vm: VM, ns: str, app: str) -> dict[str, str]:
    d = f"/var/lib/vmgitops/{ns}_{app}/markers"
    out = vm.ssh(f'cd {d} && for f in *; do printf \'%s=%s\\n\' "$f" "$(cat $f)"; done').stdout
    pairs = (line.split("=", 1) for line in out.decode().splitlines() if "=" in line)
    return {k: v for k, v in pairs if k.startswith(("pending.", "done."))}


def interrupt(vm: VM, ns: str, app: str, revision: str) -> None:
    """What an apply killed while `once` ran leaves: its pending marker (written whole)."""
    d = f"/var/lib/vmgitops/{ns}_{app}/markers"
    vm.ssh(
        f"umask 077; printf 'started 2024-01-01T00:00:00Z generation 1 revision {revision}\\n'"
        f" > {d}/.p && mv -f {d}/.p {d}/pending.once"
    )


def entry_message(ns: str, vm: VM, app: str) -> str:
    return str((entry_of(ns, vm, app) or {}).get("message") or "")


def wait_blocked(ns: str, vm: VM, app: str) -> str:
    def blocked() -> str | None:
        message = entry_message(ns, vm, app)
        return message if "CommandOutcomeUnknown" in message else None

    return eventually(
        blocked,
        timeout=120,
        what="the target blocked on CommandOutcomeUnknown",
    )


def wait_synced(ns: str, vm: VM, app: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        entry = entry_of(ns, vm, app) or {}
        status = app_status(ns, app)
        ok = (
            entry.get("sync") == "Synced"
            and "CommandOutcomeUnknown" not in str(entry.get("message") or "")
            and status.get("sync", {}).get("status") == "Synced"
        )
        return status if ok else None

    return eventually(check, timeout=120, interval=1, what=f"{app} Synced on {vm.name}")


def test_resolve_ran_rerun_and_refusals(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    ns, vm, app = namespace, fleet[0], repo.app
    setup_targets(ns, [vm], env="resolve")
    repo.write_app(manifest=MANIFEST.format(app=app, version="1"))
    rev = repo.commit("v1")
    apply(application(ns, repo, env="resolve", automated={"selfHeal": True}))
    wait_synced(ns, vm, app)
    assert runs(vm, app) == 1
    done = markers(vm, ns, app)["done.once"]

    # -- an apply stopped while `once` ran, and it did its work --------------------------
    interrupt(vm, ns, app, rev)
    vm.ssh(f"echo run >> /var/lib/{app}/runs.log")
    message = wait_blocked(ns, vm, app)
    assert "vmgitops resolve APP --target TARGET --command once --ran" in message

    # A malformed request: refused with the syntax, removed, nothing changed.
    kubectl("-n", ns, "annotate", "vmt", vm.name, f"{RESOLVE}={app}/once=maybe")

    def answered() -> str | None:
        found = annotations(ns, vm)
        return None if RESOLVE in found else found.get(RESULT)

    result = eventually(
        answered,
        timeout=60,
        what="the malformed request answered",
    )
    assert "ResolveRefused" in result and "ran or rerun" in result
    assert "ResolveRefused" in [e.get("reason") for e in events(ns, vm.name)]
    assert markers(vm, ns, app) == {
        "pending.once": markers(vm, ns, app)["pending.once"],
        "done.once": done,
    }
    assert runs(vm, app) == 2

    # A command the app does not have: refused by the operator, nothing changed.
    out = cli("resolve", app, "-n", ns, "--target", vm.name, "--command", "nope", "--rerun")
    assert out.returncode == 1, out
    assert "has no command 'nope'" in out.stderr
    assert "pending.once" in markers(vm, ns, app)

    out = cli("resolve", app, "-n", ns, "--target", vm.name, "--command", "once", "--ran")
    assert out.returncode == 0, out
    assert "CommandResolved" in out.stdout and "recorded as run" in out.stdout
    assert RESOLVE not in annotations(ns, vm)
    assert markers(vm, ns, app) == {"done.once": done}, "done at its current trigger"
    wait_synced(ns, vm, app)
    reasons = [e.get("reason") for e in events(ns, vm.name)]
    assert "CommandResolved" in reasons
    resolved = [e for e in events(ns, vm.name) if e.get("reason") == "CommandResolved"]
    assert "once" in resolved[-1]["message"] and app in resolved[-1]["message"]
    assert runs(vm, app) == 2, "recorded as run: not run again"

    # Asked again: nothing pending any more, refused, nothing changed.
    out = cli("resolve", app, "-n", ns, "--target", vm.name, "--command", "once", "--rerun")
    assert out.returncode == 1 and "no pending marker" in out.stderr, out
    assert markers(vm, ns, app) == {"done.once": done}

    # -- an apply stopped before `once` did anything: run it again, once ------------------
    interrupt(vm, ns, app, rev)
    wait_blocked(ns, vm, app)
    out = cli("resolve", app, "-n", ns, "--target", vm.name, "--command", "once", "--rerun")
    assert out.returncode == 0, out
    assert "the next apply runs it" in out.stdout
    assert "pending.once" not in markers(vm, ns, app)
    out = cli("sync", app, "-n", ns, "--wait", "--timeout", "3m")
    assert out.returncode == 0, out
    wait_synced(ns, vm, app)
    assert runs(vm, app) == 3, "run exactly once more"
    assert markers(vm, ns, app) == {"done.once": done}
    status = app_status(ns, app)
    assert status["operation"]["phase"] == "Succeeded", json.dumps(status["operation"])
