"""An operator killed (SIGKILL) in the middle of a rollout resumes it when it runs again:
batch numbers continue, and VMs already at the revision (by their own record) are not
applied again. Runs its own operator process on a namespace no session operator
watches, so that the test can kill it; also reads that operator's /metrics."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from apprepo import (
    AppRepo,
    app_status,
    application,
    apply,
    event_reasons,
    inode,
    operation,
    setup_targets,
    vm_file,
    vm_lines,
    wait_status,
    wait_synced_healthy,
)
from testbed import DEV, KUBECONFIG, ROOT, VM, eventually, kubectl

pytestmark = pytest.mark.e2e


class OwnOperator:
    """`vmgitops run -n NAMESPACE` as a process of this test: started, killed, restarted."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    def start(self) -> None:
        (DEV / "logs").mkdir(parents=True, exist_ok=True)
        log_path = DEV / "logs" / f"operator-{self.namespace}-{len(self.logs)}.log"
        self.logs.append(log_path)
        env = {**os.environ, "KUBECONFIG": str(KUBECONFIG), "VMGITOPS_PROBE_INTERVAL": "5"}
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(ROOT / ".venv/bin/vmgitops"),
                    "run",
                    "--verbose",
                    "-n",
                    self.namespace,
                    "--metrics-address",
                    "127.0.0.1",
                    "--metrics-port",
                    "0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.logs[-1].read_text(errors="replace")

    def metrics(self) -> str:
        found = eventually(
            lambda: re.search(r"metrics at http://([0-9.]+):(\d+)/metrics", self.log()),
            timeout=30,
            what="the operator's metrics address in its log",
        )
        url = f"http://{found.group(1)}:{found.group(2)}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.split()[-1])
    return None


@pytest.fixture
def own_namespace(crds: None) -> Iterator[str]:
    """A namespace outside the session prefix: only this test's operator watches it."""
    name = f"own-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    subprocess.run(
        ["kubectl", "-n", name, "delete", "vmgitops,secrets", "--all", "--wait=false"],
        env={**os.environ, "KUBECONFIG": str(KUBECONFIG)},
        capture_output=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def own_operator(own_namespace: str) -> Iterator[OwnOperator]:
    op = OwnOperator(own_namespace)
    op.start()
    yield op
    op.stop()


@pytest.fixture
def repo(tmp_path: Path, fleet: list[VM]) -> Iterator[AppRepo]:
    r = AppRepo(tmp_path)
    yield r
    for vm in fleet[:4]:
        vm.ssh(r.cleanup_vm_command(), check=False)
    r.remove()


def test_killed_mid_rollout_resumes_without_reapplying(
    own_namespace: str, own_operator: OwnOperator, fleet: list[VM], repo: AppRepo
) -> None:
    ns = own_namespace
    vms = fleet[:4]
    conf, stamps = f"/etc/{repo.app}/{repo.app}.conf", f"/var/lib/{repo.app}/stamps.log"
    setup_targets(ns, vms, env="resume")
    repo.write_app(version="1")
    first = repo.commit("v1")
    strategy = {"rolling": {"maxUnavailable": 2, "maxFailures": 0, "pauseBetweenBatches": "25s"}}
    apply(application(ns, repo, env="resume", automated={}, strategy=strategy))
    wait_synced_healthy(ns, repo.app, first, timeout=300)
    for vm in vms:
        vm.ssh(f"rm -f {stamps}")

    repo.write_app(version="2")
    second = repo.commit("v2")
    status = wait_status(
        ns,
        repo.app,
        lambda s: (
            operation(s).get("revision") == second
            and operation(s).get("batches", {}).get("current") == 1
            and "waiting" in operation(s).get("message", "")
        ),
        timeout=180,
        what="batch 1 of 2 done, waiting before batch 2",
    )
    own_operator.kill()
    before = operation(status)
    done, rest = vms[:2], vms[2:]  # batches go in target name order
    for vm in done:
        assert "version=2" in vm_file(vm, conf) and len(vm_lines(vm, stamps)) == 1
    for vm in rest:
        assert "version=1" in vm_file(vm, conf) and vm_lines(vm, stamps) == []
    inodes = {vm.name: (inode(vm, conf), inode(vm, stamps)) for vm in done}
    time.sleep(5)
    assert operation(app_status(ns, repo.app)) == before, "nobody works while it is dead"

    own_operator.start()
    status = wait_synced_healthy(ns, repo.app, second, timeout=300)
    op = operation(status)
    assert op["startedAt"] == before["startedAt"], "the same operation, resumed"
    assert op["batches"] == {"current": 2, "total": 2}
    assert op["targets"]["succeeded"] == 4 and op["targets"]["failed"] == 0
    for vm in done:
        # Read from the VM's own record: at v2 already, so not applied again.
        assert len(vm_lines(vm, stamps)) == 1
        assert (inode(vm, conf), inode(vm, stamps)) == inodes[vm.name]
    for vm in rest:
        assert "version=2" in vm_file(vm, conf) and len(vm_lines(vm, stamps)) == 1
    assert "SyncResumed" in event_reasons(ns, repo.app)
    assert "resuming the operation" in own_operator.log()

    # Drift found on a VM (no selfHeal: reported, counted, not healed).
    vms[0].ssh(f"echo tampered >> {conf}")
    eventually(
        lambda: "DriftDetected" in event_reasons(ns, repo.app),
        timeout=60,
        what="a DriftDetected Event",
    )
    # The gauges follow the status write of the tick that posted the Event.
    eventually(
        lambda: (
            sample(
                own_operator.metrics(),
                "vmgitops_app_targets",
                app=repo.app,
                sync="OutOfSync",
                health="Healthy",
            )
            == 1
        ),
        timeout=60,
        what="the drifted target in vmgitops_app_targets",
    )
    metrics = own_operator.metrics()
    assert sample(metrics, "vmgitops_operations_total", result="Succeeded") == 1
    count = sample(metrics, "vmgitops_sync_duration_seconds_count")
    assert count is not None and count >= 1
    assert sample(metrics, "vmgitops_drift_detected_total", namespace=ns, app=repo.app) == 1
    synced = sample(metrics, "vmgitops_app_targets", app=repo.app, sync="Synced", health="Healthy")
    drifted = sample(
        metrics, "vmgitops_app_targets", app=repo.app, sync="OutOfSync", health="Healthy"
    )
    assert (synced, drifted) == (3, 1), metrics
    assert "tampered" in vm_file(vms[0], conf)
