"""Every folder of examples/ applied to the real operator, API server, Git daemon and VMs,
the way its README says, so that no example can rot:

- quickstart: the fleet as VirtualMachineTargets, all Reachable;
- shop: the app pushed to Git, deploy/ applied, staging and prod Synced and Healthy, the
  service answering on each VM;
- argocd: the app of apps, synced the way Argo CD syncs it (Argo CD itself cannot run
  here): the root Application's folder and each child's folder are read from a real Git
  repository, objects are applied wave by wave (argocd.argoproj.io/sync-wave), and a wave
  starts only when the previous one is Healthy according to the Lua health checks of
  examples/argocd/argocd-cm.yaml, run in a real Lua interpreter.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import DEV, GIT_BASE_URL, ROOT, VM, eventually, kubectl

sys.path.insert(0, str(ROOT / "tests" / "unit" / "argocd"))

from luahealth import GROUP, KINDS, health

pytestmark = pytest.mark.e2e

EXAMPLES = ROOT / "examples"
WAVE = "argocd.argoproj.io/sync-wave"
#: What the shop's app puts on a VM (for the cleanup between tests).
HELLO_CLEANUP = (
    "systemctl disable --now hello.service 2>/dev/null; "
    "rm -rf /etc/hello /opt/hello /var/lib/hello /usr/local/bin/hello "
    "/etc/systemd/system/hello.service /var/lib/vmgitops/{ns}_*; systemctl daemon-reload"
)


def _render_module() -> Any:
    spec = importlib.util.spec_from_file_location("render_example", ROOT / "hack/render-example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RENDER = _render_module()


def render(text: str, origin: str, repos: dict[str, str] | None = None) -> str:
    """An example's text with ${...} filled from the fleet (hack/render-example.py), and
    the shared repository names pointed at this test's private copies."""
    out: str = RENDER.render(text, RENDER.values(), origin)
    for shared, private in (repos or {}).items():
        out = out.replace(f"{GIT_BASE_URL}/{shared}.git", f"{GIT_BASE_URL}/{private}.git")
    return out


def render_folder(folder: Path, repos: dict[str, str] | None = None) -> str:
    """What `python3 hack/render-example.py FOLDER` prints (and the README pipes to kubectl)."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "hack/render-example.py"), str(folder)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for shared, private in (repos or {}).items():
        out = out.replace(f"{GIT_BASE_URL}/{shared}.git", f"{GIT_BASE_URL}/{private}.git")
    return out


def git(*args: str, cwd: Path | None = None) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "examples",
        "GIT_AUTHOR_EMAIL": "examples@example.invalid",
        "GIT_COMMITTER_NAME": "examples",
        "GIT_COMMITTER_EMAIL": "examples@example.invalid",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=120
    ).stdout.strip()


class Repos:
    """Private bare repositories on the test bed's git daemon, removed afterwards."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.made: list[Path] = []
        #: Shared name (as the examples spell it) -> this test's private copy.
        self.names: dict[str, str] = {}

    def push(self, shared: str, tree: Path, *, render_yaml: bool = False) -> str:
        """Publishes `tree` as a fresh repository; returns its private name."""
        name = f"{shared}-{uuid.uuid4().hex[:6]}"
        bare = DEV / "git" / f"{name}.git"
        git("init", "-q", "--bare", "-b", "main", str(bare))
        self.made.append(bare)
        self.names[shared] = name
        work = self.tmp / name
        shutil.copytree(tree, work)
        if render_yaml:
            # As a user commits them: the placeholders filled in with real values.
            for f in work.rglob("*.yaml"):
                f.write_text(render(f.read_text(), str(f), self.names))
        git("init", "-q", "-b", "main", cwd=work)
        git("add", "-A", cwd=work)
        git("commit", "-qm", f"{shared} from examples/", cwd=work)
        git("push", "-q", str(bare), "main", cwd=work)
        return name

    def remove(self) -> None:
        for bare in self.made:
            shutil.rmtree(bare, ignore_errors=True)


@pytest.fixture
def repos(tmp_path: Path) -> Iterator[Repos]:
    r = Repos(tmp_path)
    yield r
    r.remove()


@pytest.fixture
def hello_fleet(fleet: list[VM], namespace: str) -> Iterator[list[VM]]:
    """The fleet, for tests that deploy the shop's `hello` app: one such test at a time on
    this machine, and nothing of it left on the VMs afterwards."""
    others = [
        f"{a['metadata']['namespace']}/{a['metadata']['name']}"
        for a in json.loads(kubectl("get", "vmapp", "--all-namespaces", "-o", "json"))["items"]
        if a["metadata"]["namespace"] != namespace
        and ((a.get("spec") or {}).get("source") or {}).get("path", "").strip("/") == "apps/web"
    ]
    if others:
        pytest.skip(
            f"the shop's app is deployed on this fleet by {', '.join(others)} (make demo?), and "
            "this test deploys the same app to the same VMs; `make down` or delete those first"
        )
    (DEV / "run").mkdir(parents=True, exist_ok=True)
    with open(DEV / "run" / "hello-example.lock", "w") as lock:
        deadline = time.monotonic() + 1200
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "another session held the fleet for 20 min"
                time.sleep(2)
        holder = port_holder(fleet[0].address, 8080)
        if holder:
            pytest.skip(
                f"port 8080, where the shop's service listens on each VM, is taken: {holder}"
            )
        try:
            yield fleet[:4]
        finally:
            kubectl("-n", namespace, "delete", "vmapp", "--all", "--wait=true", "--timeout=120s")
            for vm in fleet[:4]:
                vm.ssh(HELLO_CLEANUP.format(ns=namespace), check=False)


def port_holder(address: str, port: int) -> str:
    """Who holds `port` on the VMs' shared network ("" when it is free); VMs share the
    host's network, so a process on 0.0.0.0 there keeps every VM's service from binding."""
    with socket.socket() as sock:
        # As a server binds (SO_REUSEADDR): connections left in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            pass
        else:
            return ""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True)
    return out.stdout.strip() or f"{address}:{port} is in use"


def apply_text(namespace: str, text: str) -> None:
    kubectl("-n", namespace, "apply", "-f", "-", input=text)


def reachable(namespace: str) -> list[str] | None:
    items = json.loads(kubectl("-n", namespace, "get", "vmt", "-o", "json"))["items"]
    ok = [
        t["metadata"]["name"]
        for t in items
        if any(
            c["type"] == "Reachable" and c["status"] == "True"
            for c in (t.get("status") or {}).get("conditions") or []
        )
    ]
    return ok if items and len(ok) == len(items) else None


def synced_healthy(namespace: str, name: str) -> dict[str, Any] | None:
    status = (
        json.loads(kubectl("-n", namespace, "get", "vmapp", name, "-o", "json")).get("status") or {}
    )
    done = (
        (status.get("sync") or {}).get("status") == "Synced"
        and (status.get("health") or {}).get("status") == "Healthy"
        and (status.get("operation") or {}).get("phase") == "Succeeded"
    )
    return status if done else None


def hello_answer(vm: VM) -> str:
    return vm.ssh(f"curl -s --max-time 5 http://{vm.address}:8080/", check=False).stdout.decode()


# -- quickstart -----------------------------------------------------------------------------


def test_quickstart_targets_become_reachable(
    namespace: str, operator: object, fleet: list[VM]
) -> None:
    apply_text(namespace, render_folder(EXAMPLES / "quickstart"))
    names = eventually(
        lambda: reachable(namespace), timeout=120, interval=1, what="quickstart targets Reachable"
    )
    assert sorted(names) == sorted(vm.name for vm in fleet[:3])
    out = kubectl("-n", namespace, "get", "vmgitops")
    assert "Connected" in out and "Debian" in out


# -- shop -------------------------------------------------------------------------------------


def test_shop_staging_and_prod_synced_and_healthy(
    namespace: str, operator: object, hello_fleet: list[VM], repos: Repos
) -> None:
    shop = repos.push("shop", EXAMPLES / "shop")
    assert (DEV / "git" / f"{shop}.git").exists()
    apply_text(namespace, render_folder(EXAMPLES / "quickstart"))
    apply_text(namespace, render_folder(EXAMPLES / "shop" / "deploy", repos.names))
    eventually(lambda: reachable(namespace), timeout=120, interval=1, what="shop targets Reachable")
    staging = eventually(
        lambda: synced_healthy(namespace, "web-staging"),
        timeout=300,
        interval=2,
        what="web-staging",
    )
    prod = eventually(
        lambda: synced_healthy(namespace, "web-prod"), timeout=300, interval=2, what="web-prod"
    )
    assert staging["summary"]["targets"] == 2 and prod["summary"]["targets"] == 2
    vm1, _, vm3, _ = hello_fleet
    assert hello_answer(vm1).startswith(f"hello from staging from {vm1.name} at ")
    assert hello_answer(vm3).startswith(f"hello from prod from {vm3.name} at ")
    # The README's `vmgitops render` line works on the example as it is.
    out = subprocess.run(
        [
            str(ROOT / ".venv/bin/vmgitops"),
            "render",
            "apps/web",
            "--param",
            "greeting=hello from staging",
        ],
        cwd=EXAMPLES / "shop",
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "greeting=hello from staging" in out.stdout


# -- argocd: the app of apps, synced the way Argo CD does it ----------------------------------


class ArgoSync:
    """Syncs an Argo CD Application the way Argo CD's application controller does, for
    what the examples use: a directory source from Git, waves, health between waves."""

    def __init__(self, namespace: str, tmp: Path) -> None:
        self.namespace, self.tmp = namespace, tmp
        #: (wave, kind, name, health seen first, health at the end of the wave) in order.
        self.log: list[tuple[int, str, str, str, str]] = []
        self.applications: list[str] = []

    def checkout(self, source: dict[str, Any]) -> Path:
        work = self.tmp / f"checkout-{uuid.uuid4().hex[:6]}"
        git(
            "clone",
            "-q",
            "--depth",
            "1",
            "-b",
            source["targetRevision"],
            source["repoURL"],
            str(work),
        )
        folder = work / source["path"]
        assert folder.is_dir(), f"{source['repoURL']} has no folder {source['path']}"
        return folder

    def sync(self, app: dict[str, Any], *, wave_timeout: float = 360) -> None:
        assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
        spec = app["spec"]
        assert spec["destination"]["server"] == "https://kubernetes.default.svc"
        self.applications.append(app["metadata"]["name"])
        objects = []
        for f in sorted(self.checkout(spec["source"]).glob("*.yaml")):
            objects += [d for d in yaml.safe_load_all(f.read_text()) if d]
        waves: dict[int, list[dict[str, Any]]] = {}
        for obj in objects:
            wave = int(((obj.get("metadata") or {}).get("annotations") or {}).get(WAVE, "0"))
            waves.setdefault(wave, []).append(obj)
        for wave in sorted(waves):
            self.sync_wave(wave, waves[wave], wave_timeout)

    def sync_wave(self, wave: int, objects: list[dict[str, Any]], timeout: float) -> None:
        children = [o for o in objects if o["kind"] == "Application"]
        ours = [o for o in objects if o["kind"] != "Application"]
        if ours:
            for obj in ours:
                obj["metadata"].pop("namespace", None)  # destination.namespace: the test's
            kubectl(
                "-n",
                self.namespace,
                "apply",
                "-f",
                "-",
                input=json.dumps({"apiVersion": "v1", "kind": "List", "items": ours}),
            )
        first: dict[tuple[str, str], str] = {}

        def healthy() -> bool:
            done = True
            for obj in ours:
                kind, name = obj["kind"], obj["metadata"]["name"]
                if obj["apiVersion"].split("/")[0] != GROUP:
                    first.setdefault((kind, name), "Healthy")  # no health check: Healthy
                    continue
                assert kind in KINDS
                live = json.loads(
                    kubectl(
                        "-n", self.namespace, "get", f"{kind.lower()}.{GROUP}", name, "-o", "json"
                    )
                )
                status, _ = health(kind, live)
                first.setdefault((kind, name), status)
                done = done and status == "Healthy"
            return done

        eventually(
            healthy, timeout=timeout, interval=1, what=f"wave {wave} Healthy per the Lua checks"
        )
        for obj in ours:
            key = (obj["kind"], obj["metadata"]["name"])
            self.log.append((wave, key[0], key[1], first[key], "Healthy"))
        for child in children:
            self.sync(child)


def test_argocd_app_of_apps_syncs_in_waves_gated_by_the_lua_health_checks(
    namespace: str, operator: object, hello_fleet: list[VM], repos: Repos, tmp_path: Path
) -> None:
    repos.push("shop", EXAMPLES / "shop")
    # The platform repository is examples/argocd itself, committed with real values (the
    # placeholders filled in), as a user would.
    platform = repos.push("platform", EXAMPLES / "argocd", render_yaml=True)
    root = yaml.safe_load(
        render((EXAMPLES / "argocd/root.yaml").read_text(), "root.yaml", repos.names)
    )
    assert root["spec"]["source"]["repoURL"].endswith(f"/{platform}.git")

    argo = ArgoSync(namespace, tmp_path)
    argo.sync(root)

    assert argo.applications == ["vmgitops-root", "shop"]
    order = [(wave, kind) for wave, kind, *_ in argo.log]
    assert order == sorted(order, key=lambda x: x[0]), "waves ran out of order"
    kinds_by_wave = {}
    for wave, kind, *_ in argo.log:
        kinds_by_wave.setdefault(wave, set()).add(kind)
    assert kinds_by_wave == {
        -2: {"Secret"},
        -1: {"VirtualMachineTarget"},
        0: {"VMApplication"},
    }, "the Secret, then the targets, then the applications"
    # The checks really gated: the applications were not Healthy when first looked at.
    first = {(kind, name): seen for _, kind, name, seen, _ in argo.log}
    assert first[("VMApplication", "web-staging")] == "Progressing"
    assert synced_healthy(namespace, "web-staging") and synced_healthy(namespace, "web-prod")
    vm1 = hello_fleet[0]
    assert hello_answer(vm1).startswith(f"hello from staging from {vm1.name} at ")
