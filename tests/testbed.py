"""Access to the real test bed (control plane, fleet, Git server) for the tests.

Everything here drives the same hack/ scripts `make up` uses, so the tests exercise the
developer environment itself.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / ".dev"
KUBECONFIG = DEV / "kubeconfig"
FLEET_JSON = DEV / "fleet.json"
GIT_PORT = int(os.environ.get("GIT_PORT", "9418"))
GIT_BASE_URL = f"git://127.0.0.1:{GIT_PORT}"

T = TypeVar("T")


@dataclass(frozen=True)
class VM:
    name: str
    address: str
    port: int
    user: str
    private_key_file: Path
    host_public_key: str

    @property
    def private_key(self) -> str:
        return self.private_key_file.read_text()

    def ssh(
        self, command: str, *, check: bool = True, timeout: float = 60, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Runs a shell command on the VM with the OpenSSH client (the test's own eyes)."""
        return subprocess.run(
            [
                "ssh",
                "-F",
                "/dev/null",
                "-i",
                str(self.private_key_file),
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                f"UserKnownHostsFile={_known_hosts(self)}",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
                "-p",
                str(self.port),
                f"{self.user}@{self.address}",
                command,
            ],
            check=check,
            capture_output=True,
            timeout=timeout,
            input=input,
        )

    def sshd_log(self) -> str:
        return self.ssh("journalctl -u ssh.service --no-pager -o cat").stdout.decode()


def _known_hosts(vm: VM) -> Path:
    path = DEV / "known_hosts" / vm.name
    path.parent.mkdir(parents=True, exist_ok=True)
    line = f"{vm.address} {vm.host_public_key}\n"
    if not path.exists() or path.read_text() != line:
        path.write_text(line)
    return path


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG)}
    return subprocess.run(cmd, check=True, text=True, capture_output=True, env=env, **kw)


def up(fleet_size: int) -> None:
    env = {**os.environ, "FLEET": str(fleet_size)}
    subprocess.run(["bash", str(ROOT / "hack/up.sh")], check=True, env=env)


def fleet() -> list[VM]:
    data = json.loads(FLEET_JSON.read_text())
    return [
        VM(
            d["name"],
            d["address"],
            int(d["port"]),
            d["user"],
            ROOT / d["privateKeyFile"],
            d["hostPublicKey"],
        )
        for d in data
    ]


def fleet_ctl(*args: str) -> None:
    subprocess.run(["python3", str(ROOT / "hack/fleet/fleet.py"), *args], check=True)


def kubectl(*args: str, input: str | None = None) -> str:
    return run(["kubectl", *args], input=input).stdout


def apply(obj: dict[str, Any]) -> None:
    """kubectl apply of one object (as JSON)."""
    kubectl("apply", "-f", "-", input=json.dumps(obj))


def ssh_secret(namespace: str, name: str, private_key: str) -> dict[str, Any]:
    """A kubernetes.io/ssh-auth Secret holding `private_key`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/ssh-auth",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"ssh-privatekey": base64.b64encode(private_key.encode()).decode()},
    }


def eventually(
    fn: Callable[[], T | None],
    *,
    timeout: float = 60,
    interval: float = 0.5,
    what: str = "condition",
) -> T:
    """Polls fn until it returns something truthy; bounded in time, says what it waited for."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
