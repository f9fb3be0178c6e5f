"""Session fixtures over the real test bed: started once per run, lazily.

Unit tests use none of these, so `pytest tests/unit` needs no environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import testbed
from testbed import DEV, ROOT, VM

# The suite needs four VMs whatever FLEET says for `make up` (one is stopped and restarted).
FLEET_SIZE = max(4, int(os.environ.get("FLEET", "4")))
#: Several pytest sessions may share one control plane (a developer's and a CI run, or
#: parallel work): each session's operator watches only its own session's namespaces.
SESSION = uuid.uuid4().hex[:5]
NAMESPACE_PREFIX = f"t{SESSION}-"


@pytest.fixture(scope="session")
def fleet() -> list[VM]:
    """The control plane, FLEET_SIZE VMs and the Git server, up (started if needed)."""
    testbed.up(FLEET_SIZE)
    vms = testbed.fleet()
    assert len(vms) >= FLEET_SIZE, f"fleet.json lists {len(vms)} VMs, wanted {FLEET_SIZE}"
    return vms


@pytest.fixture(scope="session")
def crds(fleet: list[VM]) -> None:
    """Our CRDs installed in the real API server and Established."""
    testbed.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    testbed.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds")
    )


@pytest.fixture
def namespace(crds: None) -> Iterator[str]:
    """A fresh namespace per test; its vmgitops objects are deleted afterwards.

    Namespaces never finish deleting without kube-controller-manager, so the test bed
    deletes the objects it made and leaves the empty namespace behind.
    """
    name = f"{NAMESPACE_PREFIX}{uuid.uuid4().hex[:8]}"
    testbed.kubectl("create", "namespace", name)
    yield name
    subprocess.run(
        [
            "kubectl",
            "-n",
            name,
            "delete",
            "vmgitops,secrets",
            "--all",
            "--wait=false",
            "--ignore-not-found",
        ],
        env={**os.environ, "KUBECONFIG": str(testbed.KUBECONFIG)},
        capture_output=True,
        check=False,
        timeout=60,
    )


@pytest.fixture(scope="session")
def operator(crds: None) -> Iterator[Path]:
    """`vmgitops run` as a real process against the real API server; yields its log file."""
    logs = DEV / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"operator-{time.strftime('%Y%m%d-%H%M%S')}-{SESSION}.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(testbed.KUBECONFIG),
        "VMGITOPS_PROBE_INTERVAL": os.environ.get("VMGITOPS_PROBE_INTERVAL", "5"),
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                str(ROOT / ".venv/bin/vmgitops"),
                "run",
                "--verbose",
                "--namespace",
                f"{NAMESPACE_PREFIX}*",
                # Metrics on loopback, on a free port: the fleet's VMs share this host's
                # network, and a service on a VM cannot bind a port held on 0.0.0.0
                # (the shop example's listens on 8080, the default metrics port).
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
    try:
        yield log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
