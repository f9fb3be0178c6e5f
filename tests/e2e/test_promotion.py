"""Promotion end to end: the real operator moves a verified revision from staging to prod
on real systemd VMs, by patch or by a commit pushed to an authenticated Git server,
together with an Argo CD Application whose status the test writes as Argo CD would; with
approval, soak time, rollback, and every bad input refused with nothing changed."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from apprepo import AppRepo
from gitserver import SmartHTTPServer, git
from testbed import DEV, KUBECONFIG, ROOT, VM, apply, eventually, kubectl, ssh_secret

pytestmark = pytest.mark.e2e

ARGO_CRD = ROOT / "examples/argocd-crd/application-crd.yaml"
CLI = str(ROOT / ".venv/bin/vmgitops")
FINAL = ("Succeeded", "Failed", "RolledBack")
HTTP_PASSWORD = "promo-t3st/pa55+word"


# -- helpers ----------------------------------------------------------------------------


def get(namespace: str, kind: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(kubectl("-n", namespace, "get", kind, name, "-o", "json"))
    return obj


def patch(namespace: str, kind: str, name: str, body: dict[str, Any]) -> None:
    kubectl("-n", namespace, "patch", kind, name, "--type=merge", "-p", json.dumps(body))


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [CLI, *args, "--kubeconfig", str(KUBECONFIG)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"vmgitops {' '.join(args)} -> {result.returncode}: {result.stderr}")
    return result


def setup_targets(namespace: str, placement: dict[str, VM]) -> None:
    """One VirtualMachineTarget per environment, labelled env=<env>."""
    vm0 = next(iter(placement.values()))
    apply(ssh_secret(namespace, "fleet-ssh", vm0.private_key))
    for env, vm in placement.items():
        apply(
            {
                "apiVersion": "vmgitops.io/v1alpha1",
                "kind": "VirtualMachineTarget",
                "metadata": {
                    "name": f"{vm.name}-{env}",
                    "namespace": namespace,
                    "labels": {"env": env},
                },
                "spec": {
                    "address": vm.address,
                    "port": vm.port,
                    "user": vm.user,
                    "credentials": {"secretRef": {"name": "fleet-ssh"}},
                    "hostKey": {"publicKeys": [vm.host_public_key]},
                },
            }
        )


def vmapp(
    namespace: str,
    repo: AppRepo,
    env: str,
    revision: str,
    *,
    url: str | None = None,
    credentials: str | None = None,
    parameters: dict[str, str] | None = None,
) -> str:
    """The VMApplication <app>-<env> on the VMs labelled env=<env>; returns its name."""
    name = f"{repo.app}-{env}"
    source: dict[str, Any] = {
        "repoURL": url or repo.url,
        "targetRevision": revision,
        "path": f"apps/{repo.app}",
    }
    if credentials:
        source["credentials"] = {"secretRef": {"name": credentials}}
    apply(
        {
            "apiVersion": "vmgitops.io/v1alpha1",
            "kind": "VMApplication",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "source": source,
                "destination": {"selector": {"matchLabels": {"env": env}}},
                "parameters": {"greeting": f"hello from {env}", **(parameters or {})},
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                "strategy": {"rolling": {"maxUnavailable": 1, "maxFailures": 0}},
                "refreshInterval": "5s",
            },
        }
    )
    return name


def app_status(namespace: str, name: str) -> dict[str, Any]:
    return get(namespace, "vmapp", name).get("status") or {}


def wait_app(namespace: str, name: str, revision: str, timeout: float = 240) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get(namespace, "vmapp", name)
        s = obj.get("status") or {}
        ok = (
            (s.get("sync") or {}).get("status") == "Synced"
            and (s.get("sync") or {}).get("revision") == revision
            and (s.get("health") or {}).get("status") == "Healthy"
            and (s.get("operation") or {}).get("phase") in (None, "Succeeded")
            and s.get("observedGeneration") == obj["metadata"]["generation"]
        )
        return s if ok else None

    return eventually(
        check, timeout=timeout, interval=1, what=f"{name} Synced and Healthy at {revision[:12]}"
    )


def promotion(
    namespace: str,
    name: str,
    source: str,
    to: list[dict[str, Any]] | str,
    **spec: Any,
) -> dict[str, Any]:
    dests = [{"name": to}] if isinstance(to, str) else to
    return {
        "apiVersion": "vmgitops.io/v1alpha1",
        "kind": "Promotion",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"from": {"name": source}, "to": dests, **spec},
    }


def promo_status(namespace: str, name: str) -> dict[str, Any]:
    return get(namespace, "promotion", name).get("status") or {}


def wait_phase(
    namespace: str, name: str, phases: tuple[str, ...] = FINAL, timeout: float = 300
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        s = promo_status(namespace, name)
        return s if s.get("phase") in phases else None

    return eventually(check, timeout=timeout, interval=1, what=f"Promotion {name} in {phases}")


def vm_conf(vm: VM, app: str) -> str:
    return vm.ssh(f"cat /etc/{app}/{app}.conf").stdout.decode()


def target_revision(namespace: str, name: str) -> str:
    return str(get(namespace, "vmapp", name)["spec"]["source"]["targetRevision"])


def ready(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})


# -- Argo CD, played by the test ---------------------------------------------------------


class FakeArgo:
    """Plays Argo CD's controller for the Applications of one namespace: when an
    Application's spec.source.targetRevision differs from what its status was compared
    to, it reports OutOfSync/Progressing once, then Synced/Healthy at the commit that
    targetRevision names in the bare repository, with an operationState, as Argo CD
    writes them (no status subresource: a merge patch of the object)."""

    def __init__(self, namespace: str, bare: Path, *, healthy: bool = True) -> None:
        self.namespace, self.bare, self.healthy = namespace, bare, healthy
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.syncs: list[tuple[str, str]] = []

    def __enter__(self) -> FakeArgo:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def commit_of(self, revision: str) -> str:
        return git("--git-dir", str(self.bare), "rev-parse", f"{revision}^{{commit}}")

    def write(self, name: str, status: dict[str, Any]) -> None:
        kubectl(
            "-n",
            self.namespace,
            "patch",
            "applications.argoproj.io",
            name,
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )

    def reconcile(self, app: dict[str, Any]) -> None:
        name = app["metadata"]["name"]
        target = ((app.get("spec") or {}).get("source") or {}).get("targetRevision") or "HEAD"
        status = app.get("status") or {}
        compared = ((status.get("sync") or {}).get("comparedTo") or {}).get("source") or {}
        if (
            compared.get("targetRevision") == target
            and (status.get("health") or {}).get("status") != "Progressing"
        ):
            return
        commit = self.commit_of(target)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if compared.get("targetRevision") != target:
            self.write(
                name,
                {
                    "sync": {
                        "status": "OutOfSync",
                        "revision": commit,
                        "comparedTo": {"source": {"targetRevision": target}},
                    },
                    "health": {"status": "Progressing"},
                    "operationState": {"phase": "Running", "startedAt": now},
                },
            )
            return
        self.syncs.append((name, commit))
        self.write(
            name,
            {
                "sync": {
                    "status": "Synced",
                    "revision": commit,
                    "comparedTo": {"source": {"targetRevision": target}},
                },
                "health": {
                    "status": "Healthy" if self.healthy else "Degraded",
                    "lastTransitionTime": now,
                },
                "operationState": {
                    "phase": "Succeeded" if self.healthy else "Failed",
                    "message": "successfully synced" if self.healthy else "Deployment degraded",
                    "finishedAt": now,
                    "syncResult": {"revision": commit},
                },
                "reconciledAt": now,
            },
        )

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                items = json.loads(
                    kubectl("-n", self.namespace, "get", "applications.argoproj.io", "-o", "json")
                )["items"]
                for app in items:
                    self.reconcile(app)
            except Exception as exc:  # keep playing; the test's own waits report failures
                print(f"fake Argo CD: {exc}")


def argo_app(namespace: str, name: str, url: str, revision: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "project": "default",
            "source": {"repoURL": url, "targetRevision": revision, "path": "k8s"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "web"},
            "syncPolicy": {"automated": {"selfHeal": True}},
        },
    }


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def argo_crd(crds: None) -> None:
    """Argo CD's Application CRD (a minimal one) in the real API server. Shared by every
    session on this control plane, so it is applied idempotently and never deleted."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ARGO_CRD))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(ARGO_CRD))


@pytest.fixture
def repo(tmp_path: Path, fleet: list[VM]) -> Iterator[AppRepo]:
    r = AppRepo(tmp_path)
    yield r
    for vm in fleet[:4]:
        vm.ssh(r.cleanup_vm_command(), check=False)
    r.remove()


@pytest.fixture
def argo_cleanup(namespace: str) -> Iterator[None]:
    yield
    subprocess.run(
        ["kubectl", "-n", namespace, "delete", "applications.argoproj.io", "--all", "--wait=false"],
        env={"KUBECONFIG": str(KUBECONFIG), "PATH": "/usr/local/bin:/usr/bin:/bin"},
        capture_output=True,
        check=False,
        timeout=60,
    )


def two_envs(
    namespace: str, fleet: list[VM], repo: AppRepo, **app_kw: Any
) -> tuple[str, str, str, str]:
    """staging (tracking main) and prod (pinned to v1) at v1, then v2 committed and
    rolled out to staging: (staging, prod, v1, v2)."""
    setup_targets(namespace, {"staging": fleet[0], "prod": fleet[1]})
    repo.write_app(version="1")
    v1 = repo.commit("v1")
    staging = vmapp(namespace, repo, "staging", "main", **app_kw)
    prod = vmapp(namespace, repo, "prod", v1, **app_kw)
    wait_app(namespace, staging, v1)
    wait_app(namespace, prod, v1)
    repo.write_app(version="2")
    v2 = repo.commit("v2")
    wait_app(namespace, staging, v2)
    return staging, prod, v1, v2


# -- tests ------------------------------------------------------------------------------


def test_staging_to_prod_by_patch_with_the_cli(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    staging, prod, v1, v2 = two_envs(namespace, fleet, repo)
    assert "version=1" in vm_conf(fleet[1], repo.app)

    out = cli("promote", "--from", staging, "--to", prod, "--wait", "-n", namespace)
    assert "Succeeded (Promoted)" in out.stdout, out.stdout
    name = out.stdout.split()[0].split("/")[1]

    status = promo_status(namespace, name)
    assert status["revision"] == v2  # the revision staging was Synced and Healthy at
    assert status["previousRevisions"] == {prod: v1}
    assert status["startedAt"] and status["finishedAt"] and status["verifyingSince"]
    assert ready(status)["status"] == "True" and ready(status)["reason"] == "Promoted"
    assert target_revision(namespace, prod) == v2
    wait_app(namespace, prod, v2, timeout=30)
    conf = vm_conf(fleet[1], repo.app)
    assert "version=2" in conf and f"revision={v2}" in conf and "hello from prod" in conf
    events = kubectl(
        "-n", namespace, "get", "events", "--field-selector", f"involvedObject.name={name}"
    )
    assert "Succeeded" in events


def test_waits_for_approval_and_resumes_when_approved(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    staging, prod, v1, v2 = two_envs(namespace, fleet, repo)
    apply(promotion(namespace, "needs-ok", staging, prod, approval={"required": True}))
    status = wait_phase(namespace, "needs-ok", ("WaitingForApproval",), timeout=60)
    assert status["revision"] == v2
    assert "vmgitops approve needs-ok" in status["message"]
    listed = json.loads(cli("status", "-n", namespace, "-o", "json").stdout)
    assert [p["name"] for p in listed["pendingApprovals"]] == ["needs-ok"]
    assert listed["pendingApprovals"][0]["approve"] == f"vmgitops approve needs-ok -n {namespace}"
    time.sleep(6)  # the operator never approves by itself
    assert promo_status(namespace, "needs-ok")["phase"] == "WaitingForApproval"
    assert target_revision(namespace, prod) == v1

    out = cli("approve", "needs-ok", "--by", "alice", "-n", namespace)
    assert "approved by alice" in out.stdout
    status = wait_phase(namespace, "needs-ok")
    assert status["phase"] == "Succeeded", status
    assert status["approvedBy"] == "alice" and status["approvedAt"]
    assert status["approvedAt"] >= status["startedAt"]
    wait_app(namespace, prod, v2, timeout=30)
    again = cli("approve", "needs-ok", "-n", namespace, check=False)
    assert again.returncode == 1 and "already Succeeded" in again.stderr


def test_soak_time_is_respected(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    staging, prod, v1, v2 = two_envs(namespace, fleet, repo)
    healthy_since = ready(app_status(namespace, staging))["lastTransitionTime"]
    apply(promotion(namespace, "soak", staging, prod, verification={"soakTime": "25s"}))
    status = wait_phase(namespace, "soak", ("Pending",), timeout=30)
    eventually(
        lambda: promo_status(namespace, "soak").get("reason") == "Soaking",
        timeout=30,
        what="reason Soaking",
    )
    assert target_revision(namespace, prod) == v1
    status = wait_phase(namespace, "soak", timeout=240)
    assert status["phase"] == "Succeeded", status

    def ts(value: str) -> float:
        return time.mktime(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))

    # Nothing was written to prod before staging had been healthy at v2 for 25s.
    assert ts(status["verifyingSince"]) - ts(healthy_since) >= 25 - 1, (status, healthy_since)
    wait_app(namespace, prod, v2, timeout=30)


def test_verification_failure_rolls_back(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    setup_targets(namespace, {"staging": fleet[0], "prod": fleet[1]})
    repo.write_app(version="1")
    v1 = repo.commit("v1")
    staging = vmapp(namespace, repo, "staging", "main", parameters={"v2_healthy": "yes"})
    prod = vmapp(namespace, repo, "prod", v1, parameters={"v2_healthy": "no"})
    wait_app(namespace, staging, v1)
    wait_app(namespace, prod, v1)
    # v2 is healthy in staging and unhealthy in prod (its parameters say so).
    repo.write_app(version="2")
    manifest = repo.folder / "vmapp.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "      version=2", "      healthy={{ params.v2_healthy }}\n      version=2"
        )
    )
    v2 = repo.commit("v2, unhealthy with prod's parameters")
    wait_app(namespace, staging, v2)

    apply(promotion(namespace, "bad", staging, prod, verification={"timeout": "3m"}))
    status = wait_phase(namespace, "bad", timeout=300)
    assert status["phase"] == "RolledBack", status
    assert status["reason"] == "VerificationFailed"
    assert status["previousRevisions"] == {prod: v1}
    assert target_revision(namespace, prod) == v1
    wait_app(namespace, prod, v1, timeout=240)
    conf = vm_conf(fleet[1], repo.app)
    assert "version=1" in conf and "healthy=" not in conf


def test_vm_application_and_argo_application_together(
    namespace: str,
    operator: object,
    fleet: list[VM],
    repo: AppRepo,
    argo_crd: None,
    argo_cleanup: None,
) -> None:
    staging, prod, v1, v2 = two_envs(namespace, fleet, repo)
    with FakeArgo(namespace, repo.bare) as argo:
        apply(argo_app(namespace, "web-k8s", repo.url, v1))
        eventually(
            lambda: (
                (get(namespace, "applications.argoproj.io", "web-k8s").get("status") or {})
                .get("health", {})
                .get("status")
                == "Healthy"
            ),
            timeout=30,
            what="the Argo CD Application Healthy at v1",
        )
        apply(
            promotion(
                namespace,
                "both",
                staging,
                [{"name": prod}, {"kind": "Application", "name": "web-k8s"}],
            )
        )
        status = wait_phase(namespace, "both", timeout=300)
        assert status["phase"] == "Succeeded", status
        assert status["previousRevisions"] == {prod: v1, "web-k8s": v1}
        argo_obj = get(namespace, "applications.argoproj.io", "web-k8s")
        assert argo_obj["spec"]["source"]["targetRevision"] == v2
        assert argo_obj["status"]["sync"]["revision"] == v2
        assert ("web-k8s", v2) in argo.syncs
    wait_app(namespace, prod, v2, timeout=30)
    assert "version=2" in vm_conf(fleet[1], repo.app)


def test_git_commit_through_an_authenticated_push(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    """The config lives next to the app in a repository served by smart HTTP with Basic
    auth; both VMApplications read it with credentials. The promotion commits prod's new
    revision into envs/prod/app.yaml and pushes; the test plays Argo CD syncing that file
    into the cluster."""
    setup_targets(namespace, {"staging": fleet[0], "prod": fleet[1]})
    apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/basic-auth",
            "metadata": {"name": "git-push", "namespace": namespace},
            "stringData": {"username": "promoter", "password": HTTP_PASSWORD},
        }
    )
    with SmartHTTPServer(DEV / "git", "promoter", HTTP_PASSWORD) as server:
        url = f"{server.url}/{repo.name}.git"
        repo.write_app(version="1")
        v1 = repo.commit("v1")
        config_file = repo.work / "envs" / "prod" / "app.yaml"
        config_file.parent.mkdir(parents=True)
        prod_name = f"{repo.app}-prod"
        config_file.write_text(
            "# prod: promoted by vmgitops\n"
            "apiVersion: vmgitops.io/v1alpha1\n"
            "kind: VMApplication\n"
            "metadata:\n"
            f"  name: {prod_name}\n"
            "spec:\n"
            "  source:\n"
            f"    repoURL: {url}\n"
            f"    targetRevision: {v1}  # moved by promotions\n"
            f"    path: apps/{repo.app}\n"
        )
        repo.write_app(version="2")
        v2 = repo.commit("v2")
        staging = vmapp(namespace, repo, "staging", v2, url=url, credentials="git-push")
        prod = vmapp(namespace, repo, "prod", v1, url=url, credentials="git-push")
        wait_app(namespace, staging, v2)
        wait_app(namespace, prod, v1)

        apply(
            promotion(
                namespace,
                "by-git",
                staging,
                prod,
                method="GitCommit",
                gitCommit={
                    "repoURL": url,
                    "branch": "main",
                    "path": "envs",
                    "credentials": {"secretRef": {"name": "git-push"}},
                },
            )
        )
        status = wait_phase(namespace, "by-git", ("Verifying", *FINAL), timeout=120)
        assert status["phase"] == "Verifying", status
        head = git("--git-dir", str(repo.bare), "rev-parse", "main")
        assert status["commit"] == head
        message = git("--git-dir", str(repo.bare), "log", "-1", "--format=%an%n%B", "main")
        assert message.startswith("vmgitops\n") and f"Promotion: {namespace}/by-git" in message
        changed = git("--git-dir", str(repo.bare), "diff", "--stat", f"{v2}..main")
        assert "envs/prod/app.yaml" in changed and "1 file changed" in changed
        file_text = git("--git-dir", str(repo.bare), "show", "main:envs/prod/app.yaml")
        assert f"    targetRevision: {v2}  # moved by promotions" in file_text
        assert server.pushes == 1
        assert target_revision(namespace, prod) == v1  # GitCommit does not patch

        # Argo CD's part: sync the manifest from Git into the cluster.
        desired = yaml.safe_load(file_text)["spec"]["source"]["targetRevision"]
        patch(namespace, "vmapp", prod, {"spec": {"source": {"targetRevision": desired}}})
        status = wait_phase(namespace, "by-git", timeout=240)
        assert status["phase"] == "Succeeded", status
        wait_app(namespace, prod, v2, timeout=30)
        assert "version=2" in vm_conf(fleet[1], repo.app)
        # The password never reached the Promotion's status or Events.
        events = kubectl("-n", namespace, "get", "events", "-o", "json")
        assert HTTP_PASSWORD not in json.dumps(status) and HTTP_PASSWORD not in events


def test_bad_input_fails_with_a_reason_and_changes_nothing(
    namespace: str, operator: object, fleet: list[VM], repo: AppRepo
) -> None:
    staging, prod, v1, _v2 = two_envs(namespace, fleet, repo)
    before = get(namespace, "vmapp", prod)["metadata"]["generation"]

    # from == destination: the API server refuses it, and so does the CLI.
    refused = subprocess.run(
        ["kubectl", "-n", namespace, "create", "-f", "-"],
        input=json.dumps(promotion(namespace, "self", staging, staging)),
        text=True,
        capture_output=True,
        env={"KUBECONFIG": str(KUBECONFIG), "PATH": "/usr/local/bin:/usr/bin:/bin"},
        check=False,
    )
    assert refused.returncode != 0 and "must not include the from application" in refused.stderr
    out = cli("promote", "--from", staging, "--to", staging, "-n", namespace, check=False)
    assert out.returncode == 2 and "also a --to" in out.stderr

    # One at a time: two active Promotions of prod would conflict with each other.
    cases = [
        (
            "unknown-app",
            promotion(namespace, "unknown-app", staging, "no-such-app"),
            "ApplicationNotFound",
        ),
        (
            "unknown-rev",
            promotion(
                namespace,
                "unknown-rev",
                staging,
                prod,
                revision="0123456789abcdef" * 2 + "01234567",
            ),
            "RevisionNotFound",
        ),
        (
            "unknown-branch",
            promotion(namespace, "unknown-branch", staging, prod, revision="no-such-branch"),
            "RevisionNotFound",
        ),
    ]
    # A Promotion waiting for approval owns prod: a second one for prod conflicts.
    first = promotion(namespace, "first", staging, prod, approval={"required": True})
    cases.append(
        ("conflict", promotion(namespace, "conflict", staging, prod), "ConflictingPromotion")
    )
    for name, body, reason in cases:
        if name == "conflict":
            apply(first)
            wait_phase(namespace, "first", ("WaitingForApproval",), timeout=60)
        apply(body)
        status = wait_phase(namespace, name, timeout=60)
        assert (status["phase"], status["reason"]) == ("Failed", reason), (name, status)
        assert "nothing was changed" in status["message"], status
        assert ready(status)["status"] == "False"
    assert "Promotion first (WaitingForApproval)" in promo_status(namespace, "conflict")["message"]
    assert promo_status(namespace, "first")["phase"] == "WaitingForApproval"

    # Already at the revision: a no-op success once prod is free again.
    kubectl("-n", namespace, "delete", "promotion", "first")
    apply(promotion(namespace, "noop", staging, prod, revision=v1))
    status = wait_phase(namespace, "noop", timeout=60)
    assert (status["phase"], status["reason"]) == ("Succeeded", "AlreadyAtRevision"), status
    assert get(namespace, "vmapp", prod)["metadata"]["generation"] == before
    assert target_revision(namespace, prod) == v1
    assert "version=1" in vm_conf(fleet[1], repo.app)
