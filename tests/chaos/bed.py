"""The chaos and security test bed: VMs of their own, an operator process of their own.

Nothing here touches what other tests use:

* **VMs** `vm61..vm80` (CHAOS_VMS sets how many) are booted with `hack/fleet/fleet.py`'s
  own functions, which leaves `.dev/fleet.json`, and so vm1..vm8, alone (vm5, vm6, vm31..
  vm38 and vm41 belong to other tests); they carry the label `chaos=<id>` of one test, so
  no other application selects them.
* **Namespaces** are named `c<session>-<hex>`: the session operator of `tests/conftest.py`
  watches `t<session>-*` only, so the operator started here is the only one that acts.
* **The operator** is a real `vmgitops run -n NAMESPACE` process that the test may
  SIGKILL, restart, or start with `VMGITOPS_CRASH_AT` (see `vmgitops.engine.sync`), or
  with `VMGITOPS_PROMOTION_CRASH_FILE` to die at a point of a Promotion (see
  `vmgitops.promotion.crashpoints` and test_chaos_promotion.py).

Commands inside a VM run through `nsenter` (the VM's namespaces and root), never over
SSH, so that the sshd logs the tests read hold the operator's connections only.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from testbed import DEV, KUBECONFIG, ROOT, VM

T = TypeVar("T")

FULL = os.environ.get("VMGITOPS_CHAOS", "") == "full"
SESSION = uuid.uuid4().hex[:5]
NAMESPACE_PREFIX = f"c{SESSION}-"
LOGS = DEV / "logs"
FIRST_VM = int(os.environ.get("CHAOS_FIRST_VM", "61"))
VM_COUNT = int(os.environ.get("CHAOS_VMS", "20"))
PATH = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"


def scale(quick: int, full: int) -> int:
    """`full` under `make chaos` (VMGITOPS_CHAOS=full), `quick` under `make test`."""
    return full if FULL else quick


# -- the fleet ------------------------------------------------------------------------


def fleet_module() -> ModuleType:
    """hack/fleet/fleet.py as a module (it only uses the standard library)."""
    spec = importlib.util.spec_from_file_location("vmgitops_fleet", ROOT / "hack/fleet/fleet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_FLEET: ModuleType | None = None


def fleet() -> ModuleType:
    global _FLEET
    if _FLEET is None:
        _FLEET = fleet_module()
    return _FLEET


def chaos_vm_names(count: int = VM_COUNT) -> list[str]:
    return [f"vm{i}" for i in range(FIRST_VM, FIRST_VM + count)]


def boot(names: list[str]) -> list[VM]:
    """Boots these VMs (those running are kept) without rewriting fleet.json."""
    f = fleet()
    f.start(names)
    out = []
    for name in names:
        e = f.entry(name)
        out.append(
            VM(
                e["name"],
                e["address"],
                int(e["port"]),
                e["user"],
                ROOT / e["privateKeyFile"],
                e["hostPublicKey"],
            )
        )
    # In a boot storm systemd-user-sessions may fail, leaving /run/nologin, which makes
    # PAM refuse every login but root's (seen on vm60 of 20 booted at once).
    parallel(
        lambda vm: vm_sh(
            vm,
            "systemctl is-active -q systemd-user-sessions.service || "
            "systemctl restart systemd-user-sessions.service; rm -f /run/nologin",
            check=False,
        ),
        out,
    )
    return out


def vm_pid(vm: VM) -> int:
    pid = fleet().pid_of(vm.name)
    if pid is None:
        raise RuntimeError(f"{vm.name} is not running")
    return int(pid)


def vm_sh(
    vm: VM, script: str, *, check: bool = True, timeout: float = 60, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Runs a shell script inside the VM (its namespaces and root), not over SSH."""
    argv = ["nsenter", "-t", str(vm_pid(vm)), "-m", "-u", "-p", "-n", "-r", "-w"]
    argv += ["env", "-i", PATH, "LC_ALL=C", "sh", "-c", script]
    done = subprocess.run(argv, capture_output=True, timeout=timeout, input=input, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{vm.name}: {script[:200]!r} exited {done.returncode}: "
            f"{done.stderr.decode(errors='replace')[-500:]}"
        )
    return done


def vm_out(vm: VM, script: str, **kw: Any) -> str:
    return vm_sh(vm, script, **kw).stdout.decode("utf-8", "replace")


def parallel(fn: Callable[[VM], T], vms: Iterable[VM], workers: int = 8) -> dict[str, T]:
    vms = list(vms)
    with ThreadPoolExecutor(max_workers=min(workers, len(vms) or 1)) as ex:
        return dict(zip([v.name for v in vms], ex.map(fn, vms), strict=True))


def stop_vm(vm: VM) -> None:
    fleet().stop(vm.name, remove=False)


def start_vm(vm: VM) -> None:
    fleet().start([vm.name])


def sshd_cursor(vm: VM) -> str:
    out = vm_out(vm, "journalctl -n 0 --show-cursor --no-pager")
    m = re.search(r"-- cursor: (\S+)", out)
    return m.group(1) if m else ""


def sshd_log_since(vm: VM, cursor: str) -> str:
    after = f"--after-cursor='{cursor}'" if cursor else ""
    return vm_out(vm, f"journalctl -u ssh.service {after} --no-pager -o cat")


# -- the Kubernetes API ---------------------------------------------------------------


def kubectl(
    *args: str, input: str | None = None, check: bool = True, kubeconfig: Path = KUBECONFIG
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    done = subprocess.run(
        ["kubectl", *args], input=input, env=env, capture_output=True, text=True, timeout=120
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:4])}: {done.stderr.strip()[-800:]}")
    return done


def apply(obj: Mapping[str, Any] | list[Mapping[str, Any]], **kw: Any) -> None:
    items = obj if isinstance(obj, list) else [obj]
    doc = {"apiVersion": "v1", "kind": "List", "items": items}
    kubectl("apply", "-f", "-", input=json.dumps(doc), **kw)


def get(kind: str, namespace: str, name: str, **kw: Any) -> dict[str, Any]:
    out = kubectl("-n", namespace, "get", kind, name, "-o", "json", **kw).stdout
    obj: dict[str, Any] = json.loads(out)
    return obj


def get_all(kind: str, namespace: str, **kw: Any) -> list[dict[str, Any]]:
    out = kubectl("-n", namespace, "get", kind, "-o", "json", **kw).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


#: Namespaces of the shared operator (c<session>-s-*) and of tests that run their own
#: (c<session>-d-*): never both watching one namespace.
SHARED = "s-"
DEDICATED = "d-"


def create_namespace(kubeconfig: Path = KUBECONFIG, kind: str = DEDICATED) -> str:
    name = f"{NAMESPACE_PREFIX}{kind}{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name, kubeconfig=kubeconfig)
    return name


def clean_namespace(namespace: str, kubeconfig: Path = KUBECONFIG) -> None:
    """Deletes our objects and Secrets; finalizers left by a dead operator are dropped."""
    kubectl(
        "-n",
        namespace,
        "delete",
        "vmgitops,secrets",
        "--all",
        "--wait=false",
        "--ignore-not-found",
        check=False,
        kubeconfig=kubeconfig,
    )
    for kind in ("vmapp", "vmt", "promo"):
        done = kubectl(
            "-n", namespace, "get", kind, "-o", "name", check=False, kubeconfig=kubeconfig
        )
        for ref in done.stdout.split():
            kubectl(
                "-n",
                namespace,
                "patch",
                ref,
                "--type=merge",
                "-p",
                '{"metadata":{"finalizers":null}}',
                check=False,
                kubeconfig=kubeconfig,
            )


def ssh_secret(namespace: str, vm: VM, name: str = "fleet-ssh") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/ssh-auth",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"ssh-privatekey": base64.b64encode(vm.private_key.encode()).decode()},
    }


def target(
    namespace: str, vm: VM, labels: Mapping[str, str], secret: str = "fleet-ssh", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "vmgitops.io/v1alpha1",
        "kind": "VirtualMachineTarget",
        "metadata": {"name": vm.name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "address": vm.address,
            "port": vm.port,
            "user": vm.user,
            "credentials": {"secretRef": {"name": secret}},
            "hostKey": {"policy": "Pinned", "publicKeys": [vm.host_public_key]},
            **spec,
        },
    }


def eventually(
    fn: Callable[[], T | None], *, timeout: float, interval: float = 1.0, what: str
) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


# -- the operator ---------------------------------------------------------------------

TRACEBACK = re.compile(r"^Traceback \(most recent call last\):", re.M)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Operator:
    """One dedicated `vmgitops run` for the test's namespaces; every start is logged."""

    def __init__(
        self,
        namespaces: list[str],
        *,
        label: str = "chaos",
        kubeconfig: Path = KUBECONFIG,
        env: Mapping[str, str] | None = None,
    ) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_path = LOGS / f"{label}-operator-{stamp}-{uuid.uuid4().hex[:4]}.log"
        self.namespaces = namespaces
        self.kubeconfig = kubeconfig
        self.env = dict(env or {})
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        #: Exits the test did not cause (a crash of the operator itself).
        self.unexpected_exits: list[int] = []

    def start(self, *, crash_at: str | None = None, env: Mapping[str, str] | None = None) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        full_env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "VMGITOPS_PROBE_INTERVAL": "5",
            **self.env,
            **(env or {}),
        }
        full_env.pop("VMGITOPS_CRASH_AT", None)
        if crash_at:
            full_env["VMGITOPS_CRASH_AT"] = crash_at
        argv = ["nice", "-n", "3", str(ROOT / ".venv/bin/vmgitops"), "run", "--verbose"]
        for ns in self.namespaces:
            argv += ["--namespace", ns]
        argv += ["--metrics-port", str(self.metrics_port), "--metrics-address", "127.0.0.1"]
        with open(self.log_path, "ab") as log:
            log.write(
                f"\n===== start {self.starts + 1} crash_at={crash_at or '-'} "
                f"at {time.strftime('%H:%M:%S')} =====\n".encode()
            )
            log.flush()
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
            )
        self.starts += 1

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL, the way a node failure or the OOM killer ends it."""
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def mark(self) -> int:
        """Where the log ends now: `log(since=mark)` is what came after."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log(self, since: int = 0) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def tracebacks(self, since: int = 0) -> list[str]:
        """Every traceback in the log, with the 25 lines that follow it."""
        lines = self.log(since).splitlines()
        out = []
        for i, line in enumerate(lines):
            if TRACEBACK.match(line):
                out.append("\n".join(lines[max(0, i - 2) : i + 25]))
        return out

    def metrics(self) -> str:
        import urllib.request

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:  # loopback only
            body: bytes = r.read()
        return body.decode()

    def wait_ready(self, timeout: float = 60) -> None:
        """Until /metrics answers (the process is up and imported everything)."""

        def up() -> bool:
            if not self.alive():
                raise AssertionError(f"the operator exited at start:\n{self.log()[-3000:]}")
            try:
                self.metrics()
            except OSError:
                return False
            return True

        eventually(up, timeout=timeout, interval=0.3, what="the operator's /metrics")


@contextlib.contextmanager
def operator_for(namespaces: list[str], **kw: Any) -> Iterator[Operator]:
    op = Operator(namespaces, **kw)
    try:
        yield op
    finally:
        op.stop()


# -- leak search ------------------------------------------------------------------------


def variants(secret: str) -> dict[str, str]:
    """The spellings of a secret to search for: plain, base64 (both alphabets, and of the
    secret inside a line), URL-encoded."""
    from urllib.parse import quote, quote_plus

    raw = secret.encode()
    out = {
        "plain": secret,
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "urlencoded": quote(secret, safe=""),
        "urlencoded+": quote_plus(secret),
    }
    # Base64 of the secret at the three alignments, minus the edge characters that
    # depend on what surrounds it, so an embedded secret is found too.
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + raw).decode()
        core = enc[4 if shift else 0 : -4]
        if len(core) >= 12:
            out[f"base64@{shift}"] = core
    return {k: v for k, v in out.items() if v}


def find_leaks(haystacks: Mapping[str, str], secrets: Mapping[str, str]) -> list[str]:
    """ "<where>: <secret> (<spelling>)" for every secret spelling found in a haystack."""
    found = []
    for where, text in haystacks.items():
        for name, secret in secrets.items():
            for spelling, needle in variants(secret).items():
                if needle and needle in text:
                    found.append(f"{where}: {name} ({spelling})")
    return found


class Watchdog:
    """Calls `fn` every `interval` seconds on a thread until stopped (a sampler)."""

    def __init__(self, fn: Callable[[], None], interval: float) -> None:
        self.fn, self.interval = fn, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.errors: list[str] = []

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.fn()
            except Exception as exc:  # a sampler must not die silently
                self.errors.append(repr(exc))
            self._stop.wait(self.interval)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
