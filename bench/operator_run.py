"""vmgitops through the real operator: `vmgitops run` against the bench's own API server,
the app in a Git repository served by the bench's git daemon, one VirtualMachineTarget
per VM.

Timing uses the operator's own trigger, the `vmgitops.io/refresh` annotation (the
operator removes it when the reconcile that it started is over), so no polling interval
is counted:

* S1 (informational): from creating the VMApplication to Synced, Healthy, Succeeded;
* S2: from setting the annotation to its removal: a full drift check of every target
  over the operator's warm connections, plus a Git ls-remote;
* S3: the same, with 1% of the VMs edited by hand (selfHeal repairs them);
* S4: commit the new version, set the annotation, until the operation at that commit
  has Succeeded (strategy Rolling, maxUnavailable 10%, maxFailures 0: the health gate).

The operator runs in its own cgroup: its CPU is the cgroup's; its memory is its PSS
and VmHWM.
"""

from __future__ import annotations

import base64
import concurrent.futures
import math
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import measure, workload
from bench.fleetctl import ROOT, Host, bench_env
from bench.kube import Kube, app_path, poll, target_path

REFRESH = "vmgitops.io/refresh"


@dataclass
class Window:
    """One measured operator window."""

    wall: float
    tool_cpu: float
    pss: int
    hwm: int


def _epoch(stamp: Any) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _status_mem(pid: int) -> tuple[int, int]:
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


class GitRepo:
    """A bare repository under the bench's git/ and a work tree to commit from."""

    def __init__(self, dev: Path, work: Path, name: str, port: int) -> None:
        self.bare = dev / "git" / f"{name}.git"
        self.work = work / f"repo-{name}"
        self.url = f"git://127.0.0.1:{port}/{name}.git"
        self.bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.bare)], check=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("remote", "add", "origin", str(self.bare))

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.work, check=True, capture_output=True, text=True
        ).stdout.strip()

    def commit_version(self, version: str, per_host: bool = True, light: bool = False) -> str:
        workload.write_vmapp(self.work / "app", version, per_host, light)
        self.git("add", "-A")
        self.git(
            "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
            "commit", "-qm", f"version {version}",
        )  # fmt: skip
        self.git("push", "-q", "origin", "main")
        return self.git("rev-parse", "HEAD")


def target_body(h: Host) -> dict[str, Any]:
    return {
        "apiVersion": "vmgitops.io/v1alpha1",
        "kind": "VirtualMachineTarget",
        "metadata": {"name": h.name, "labels": {"app": "bench"}},
        "spec": {
            "address": h.address,
            "port": h.port,
            "user": h.user,
            "credentials": {"secretRef": {"name": "fleet-ssh"}},
            "hostKey": {"publicKeys": [h.host_key]},
        },
    }


class OperatorBench:
    """The operator, its namespace, targets, Git repository and application."""

    def __init__(
        self, *, dev: Path, work: Path, hosts: Sequence[Host], git_port: int, name: str = "bench"
    ) -> None:
        self.dev, self.work, self.hosts = dev, work, list(hosts)
        self.kube = Kube(dev / "kubeconfig")
        self.ns = f"bench-{uuid.uuid4().hex[:6]}"
        self.name = name
        self.repo = GitRepo(dev, work, self.ns, git_port)
        self.proc: subprocess.Popen[bytes] | None = None
        self.cgroup: measure.Cgroup | None = None
        self.log_path = work / f"operator-{self.ns}.log"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, extra_env: dict[str, str] | None = None, metrics_port: int = -1) -> None:
        self.kube.create("/api/v1/namespaces", {"metadata": {"name": self.ns}})
        env = {
            **bench_env(self.dev),
            "VMGITOPS_PROBE_INTERVAL": "3600",
            **(extra_env or {}),
        }
        argv = [
            str(ROOT / ".venv/bin/vmgitops"), "run", "--namespace", self.ns,
            "--metrics-port", str(metrics_port), "--metrics-address", "127.0.0.1",
        ]  # fmt: skip
        profile = os.environ.get("BENCH_OPERATOR_PROFILE")
        if profile:  # for finding hot spots: cProfile's output, written when it stops
            argv = [
                str(ROOT / ".venv/bin/python"), "-m", "cProfile", "-o", profile,
                "-m", "vmgitops.cli.main", *argv[1:],
            ]  # fmt: skip
        if measure.HAVE_CGROUPS:
            self.cgroup = measure.Cgroup(f"operator-{self.ns}")
            argv = self.cgroup.wrap(argv)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.cgroup is not None:
            self.cgroup.remove()

    def cleanup(self, timeout: float = 60) -> None:
        """Deletes the app and targets while the operator still runs, then stops it."""
        self.kube.delete(app_path(self.ns, self.name))
        self.kube.delete(target_path(self.ns))  # the whole collection, one request
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = self.kube.get(target_path(self.ns)).get("items", [])
            left += self.kube.get(app_path(self.ns)).get("items", [])
            if not left:
                break
            time.sleep(0.5)
        self.stop()

    # -- measuring -----------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        if self.cgroup is not None:
            return self.cgroup.cpu_seconds()
        return measure._proc_cpu(self.pid)

    def memory(self) -> tuple[int, int]:
        """(PSS, VmHWM) of the operator process."""
        return measure.pss(self.pid), _status_mem(self.pid)[1]

    def _window(self, began: float, cpu0: float) -> Window:
        wall = time.monotonic() - began
        pss, hwm = self.memory()
        return Window(wall, self.cpu() - cpu0, pss, hwm)

    # -- objects -------------------------------------------------------------------------

    def create_targets(self, workers: int = 1) -> None:
        key = self.hosts[0].key_file.read_bytes()
        self.kube.create(
            f"/api/v1/namespaces/{self.ns}/secrets",
            {
                "metadata": {"name": "fleet-ssh"},
                "type": "kubernetes.io/ssh-auth",
                "data": {"ssh-privatekey": base64.b64encode(key).decode()},
            },
        )
        local = threading.local()

        def create(h: Host) -> None:
            if not hasattr(local, "kube"):
                local.kube = Kube(self.dev / "kubeconfig")
            local.kube.create(target_path(self.ns), target_body(h))

        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
            list(ex.map(create, self.hosts))

    def wait_targets_probed(self, timeout: float = 300, interval: float = 0.5) -> None:
        def probed() -> bool:
            items = self.kube.get(target_path(self.ns)).get("items", [])
            ok = [t for t in items if (t.get("status") or {}).get("facts")]
            return len(ok) == len(self.hosts)

        poll(probed, timeout=timeout, interval=interval, what="every target probed (facts)")

    def app_body(self, max_unavailable: str) -> dict[str, Any]:
        return {
            "apiVersion": "vmgitops.io/v1alpha1",
            "kind": "VMApplication",
            "metadata": {"name": self.name},
            "spec": {
                "source": {"repoURL": self.repo.url, "targetRevision": "main", "path": "app"},
                "destination": {"selector": {"matchLabels": {"app": "bench"}}},
                "refreshInterval": "1h",
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                "strategy": {
                    "type": "Rolling",
                    "rolling": {"maxUnavailable": max_unavailable, "maxFailures": 0},
                },
            },
        }

    def app(self) -> dict[str, Any]:
        obj: dict[str, Any] = self.kube.get(app_path(self.ns, self.name))
        return obj

    def _done(self, revision: str, op_since: float | None = None) -> dict[str, Any] | None:
        """The app as the operator left it, once the work asked of it is over.

        `op_since`: an operation must have started at or after this time (epoch) and
        succeeded; the refresh annotation alone is removed before a rollout starts.
        """
        a = self.app()
        s = a.get("status") or {}
        anns = (a.get("metadata") or {}).get("annotations") or {}
        op = s.get("operation") or {}
        if op_since is not None:
            started = _epoch(op.get("startedAt"))
            if started is None or started < math.floor(op_since):
                return None
        ok = (
            REFRESH not in anns
            and (s.get("sync") or {}).get("status") == "Synced"
            and (s.get("sync") or {}).get("revision") == revision
            and (s.get("health") or {}).get("status") == "Healthy"
            and op.get("revision") == revision
            and op.get("phase") == "Succeeded"
            and s.get("observedGeneration") == (a.get("metadata") or {}).get("generation")
        )
        if op.get("phase") == "Failed":
            raise RuntimeError(f"the operation failed: {op.get('message')}")
        return a if ok else None

    # -- scenarios -----------------------------------------------------------------------

    def s1_initial(self, revision: str, timeout: float) -> Window:
        cpu0, began, since = self.cpu(), time.monotonic(), time.time()
        self.kube.create(app_path(self.ns), self.app_body("100%"))
        poll(lambda: self._done(revision, since), timeout=timeout, what="initial sync")
        return self._window(began, cpu0)

    def refresh(self, revision: str, timeout: float, operation: bool = False) -> Window:
        """Sets the refresh annotation; returns when the reconcile it started is over
        (with `operation`: when the operation it started has succeeded)."""
        cpu0, began, since = self.cpu(), time.monotonic(), time.time()
        self.kube.merge_patch(
            app_path(self.ns, self.name), {"metadata": {"annotations": {REFRESH: "bench"}}}
        )
        poll(
            lambda: self._done(revision, since if operation else None),
            timeout=timeout,
            interval=0.05,
            what="refresh done",
        )
        return self._window(began, cpu0)

    def set_batches(self, max_unavailable: str, revision: str, timeout: float = 120) -> None:
        self.kube.merge_patch(
            app_path(self.ns, self.name),
            {"spec": {"strategy": {"rolling": {"maxUnavailable": max_unavailable}}}},
        )
        poll(lambda: self._done(revision), timeout=timeout, what="strategy change observed")

    def operation(self) -> dict[str, Any]:
        return dict((self.app().get("status") or {}).get("operation") or {})
