"""Run one sync in its own process, optionally dying at a chosen point (a test harness).

    python -m vmgitops.engine.crashtest JOB.json

JOB is `{"folder", "revision", "generation", "prune", "appKey", "params", "facts",
"target": {"name", "address", "labels"}, "ssh": {"address", "port", "user",
"privateKeyFile", "hostPublicKey"} or null, "stateRoot", "lockWait", "crashAt"}`.
With "ssh" null the sync runs on this machine's own file system (scripts run locally).
`VMGITOPS_CRASH_AT` overrides "crashAt" (see `executor.ops.parse_crash_point`): the
apply, and this process with it, then die as if killed with SIGKILL (exit 137).
Otherwise the result is printed as JSON on stdout.

This is how the crash-safety tests kill an applier at exact points; it is also a handy
way to try a folder against one VM without a cluster.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vmgitops.engine.result import TargetResult
from vmgitops.engine.sync import EngineOptions, sync_target
from vmgitops.manifest.errors import ManifestError
from vmgitops.manifest.loader import load_app
from vmgitops.manifest.render import TargetInfo
from vmgitops.manifest.vmpaths import STATE_ROOT
from vmgitops.transport.base import CommandResult, Runner
from vmgitops.transport.config import build_connection_config
from vmgitops.transport.keys import KeyCache
from vmgitops.transport.pool import ConnectionPool

CRASH_ENV = "VMGITOPS_CRASH_AT"


class LocalRunner:
    """Runs argv here, in a session of its own (as sshd would), for a local try-out."""

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the Runner contract
    ) -> CommandResult:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin or b""), timeout)
        status = proc.returncode if proc.returncode is not None else -1
        return CommandResult(tuple(argv), status, out, err)


def ssh_spec(ssh: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A VirtualMachineTarget spec and its ssh-auth Secret for a fleet.json entry."""
    key = Path(ssh["privateKeyFile"]).read_bytes()
    spec = {
        "address": ssh["address"],
        "port": int(ssh.get("port", 22)),
        "user": ssh.get("user", "root"),
        "credentials": {"secretRef": {"name": "ssh"}},
        "hostKey": {"policy": "Pinned", "publicKeys": [ssh["hostPublicKey"]]},
    }
    secret = {
        "type": "kubernetes.io/ssh-auth",
        "metadata": {"name": "ssh", "namespace": "crashtest"},
        "data": {"ssh-privatekey": base64.b64encode(key).decode()},
    }
    return spec, secret


async def run_job(job: dict[str, Any], crash_at: str | None) -> TargetResult:
    app = load_app(Path(job["folder"]))
    t = job.get("target") or {}
    options = EngineOptions(
        state_root=job.get("stateRoot") or STATE_ROOT,
        lock_wait=float(job.get("lockWait", 30)),
        crash_at=crash_at,
    )
    kwargs: dict[str, Any] = {
        "app_key": job["appKey"],
        "generation": int(job.get("generation", 1)),
        "revision": job["revision"],
        "app": app,
        "params": job.get("params") or {},
        "target": TargetInfo(t.get("name", "local"), t.get("address", ""), t.get("labels", {})),
        "facts": job.get("facts") or {},
        "prune": bool(job.get("prune", True)),
        "dry_run": bool(job.get("dryRun", False)),
        "options": options,
    }
    ssh = job.get("ssh")
    if ssh is None:
        return await sync_target(LocalRunner(), **kwargs)
    spec, secret = ssh_spec(ssh)
    config = build_connection_config(
        spec, namespace="crashtest", name=ssh.get("name", "vm"), secret=secret, key_cache=KeyCache()
    )
    async with ConnectionPool() as pool:
        runner: Runner = pool.runner(config)
        return await sync_target(runner, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m vmgitops.engine.crashtest JOB.json\n")
        return 2
    job = json.loads(Path(args[0]).read_text())
    crash_at = os.environ.get(CRASH_ENV) or job.get("crashAt") or None
    try:
        result = asyncio.run(run_job(job, crash_at))
    except ManifestError as exc:
        sys.stderr.write(f"error: {exc.reason}: {exc.message}\n")
        return 1
    sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
