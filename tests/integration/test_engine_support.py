"""Shared pieces of the engine tests against real fleet VMs (no tests in here).

The engine tests use their own VMs, vm5 and vm6, started with `fleet.py start` (which
leaves .dev/fleet.json, and so vm1..vm4 of the other tests, alone). Every test works
under its own id: paths /etc/vmgt-ID, /opt/vmgt-ID, /var/lib/vmgt-ID, unit
vmgt-ID.service and app key engine_vmgt-ID, all removed afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import testbed
from testbed import ROOT, VM
from vmgitops.engine import EngineOptions, TargetResult, sync_target
from vmgitops.engine.crashtest import ssh_spec
from vmgitops.manifest import TargetInfo, load_app
from vmgitops.manifest.render import render
from vmgitops.transport import ConnectionPool, KeyCache, build_connection_config

NAMESPACE = "engine"


def engine_vm(name: str) -> VM:
    """Boot `name` if needed (fleet.json is not rewritten) and describe it."""
    testbed.fleet_ctl("start", name)
    out = subprocess.run(
        ["python3", str(ROOT / "hack/fleet/fleet.py"), "info", name],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    d = json.loads(out)[0]
    return VM(
        d["name"],
        d["address"],
        int(d["port"]),
        d["user"],
        ROOT / d["privateKeyFile"],
        d["hostPublicKey"],
    )


def ssh_entry(vm: VM) -> dict[str, Any]:
    return {
        "name": vm.name,
        "address": vm.address,
        "port": vm.port,
        "user": vm.user,
        "privateKeyFile": str(vm.private_key_file),
        "hostPublicKey": vm.host_public_key,
    }


APP = """
files:
  - path: /etc/vmgt-ID/app.conf
    content: "greeting={{ params.greeting }}\\n"
    template: true
    mode: "0640"
  - {path: /etc/vmgt-ID/motd, content: "hello from {{ target.name }}\\n", template: true}
  - {path: /etc/vmgt-ID/token, content: "s3cr3t-token-ID\\n", sensitive: true, mode: "0600"}
directories:
  - {path: /var/lib/vmgt-ID, mode: "0750"}
services:
  - name: vmgt-ID.service
    unit: |
      [Unit]
      Description=vmgitops engine test ID
      [Service]
      ExecStart=/usr/bin/python3 -m http.server PORT -b 127.0.0.1 -d /opt/vmgt-ID/current
      [Install]
      WantedBy=multi-user.target
    enabled: true
    state: running
    restartOnChange: [/etc/vmgt-ID/app.conf, release]
release: {path: /opt/vmgt-ID, source: dist, keep: 2}
commands:
  - name: migrate
    run: ["sh", "-c", "echo migrate >> /var/lib/vmgt-ID/log"]
    onChange: [release]
healthChecks:
  - {name: unit, command: ["systemctl", "is-active", "vmgt-ID.service"]}
  - {name: http, http: {url: "http://127.0.0.1:PORT/index.html"}, timeoutSeconds: 3}
  - {name: tcp, tcp: {port: PORT}, timeoutSeconds: 3}
"""


class EngineBed:
    """One test's app folder and its footprint on one VM."""

    def __init__(self, vm: VM, tmp: Path) -> None:
        self.vm = vm
        self.id = uuid.uuid4().hex[:8]
        # Below the ephemeral range (32768-): the VMs share the host's loopback, and a
        # port some outgoing connection holds made the app's http.server fail to bind.
        self.port = 20000 + int(self.id[:4], 16) % 12000
        self.app = tmp / "app"
        self.app.mkdir()
        self.key = f"{NAMESPACE}_vmgt-{self.id}"
        self.unit = f"vmgt-{self.id}.service"
        self.target = TargetInfo(vm.name, vm.address, {"role": "test"})
        self.params: dict[str, Any] = {"greeting": "hello"}
        self.spec, self.secret = ssh_spec(ssh_entry(vm))

    # -- the app folder -----------------------------------------------------------------

    def sub(self, text: str) -> str:
        return text.replace("ID", self.id).replace("PORT", str(self.port))

    def write_app(self, manifest: str = APP, *, index: str = "v1") -> None:
        (self.app / "vmapp.yaml").write_text(self.sub(manifest))
        dist = self.app / "dist"
        dist.mkdir(exist_ok=True)
        (dist / "index.html").write_text(f"<h1>{index}</h1>\n")

    def desired_files(self, revision: str) -> dict[str, str]:
        """path -> sha256 of every file the current folder renders for this VM."""
        desired = render(load_app(self.app), self.params, self.target, {}, revision)
        return {f.path: f.sha256 for f in desired.files}

    # -- the engine ---------------------------------------------------------------------

    def sync(
        self,
        revision: str = "rev1",
        *,
        generation: int = 1,
        prune: bool = True,
        dry_run: bool = False,
        **options: Any,
    ) -> TargetResult:
        return asyncio.run(self._sync(revision, generation, prune, dry_run, options))

    async def _sync(
        self, revision: str, generation: int, prune: bool, dry_run: bool, options: Mapping[str, Any]
    ) -> TargetResult:
        config = build_connection_config(
            self.spec,
            namespace=NAMESPACE,
            name=self.vm.name,
            secret=self.secret,
            key_cache=KeyCache(),
        )
        async with ConnectionPool() as pool:
            runner = pool.runner(config)
            await pool.connect(config)  # the handshake is not a round trip of the sync
            return await sync_target(
                runner,
                app_key=self.key,
                generation=generation,
                revision=revision,
                app=load_app(self.app),
                params=self.params,
                target=self.target,
                facts={"packageManager": "apt"},
                prune=prune,
                dry_run=dry_run,
                options=EngineOptions(**options),
            )

    def harness_command(
        self, revision: str, crash_at: str | None, tmp: Path
    ) -> tuple[list[str], dict[str, str]]:
        """argv and environment of the sync in a process of its own (see crashtest)."""
        job = tmp / f"job-{uuid.uuid4().hex[:6]}.json"
        job.write_text(
            json.dumps(
                {
                    "folder": str(self.app),
                    "revision": revision,
                    "generation": 1,
                    "prune": True,
                    "appKey": self.key,
                    "params": self.params,
                    "facts": {"packageManager": "apt"},
                    "target": {
                        "name": self.vm.name,
                        "address": self.vm.address,
                        "labels": {"role": "test"},
                    },
                    "ssh": ssh_entry(self.vm),
                }
            )
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
        env.pop("VMGITOPS_CRASH_AT", None)
        if crash_at:
            env["VMGITOPS_CRASH_AT"] = self.sub(crash_at)
        return [sys.executable, "-m", "vmgitops.engine.crashtest", str(job)], env

    def harness(
        self, revision: str, crash_at: str | None, tmp: Path
    ) -> subprocess.CompletedProcess[str]:
        """The sync in a process of its own, which dies at `crash_at` (exit 137)."""
        argv, env = self.harness_command(revision, crash_at, tmp)
        return subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=180, check=False
        )

    # -- looking at the VM with the test's own eyes (OpenSSH) ---------------------------

    def sh(self, command: str, *, check: bool = True) -> str:
        return self.vm.ssh(command, check=check).stdout.decode()

    def stat(self, *paths: str) -> dict[str, str]:
        """path -> 'inode mtime(ns) mode' for each path."""
        quoted = " ".join(shlex.quote(p) for p in paths)
        out = self.sh(f"stat -c '%n|%i %.9Y %a' {quoted}")
        return dict(line.split("|", 1) for line in out.splitlines())

    def sha256(self, *paths: str) -> dict[str, str | None]:
        out = {}
        for p in paths:
            got = self.sh(f"sha256sum {shlex.quote(p)} 2>/dev/null || true").split()
            out[p] = got[0] if got else None
        return out

    def active_since(self) -> str:
        return self.sh(
            f"systemctl show -p ActiveEnterTimestampMonotonic --value {self.unit}"
        ).strip()

    def log_lines(self) -> list[str]:
        return self.sh(f"cat /var/lib/vmgt-{self.id}/log 2>/dev/null || true").splitlines()

    def marker(self, name: str) -> str | None:
        out = self.vm.ssh(f"cat /var/lib/vmgitops/{self.key}/markers/{name}", check=False)
        return out.stdout.decode() if out.returncode == 0 else None

    def cleanup(self) -> None:
        self.sh(
            f"systemctl disable --now {self.unit} >/dev/null 2>&1; "
            f"rm -rf /etc/vmgt-{self.id} /opt/vmgt-{self.id} /var/lib/vmgt-{self.id} "
            f"/etc/systemd/system/{self.unit} /var/lib/vmgitops/{self.key}; "
            "systemctl daemon-reload",
            check=False,
        )


def bed_for(vm: VM, tmp: Path) -> Iterator[EngineBed]:
    bed = EngineBed(vm, tmp)
    try:
        yield bed
    finally:
        bed.cleanup()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
