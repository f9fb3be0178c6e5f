"""Faults around a running operator (a process of this test's own, never restarted):

* sshd, or the whole VM, killed in the middle of an apply on 10% of the VMs;
* the Git server down, then answering errors, then force-pushed back to an older commit;
* the API server and etcd killed mid-rollout and started again on the same data (a
  control plane of this test's own, so other tests never see it go).

Figures: operator restarts (0), a clear condition within one cycle, convergence after
recovery, and no VM ever holding a revision that was not requested (sampled throughout).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from chaos import bed, figures
from chaos.chaosapp import ChaosApp, Revision, app_status, converged, dump, target_messages
from gitserver import SmartHTTPServer, _CGIHandler
from testbed import DEV, ROOT, VM

pytestmark = pytest.mark.e2e

AREA = "2 faults"


class RevisionSampler(bed.Watchdog):
    """Every revision any VM's config shows, sampled every second."""

    def __init__(self, app: ChaosApp, vms: list[VM]) -> None:
        self.seen: set[str] = set()
        super().__init__(self._sample, 1.0)
        self.app, self.vms = app, vms

    def _sample(self) -> None:
        for vm in self.vms:
            if bed.fleet().pid_of(vm.name) is None:
                continue
            rev = self.app.revision_on(vm)
            if rev:
                self.seen.add(rev)


def wait_converged(
    ns: str, app: ChaosApp, rev: Revision, vms: list[VM], op: bed.Operator, timeout: float = 300
) -> float:
    started = time.monotonic()

    def check() -> bool:
        assert op.alive(), f"the operator died:\n{op.log()[-3000:]}"
        return converged(app_status(ns, app.name), rev, len(vms))

    try:
        bed.eventually(check, timeout=timeout, what=f"convergence at {rev.sha[:12]}")
    except AssertionError:
        raise AssertionError(
            f"{dump(app_status(ns, app.name))}\n{target_messages(ns, app.name)}"
        ) from None
    return time.monotonic() - started


def ready_reason(ns: str, name: str) -> tuple[str, str] | None:
    for c in app_status(ns, name).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "False":
            return str(c.get("reason")), str(c.get("message"))
    return None


@pytest.fixture
def app(tmp_path: Path, chaos_vms: list[VM]) -> Iterator[ChaosApp]:
    a = ChaosApp(tmp_path)
    yield a
    bed.parallel(a.cleanup_vm, chaos_vms)
    a.repo.remove()


# -- VMs and sshd killed mid-apply ------------------------------------------------------


@pytest.mark.timeout(bed.scale(600, 1200))
def test_chaos_vm_and_sshd_killed_mid_apply(
    shared_namespace: str, shared_operator: bed.Operator, chaos_vms: list[VM], app: ChaosApp
) -> None:
    ns, op = shared_namespace, shared_operator
    starts = op.starts
    vms = chaos_vms[: bed.scale(6, len(chaos_vms))]
    # 10% of the VMs (at least one): the whole VM killed (and booted again later), and in a full run
    # also sshd killed (systemd starts it again).
    victims = {"vm": vms[1]} if not bed.FULL else {"vm": vms[1], "sshd": vms[3]}
    label = {"chaos": ns}
    bed.apply([bed.ssh_secret(ns, vms[0]), *(bed.target(ns, vm, label) for vm in vms)])
    strategy = {
        "type": "Rolling",
        "rolling": {"maxUnavailable": bed.scale(3, 5), "maxFailures": 10},
    }
    requested: set[str] = set()
    try:
        r0 = app.commit(0, "a", slow=0, idempotent=True)
        requested.add(r0.sha)
        bed.apply(app.application(ns, label, strategy=strategy))
        wait_converged(ns, app, r0, vms, op)
        with RevisionSampler(app, vms) as sampler:
            r1 = app.commit(1, "b", slow=bed.scale(2, 3), idempotent=True)
            requested.add(r1.sha)
            marker = f"/var/lib/vmgitops/{ns}_{app.name}/markers/pending.stamp"
            for kind, vm in victims.items():
                bed.eventually(
                    lambda vm=vm: bed.vm_sh(vm, f"test -e {marker}", check=False).returncode == 0,
                    timeout=120,
                    interval=0.2,
                    what=f"{vm.name}'s apply to be running its command",
                )
                if kind == "vm":
                    bed.stop_vm(vm)
                else:
                    bed.vm_sh(vm, "pkill -9 -x sshd")
            killed_at = time.monotonic()
            # A clear word about each victim, within one cycle (a batch, or a probe).
            seen_msgs = {}
            for vm in victims.values():
                seen_msgs[vm.name] = bed.eventually(
                    lambda vm=vm: victim_message(ns, app.name, vm.name),
                    timeout=60,
                    what=f"a clear condition for {vm.name}",
                )
            to_condition = time.monotonic() - killed_at
            time.sleep(5)
            if "vm" in victims:
                bed.start_vm(victims["vm"])
            recovery = wait_converged(ns, app, r1, vms, op)
        wrong = sampler.seen - requested
        final = {vm.name: app.revision_on(vm) for vm in vms}
        for name, msg in seen_msgs.items():
            print(f"  {name}: {msg}")
        figures.count(AREA, "operator restarts (VMs and sshd killed mid-apply)", op.starts - starts)
        figures.record(
            AREA,
            "seconds to a clear condition for a killed VM/sshd",
            round(to_condition, 1),
            "<= 60 (one cycle)",
            to_condition <= 60,
        )
        figures.record(
            AREA,
            "converged after the VMs came back (seconds)",
            round(recovery, 1),
            "converged",
            True,
        )
        figures.count(AREA, "VMs seen at a revision never requested (VM/sshd kill)", len(wrong))
        assert op.alive() and op.starts == starts
        assert not wrong, wrong
        assert set(final.values()) == {r1.sha}, final
    finally:
        for vm in victims.values():
            if bed.fleet().pid_of(vm.name) is None:
                bed.start_vm(vm)


def victim_message(ns: str, app: str, name: str) -> str | None:
    """The victim's own status: this app's entry, or its Reachable condition, saying why."""
    obj = bed.get("vmt", ns, name)
    status = obj.get("status") or {}
    for entry in status.get("applications") or []:
        msg = str(entry.get("message") or "")
        if entry.get("name") == app and re.search(
            r"ConnectionLost|ConnectionRefused|Timeout|HostUnreachable|unreachable|closed", msg
        ):
            return f"applications[{app}]: {msg[:160]}"
    for c in status.get("conditions") or []:
        if c.get("type") == "Reachable" and c.get("status") == "False":
            return f"Reachable=False {c.get('reason')}: {str(c.get('message'))[:160]}"
    return None


# -- Git: down, errors, force-pushed back -----------------------------------------------


class FlakyGitHandler(_CGIHandler):
    server: FlakyGitServer

    def _serve(self) -> None:
        if self.server.failing:
            self.server.requests += 1
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super()._serve()


class FlakyGitServer(SmartHTTPServer):
    """git http-backend with Basic auth on a fixed port (a restarted server keeps its URL);
    `failing` answers 500 to every request."""

    def __init__(self, root: Path, username: str, password: str, port: int) -> None:
        ThreadingHTTPServer.__init__(self, ("127.0.0.1", port), FlakyGitHandler)
        self.root, self.username, self.password = root, username, password
        self.redirect_to: str | None = None
        self.requests = self.rejected = 0
        self.authorizations: list[str] = []
        self.failing = False
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)


def test_chaos_git_down_errors_and_force_push(
    shared_namespace: str, shared_operator: bed.Operator, chaos_vms: list[VM], app: ChaosApp
) -> None:
    ns, op = shared_namespace, shared_operator
    starts = op.starts
    vms = chaos_vms[:4]
    label = {"chaos": ns}
    port = bed.free_port()
    user, token = "deployer", "git-token-chaos"
    url = f"http://127.0.0.1:{port}/{app.repo.bare.name}"
    refresh = 5
    bed.apply(
        [
            bed.ssh_secret(ns, vms[0]),
            *(bed.target(ns, vm, label) for vm in vms),
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/basic-auth",
                "metadata": {"name": "git", "namespace": ns},
                "stringData": {"username": user, "password": token},
            },
        ]
    )
    server = FlakyGitServer(DEV / "git", user, token, port).__enter__()
    requested: set[str] = set()
    timings: dict[str, float] = {}
    try:
        r0 = app.commit(0, "a", idempotent=True)
        requested.add(r0.sha)
        spec = app.application(
            ns,
            label,
            strategy={"type": "Rolling", "rolling": {"maxUnavailable": 1, "maxFailures": 10}},
            refreshInterval=f"{refresh}s",
        )
        spec["spec"]["source"]["repoURL"] = url
        spec["spec"]["source"]["credentials"] = {"secretRef": {"name": "git"}}
        bed.apply(spec)
        wait_converged(ns, app, r0, vms, op)
        with RevisionSampler(app, vms) as sampler:
            # 1. The server goes away: GitFetchFailed within one refresh, VMs untouched.
            server.__exit__(None, None, None)
            t = time.monotonic()
            down = bed.eventually(
                lambda: ready_reason(ns, app.name), timeout=60, what="Ready=False while Git is down"
            )
            timings["down"] = time.monotonic() - t
            r1 = app.commit(1, "b", idempotent=True)  # pushed while the server is away
            requested.add(r1.sha)
            time.sleep(refresh + 2)
            assert {app.revision_on(vm) for vm in vms} == {r0.sha}
            # 2. Back, and the waiting commit rolls out.
            server = FlakyGitServer(DEV / "git", user, token, port).__enter__()
            t = time.monotonic()
            wait_converged(ns, app, r1, vms, op)
            timings["recovered"] = time.monotonic() - t
            # 3. The server answers 500 to everything.
            server.failing = True
            t = time.monotonic()
            bed.kubectl(
                "-n", ns, "annotate", "--overwrite", "vmapp", app.name, "vmgitops.io/refresh=now"
            )
            errors = bed.eventually(
                lambda: ready_reason(ns, app.name),
                timeout=60,
                what="Ready=False while Git answers 500",
            )
            timings["errors"] = time.monotonic() - t
            assert {app.revision_on(vm) for vm in vms} == {r1.sha}
            server.failing = False
            wait_converged(ns, app, r1, vms, op)
            # 4. A new commit starts rolling out, then main is force-pushed back to r0.
            r2 = app.commit(2, "a", slow=2, idempotent=True)
            requested.add(r2.sha)
            bed.eventually(
                lambda: any(app.revision_on(vm) == r2.sha for vm in vms),
                timeout=120,
                interval=0.3,
                what="the r2 rollout to start",
            )
            app.force_push(r0)
            t = time.monotonic()
            wait_converged(ns, app, r0, vms, op)
            timings["force-push"] = time.monotonic() - t
        wrong = sampler.seen - requested
        final = {vm.name: app.revision_on(vm) for vm in vms}
        print(f"\nGit down: {down}\nGit 500: {errors}\ntimings: {timings}")
        cycle = refresh + 15
        figures.count(AREA, "operator restarts (Git down, 500s, force-push)", op.starts - starts)
        figures.record(
            AREA,
            "seconds to Ready=False with a reason: Git down / 500",
            f"{timings['down']:.0f} / {timings['errors']:.0f}",
            f"<= {cycle} (one cycle)",
            max(timings["down"], timings["errors"]) <= cycle,
        )
        figures.record(
            AREA,
            "Git fault reasons",
            f"{down[0]} / {errors[0]}",
            "specific",
            down[0] == "GitFetchFailed" and errors[0] == "GitFetchFailed",
        )
        figures.record(
            AREA,
            "converged after Git recovered / after force-push (s)",
            f"{timings['recovered']:.0f} / {timings['force-push']:.0f}",
            "converged",
            True,
        )
        figures.count(AREA, "VMs seen at a revision never requested (Git faults)", len(wrong))
        assert op.alive() and op.starts == starts
        assert down[0] == errors[0] == "GitFetchFailed", (down, errors)
        assert "token" not in down[1] + errors[1]
        assert not wrong
        assert set(final.values()) == {r0.sha}, final
    finally:
        server.__exit__(None, None, None)


# -- the API server and etcd restarted mid-rollout --------------------------------------


class PrivateControlPlane:
    """kube-apiserver and etcd of this test alone (hack/controlplane/up.sh, own dir/ports)."""

    def __init__(self) -> None:
        base = int(os.environ.get("APISERVER_PORT", "16443"))
        self.dev = DEV / "chaos-controlplane"
        self.env = {
            **os.environ,
            "VMGITOPS_DEV": str(self.dev),
            "APISERVER_PORT": str(base + 200),
            "ETCD_PORT": str(int(os.environ.get("ETCD_PORT", "12379")) + 200),
        }
        self.kubeconfig = self.dev / "kubeconfig"

    def up(self) -> float:
        t = time.monotonic()
        subprocess.run(
            ["nice", "-n", "5", "bash", str(ROOT / "hack/controlplane/up.sh")],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        return time.monotonic() - t

    def kill(self) -> None:
        """SIGKILL both, as a node failure would; etcd's data stays where it is."""
        for name in ("kube-apiserver", "etcd"):
            pid_file = self.dev / "run" / f"{name}.pid"
            if pid_file.exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid_file.read_text()), 9)

    def down(self) -> None:
        subprocess.run(
            ["bash", str(ROOT / "hack/controlplane/down.sh")],
            env=self.env,
            check=False,
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(self.dev, ignore_errors=True)


@pytest.mark.skipif(
    not bed.FULL, reason="make chaos only: a second control plane costs a minute of CPU"
)
@pytest.mark.timeout(1200)
def test_chaos_api_server_and_etcd_restarted_mid_rollout(
    chaos_vms: list[VM], app: ChaosApp
) -> None:
    cp = PrivateControlPlane()
    vms = chaos_vms[:5]
    cp.up()
    kc = cp.kubeconfig
    bed.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"), kubeconfig=kc)
    bed.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        str(ROOT / "crds"),
        kubeconfig=kc,
    )
    ns = bed.create_namespace(kubeconfig=kc)
    label = {"chaos": ns}
    op = bed.Operator([ns], label="chaos-faults-api", kubeconfig=kc)
    requested: set[str] = set()
    try:
        bed.apply(
            [bed.ssh_secret(ns, vms[0]), *(bed.target(ns, vm, label) for vm in vms)], kubeconfig=kc
        )
        r0 = app.commit(0, "a", idempotent=True)
        requested.add(r0.sha)
        bed.apply(
            app.application(
                ns,
                label,
                strategy={"type": "Rolling", "rolling": {"maxUnavailable": 1, "maxFailures": 10}},
            ),
            kubeconfig=kc,
        )
        op.start()
        status = lambda: bed.get("vmapp", ns, app.name, kubeconfig=kc).get("status") or {}  # noqa: E731
        bed.eventually(
            lambda: converged(status(), r0, len(vms)),
            timeout=240,
            what="convergence at r0 on the private control plane",
        )
        with RevisionSampler(app, vms) as sampler:
            r1 = app.commit(1, "b", slow=2, idempotent=True)
            requested.add(r1.sha)
            bed.eventually(
                lambda: any(app.revision_on(vm) == r1.sha for vm in vms),
                timeout=120,
                interval=0.3,
                what="the r1 rollout to start",
            )
            cp.kill()
            time.sleep(8)
            alive_while_down = op.alive()
            restart = cp.up()
            t = time.monotonic()
            bed.eventually(
                lambda: op.alive() and converged(status(), r1, len(vms)),
                timeout=300,
                what="convergence at r1 after the restart",
            )
            recovery = time.monotonic() - t
        wrong = sampler.seen - requested
        print(f"\ncontrol plane back in {restart:.1f}s, converged {recovery:.1f}s later")
        figures.count(
            AREA,
            "operator restarts (API server and etcd SIGKILLed)",
            op.starts - 1 + int(not alive_while_down),
        )
        figures.record(
            AREA,
            "converged after the API server and etcd came back (s)",
            round(recovery, 1),
            "converged",
            True,
        )
        figures.count(AREA, "VMs seen at a revision never requested (API restart)", len(wrong))
        assert op.alive() and alive_while_down and op.starts == 1
        assert not wrong
        tb = op.tracebacks()
        figures.record(
            AREA, "operator tracebacks while the API was away", len(tb), "informative", True
        )
    finally:
        op.stop()
        cp.down()
        print(f"\noperator log: {op.log_path}")
