"""A real Git repository on the test bed's git daemon, holding a generated VM app, and
the helpers the VMApplication end-to-end tests share (targets, applications, status,
Events)."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testbed import DEV, GIT_BASE_URL, VM, apply, eventually, kubectl, ssh_secret

APP_TEMPLATE = """\
files:
  - path: /etc/{app}/{app}.conf
    content: |
      greeting={{{{ params.greeting }}}}
      listen={{{{ target.address }}}}
      port={port}
      host={{{{ target.name }}}}
      revision={{{{ revision }}}}
      version={version}
    template: true
    mode: "0644"
{extra_files}directories:
  - {{path: /var/lib/{app}, mode: "0750"}}
services:
  - name: {app}.service
    unit: |
      [Service]
      ExecStart=/usr/bin/python3 /opt/{app}/current/bin/serve /etc/{app}/{app}.conf
    enabled: true
    state: running
    restartOnChange: [/etc/{app}/{app}.conf]
release:
  path: /opt/{app}
  source: dist
  keep: 3
commands:
  - name: stamp
    run: ["/opt/{app}/current/bin/stamp", "/var/lib/{app}/stamps.log"]
    onChange: [/etc/{app}/{app}.conf]
healthChecks:
  - {{name: unit, command: ["systemctl", "is-active", "{app}.service"]}}
  - name: http
    http: {{url: "http://{{{{ target.address }}}}:{port}/healthz", expectStatus: 200}}
    timeoutSeconds: 5
"""

SERVE = """\
import http.server, sys
conf = dict(l.strip().split("=", 1) for l in open(sys.argv[1]) if "=" in l)
healthy = conf.get("healthy", "yes") == "yes"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path != "/healthz" or healthy
        body = (conf.get("greeting", "") + " " + conf.get("version", "") + "\\n").encode()
        self.send_response(200 if ok else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((conf["listen"], int(conf["port"])), H).serve_forever()
"""

# Records when each VM ran it: a rollout test reads these intervals to prove that at most
# maxUnavailable VMs were being changed at once.
STAMP = """\
#!/bin/sh
start=$(date +%s.%N)
sleep 2
echo "$start $(date +%s.%N)" >> "$1"
"""


class AppRepo:
    """A bare repo under .dev/git served by git daemon, and a work tree to commit from."""

    def __init__(self, tmp: Path, app: str | None = None, port: int = 0) -> None:
        self.id = uuid.uuid4().hex[:6]
        self.app = app or f"app{self.id}"
        self.port = port or 20000 + int(self.id[:4], 16) % 20000
        self.name = f"repo-{self.id}"
        self.bare = DEV / "git" / f"{self.name}.git"
        self.url = f"{GIT_BASE_URL}/{self.name}.git"
        self.work = tmp / f"work-{self.id}"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.bare)], check=True)
        self.work.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        self.git("remote", "add", "origin", str(self.bare))

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.work, check=True, capture_output=True, text=True
        ).stdout.strip()

    @property
    def folder(self) -> Path:
        return self.work / "apps" / self.app

    def write_app(
        self,
        *,
        version: str = "1",
        extra_files: str = "",
        manifest: str | None = None,
        healthy: bool = True,
    ) -> None:
        d = self.folder
        (d / "dist" / "bin").mkdir(parents=True, exist_ok=True)
        text = (
            manifest
            if manifest is not None
            else APP_TEMPLATE.format(
                app=self.app, port=self.port, version=version, extra_files=extra_files
            )
        )
        if not healthy:
            text = text.replace("      version=", "      healthy=no\n      version=")
        (d / "vmapp.yaml").write_text(text)
        (d / "dist" / "bin" / "serve").write_text(SERVE)
        (d / "dist" / "bin" / "stamp").write_text(STAMP)
        (d / "dist" / "bin" / "stamp").chmod(0o755)

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git(
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.invalid",
            "commit",
            "-qm",
            message,
        )
        self.git("push", "-q", "origin", "main")
        return self.git("rev-parse", "HEAD")

    def remove(self) -> None:
        shutil.rmtree(self.bare, ignore_errors=True)

    def cleanup_vm_command(self) -> str:
        a = self.app
        return (
            f"systemctl disable --now {a}.service 2>/dev/null; "
            f"rm -rf /etc/{a} /opt/{a} /var/lib/{a} /etc/systemd/system/{a}.service "
            f"/var/lib/vmgitops/*_{a}* ; systemctl daemon-reload"
        )


# -- Kubernetes objects of the tests -----------------------------------------------------


def target(namespace: str, vm: VM, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "vmgitops.io/v1alpha1",
        "kind": "VirtualMachineTarget",
        "metadata": {"name": vm.name, "namespace": namespace, "labels": labels},
        "spec": {
            "address": vm.address,
            "port": vm.port,
            "user": vm.user,
            "credentials": {"secretRef": {"name": "fleet-ssh"}},
            "hostKey": {"publicKeys": [vm.host_public_key]},
        },
    }


def setup_targets(namespace: str, vms: list[VM], env: str) -> None:
    """The fleet Secret and one VirtualMachineTarget per VM, labelled env=<env>, role=web."""
    apply(ssh_secret(namespace, "fleet-ssh", vms[0].private_key))
    for vm in vms:
        apply(target(namespace, vm, {"env": env, "role": "web"}))


def application(
    namespace: str,
    repo: AppRepo,
    *,
    env: str = "test",
    automated: dict[str, Any] | None = None,
    retry: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": {"repoURL": repo.url, "targetRevision": "main", "path": f"apps/{repo.app}"},
        "destination": {"selector": {"matchLabels": {"env": env}}},
        "parameters": {"greeting": "hello"},
        "refreshInterval": "5s",
        **spec,
    }
    policy: dict[str, Any] = {}
    if automated is not None:
        policy["automated"] = automated
    if retry is not None:
        policy["retry"] = retry
    if policy:
        body["syncPolicy"] = policy
    return {
        "apiVersion": "vmgitops.io/v1alpha1",
        "kind": "VMApplication",
        "metadata": {"name": repo.app, "namespace": namespace},
        "spec": body,
    }


def get(namespace: str, kind: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(kubectl("-n", namespace, "get", kind, name, "-o", "json"))
    return obj


def app_status(namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = get(namespace, "vmapp", name).get("status") or {}
    return status


def patch_app(namespace: str, name: str, patch: dict[str, Any]) -> None:
    kubectl("-n", namespace, "patch", "vmapp", name, "--type=merge", "-p", json.dumps(patch))


def wait_status(
    namespace: str,
    name: str,
    check: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 180,
    what: str = "status",
) -> dict[str, Any]:
    """Polls the application's status until `check` holds; returns that status."""

    def once() -> dict[str, Any] | None:
        s = app_status(namespace, name)
        return s if check(s) else None

    return eventually(once, timeout=timeout, interval=1, what=what)


def operation(status: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = status.get("operation") or {}
    return op


def wait_synced_healthy(
    namespace: str, name: str, revision: str, timeout: float = 180
) -> dict[str, Any]:
    def check(s: dict[str, Any]) -> bool:
        return (
            s.get("sync", {}).get("status") == "Synced"
            and s.get("sync", {}).get("revision") == revision
            and s.get("health", {}).get("status") == "Healthy"
            and operation(s).get("phase") in (None, "Succeeded")
        )

    return wait_status(
        namespace,
        name,
        check,
        timeout=timeout,
        what=f"{name} Synced and Healthy at {revision[:12]}",
    )


def events(namespace: str, name: str) -> list[dict[str, Any]]:
    """The Events posted about object `name`, oldest first."""
    out = json.loads(
        kubectl(
            "-n",
            namespace,
            "get",
            "events",
            "--field-selector",
            f"involvedObject.name={name}",
            "-o",
            "json",
        )
    )
    items: list[dict[str, Any]] = out.get("items") or []
    return sorted(items, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


def event_reasons(namespace: str, name: str) -> list[str]:
    return [str(e.get("reason")) for e in events(namespace, name)]


def entry_of(namespace: str, vm: VM, app: str) -> dict[str, Any] | None:
    """The application's entry in the target's status.applications, or None."""
    vmt = get(namespace, "vmt", vm.name)
    entries: list[dict[str, Any]] = (vmt.get("status") or {}).get("applications") or []
    return next((a for a in entries if a["name"] == app), None)


def vm_file(vm: VM, path: str) -> str:
    return vm.ssh(f"cat {path}").stdout.decode()


def vm_lines(vm: VM, path: str) -> list[str]:
    """The lines of a file on the VM; [] when it does not exist."""
    return vm.ssh(f"cat {path} 2>/dev/null || true").stdout.decode().splitlines()


def inode(vm: VM, path: str) -> int:
    return int(vm.ssh(f"stat -c %i {path}").stdout.decode().strip())


def exists(vm: VM, path: str) -> bool:
    return vm.ssh(f"test -e {path}", check=False).returncode == 0
