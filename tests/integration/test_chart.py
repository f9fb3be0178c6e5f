"""The Helm chart against the real API server: lint, server-side dry run of what it
renders, the pod at the `restricted` Pod Security level, install and upgrade, and RBAC
proven with `kubectl auth can-i --as` the operator's ServiceAccount.

There are no nodes on the test bed, so no pod runs: the tests check the objects, and
what the API server itself decides (admission, validation, authorization).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import KUBECONFIG, ROOT, kubectl

pytestmark = pytest.mark.integration

CHART = ROOT / "charts" / "vmgitops"

#: Value sets the chart must render, lint and have accepted by the API server.
#: {NS1} and {NS2} are replaced by namespaces the test creates.
VALUE_SETS: dict[str, list[str]] = {
    "defaults: cluster-wide": [],
    "namespaced by watchNamespaces": ["--set", "watchNamespaces={{NS1},{NS2}}"],
    "two shards, every option on": [
        "--set",
        "sharding.shards[0].name=eu,sharding.shards[0].namespaces={{NS1}}",
        "--set",
        "sharding.shards[1].name=us,sharding.shards[1].namespaces={{NS2}}",
        "--set",
        "networkPolicy.enabled=true,grafanaDashboard.enabled=true",
        "--set",
        "metrics.serviceMonitor.enabled=true,networkPolicy.vms.cidrs={10.20.0.0/16}",
        "--set",
        "networkPolicy.apiServer.cidrs={10.0.0.1/32},operator.verbose=true",
    ],
    "pattern namespaces need cluster RBAC": ["--set", "watchNamespaces={team-*}"],
    "metrics off, no Argo CD, digest": [
        "--set",
        "metrics.enabled=false,rbac.argoCDApplications=false",
        "--set",
        "image.digest=sha256:" + "a" * 64,
    ],
}


def _helm_version() -> str:
    text = (ROOT / "hack/controlplane/build.sh").read_text()
    m = re.search(r'HELM_VERSION="\$\{HELM_VERSION:-(v[0-9.]+)\}"', text)
    assert m, "hack/controlplane/build.sh no longer names a default HELM_VERSION"
    return os.environ.get("HELM_VERSION", m.group(1))


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A function running the helm the test bed builds, with private helm state."""
    subprocess.run(["bash", str(ROOT / "hack/controlplane/build.sh"), "helm"], check=True)
    cache = Path(os.environ.get("VMGITOPS_CACHE", Path.home() / ".cache/vmgitops"))
    binary = cache / "bin" / f"helm-{_helm_version()}"
    home = tmp_path_factory.mktemp("helm")
    env = {
        **os.environ,
        "KUBECONFIG": str(KUBECONFIG),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [str(binary), *args], capture_output=True, text=True, env=env, timeout=300
        )
        if check and out.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{out.stderr}{out.stdout}")
        return out

    yield run


def sh(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG)}
    return subprocess.run(
        list(args), input=input, capture_output=True, text=True, env=env, timeout=120
    )


def extra_namespace(base: str) -> str:
    """Another namespace of this pytest session (same prefix as the fixture's)."""
    name = f"{base.rsplit('-', 1)[0]}-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    return name


def release_name() -> str:
    return f"vmg{uuid.uuid4().hex[:6]}"


def fill(args: list[str], ns1: str, ns2: str) -> list[str]:
    return [a.replace("{NS1}", ns1).replace("{NS2}", ns2) for a in args]


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="session")
def servicemonitor_crd(crds: None) -> None:
    """A minimal ServiceMonitor CRD (monitoring.coreos.com), as the Prometheus Operator's
    would be there, so that the chart's ServiceMonitor is checked by the API server too."""
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {
                "kind": "ServiceMonitor",
                "plural": "servicemonitors",
                "singular": "servicemonitor",
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps(crd))
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/servicemonitors.monitoring.coreos.com",
    )


@pytest.fixture(scope="session")
def argocd_crd(crds: None) -> None:
    """Argo CD's Application CRD (examples/argocd-crd, unless one is there already), so
    that can-i checks on applications.argoproj.io reach the RBAC authorizer."""
    name = "applications.argoproj.io"
    if sh("kubectl", "get", "crd", name).returncode != 0:
        crd = ROOT / "examples/argocd-crd/application-crd.yaml"
        out = sh("kubectl", "create", "-f", str(crd))
        assert out.returncode == 0 or "AlreadyExists" in out.stderr, out.stderr
    kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")


# -- files ------------------------------------------------------------------------------


def test_chart_crds_are_the_generated_crds() -> None:
    top = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert sorted(chart) == sorted(top), "charts/vmgitops/crds lists other files: run make crds"
    stale = [name for name in top if top[name] != chart[name]]
    assert not stale, f"charts/vmgitops/crds/{stale} differ from crds/: run make crds"


def test_dashboard_queries_only_metrics_the_operator_exports() -> None:
    from prometheus_client import CollectorRegistry

    from vmgitops.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    exported: set[str] = set()
    for family in registry.collect():
        exported.add(family.name)
        exported.update(s.name for s in family.samples)
    for suffix in ("_total", "_bucket", "_sum", "_count"):
        exported.update(f"{name}{suffix}" for name in list(exported))
    dash = json.loads((CHART / "dashboards/vmgitops.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"\b(vmgitops_[a-z_]+)", e)}
    assert used, "the dashboard queries no vmgitops metric"
    assert used <= exported, f"the dashboard queries metrics nobody exports: {used - exported}"
    families = {f.name for f in registry.collect() if f.name.startswith("vmgitops_")}
    shown = {f for f in families if any(re.search(rf"\b{f}(_[a-z]+)?\b", e) for e in exprs)}
    assert shown == families, (
        f"metrics without a panel: {sorted(families - shown)}; add one to "
        "charts/vmgitops/dashboards/vmgitops.json"
    )
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_values_schema_rejects_typos_and_bad_values(helm: Any) -> None:
    for args, message in [
        (["--set", "imgae.tag=x"], "additional properties 'imgae' not allowed"),
        (["--set", "rbac.scope=everything"], "value must be one of"),
        (["--set", "metrics.port=0"], "minimum"),
        (["--set", "sharding.shards[0].name=Bad_Name,sharding.shards[0].namespaces={a}"], "name"),
    ]:
        out = helm("template", "r", str(CHART), "--kube-version", "1.36.0", *args, check=False)
        assert out.returncode != 0 and message in out.stderr, (args, out.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "rbac.scope=namespaced"], "needs watchNamespaces"),
        (["--set", "rbac.scope=namespaced,watchNamespaces={team-*}"], "exact namespace names"),
        (
            [
                "--set",
                "watchNamespaces={a},sharding.shards[0].name=x,sharding.shards[0].namespaces={b}",
            ],
            "either watchNamespaces or sharding.shards",
        ),
        (
            [
                "--set",
                "sharding.shards[0].name=x,sharding.shards[0].namespaces={a}",
                "--set",
                "sharding.shards[1].name=y,sharding.shards[1].namespaces={a}",
            ],
            "namespace a is in two shards",
        ),
    ],
    ids=["namespaced without namespaces", "namespaced with a pattern", "both ways", "shared ns"],
)
def test_contradictory_values_fail_with_a_reason(helm: Any, args: list[str], message: str) -> None:
    out = helm("template", "r", str(CHART), "--kube-version", "1.36.0", *args, check=False)
    assert out.returncode != 0 and message in out.stderr, out.stderr


# -- against the API server ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_lint_and_server_side_dry_run(
    helm: Any, namespace: str, servicemonitor_crd: None, name: str
) -> None:
    ns1, ns2 = extra_namespace(namespace), extra_namespace(namespace)
    args = fill(VALUE_SETS[name], ns1, ns2)
    lint = helm("lint", "--strict", str(CHART), "--namespace", namespace, *args)
    assert "0 chart(s) failed" in lint.stdout and "[WARNING]" not in lint.stdout, lint.stdout
    rendered = helm(
        "template",
        release_name(),
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        "1.36.0",
        *args,
    ).stdout
    objects = docs(rendered)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "ServiceAccount"} <= kinds
    out = sh("kubectl", "apply", "--dry-run=server", "-f", "-", input=rendered)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("(server dry run)") == len(objects), out.stdout
    for dep in (o for o in objects if o["kind"] == "Deployment"):
        assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    for rule in (r for o in objects for r in o.get("rules") or []):
        for key in ("verbs", "resources", "apiGroups"):
            assert "*" not in rule.get(key, []), f"a wildcard in {key}: {rule}"


def test_pod_meets_the_restricted_pod_security_level(helm: Any, namespace: str) -> None:
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    rendered = helm(
        "template", "r", str(CHART), "--namespace", namespace, "--kube-version", "1.36.0"
    ).stdout
    dep = next(o for o in docs(rendered) if o["kind"] == "Deployment")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "vmgitops-restricted", "namespace": namespace},
        "spec": dep["spec"]["template"]["spec"],
    }
    out = sh("kubectl", "create", "--dry-run=server", "-f", "-", input=json.dumps(pod))
    assert out.returncode == 0, out.stderr
    # The control: the same pod with one privilege too many is refused, so admission is on.
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    out = sh("kubectl", "create", "--dry-run=server", "-f", "-", input=json.dumps(pod))
    assert out.returncode != 0 and "restricted" in out.stderr, out.stderr


def can_i(sa: str, verb: str, resource: str, *where: str) -> bool:
    out = sh("kubectl", "auth", "can-i", verb, resource, "--as", sa, *where)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode == 0


#: (verb, resource, extra arguments, namespace of the check): what the operator must be
#: able to do in a watched namespace ("W"), across all of them ("ALL"), or cluster-wide.
NEEDED = [
    ("watch", "virtualmachinetargets.vmgitops.io", "W"),
    ("list", "vmapplications.vmgitops.io", "W"),
    ("patch", "vmapplications.vmgitops.io", "W"),
    ("patch", "vmapplications.vmgitops.io --subresource=status", "W"),
    ("patch", "virtualmachinetargets.vmgitops.io --subresource=status", "W"),
    ("patch", "promotions.vmgitops.io --subresource=status", "W"),
    ("patch", "promotionpipelines.vmgitops.io --subresource=status", "W"),
    ("create", "promotions.vmgitops.io", "W"),
    ("delete", "promotions.vmgitops.io", "W"),
    ("watch", "secrets", "W"),
    ("get", "secrets", "W"),
    ("create", "events", "W"),
    ("create", "events.events.k8s.io", "W"),
    ("patch", "applications.argoproj.io", "W"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io", "CLUSTER"),
]
#: What it must never be able to do, anywhere.
NEVER = [
    ("*", "*", "W"),
    ("*", "*", "CLUSTER"),
    ("create", "secrets", "W"),
    ("update", "secrets", "W"),
    ("delete", "secrets", "W"),
    ("delete", "vmapplications.vmgitops.io", "W"),
    ("create", "vmapplications.vmgitops.io", "W"),
    ("delete", "promotionpipelines.vmgitops.io", "W"),
    ("update", "vmapplications.vmgitops.io", "W"),
    ("delete", "virtualmachinetargets.vmgitops.io", "W"),
    ("create", "pods", "W"),
    ("create", "pods --subresource=exec", "W"),
    ("list", "pods", "W"),
    ("create", "serviceaccounts --subresource=token", "W"),
    ("list", "nodes", "CLUSTER"),
    ("create", "clusterrolebindings", "CLUSTER"),
    ("escalate", "clusterroles", "CLUSTER"),
    ("bind", "clusterroles", "CLUSTER"),
    ("impersonate", "users", "CLUSTER"),
    ("update", "customresourcedefinitions.apiextensions.k8s.io", "CLUSTER"),
    ("delete", "namespaces", "CLUSTER"),
    ("list", "namespaces", "CLUSTER"),
]


def check(sa: str, verb: str, resource: str, scope: str, watched: str) -> bool:
    what, *extra = resource.split()
    where = ["-n", watched] if scope == "W" else ["--all-namespaces"] if scope == "ALL" else []
    return can_i(sa, verb, what, *extra, *where)


def test_install_upgrade_and_cluster_wide_rbac(helm: Any, namespace: str, argocd_crd: None) -> None:
    rel = release_name()
    try:
        helm("install", rel, str(CHART), "--namespace", namespace)
        dep = json.loads(kubectl("-n", namespace, "get", "deploy", f"{rel}-vmgitops", "-o", "json"))
        assert dep["spec"]["replicas"] == 1
        assert dep["spec"]["strategy"]["type"] == "Recreate"
        container = dep["spec"]["template"]["spec"]["containers"][0]
        assert "--liveness=http://0.0.0.0:8081/healthz" in container["args"]
        assert "--metrics-port=8080" in container["args"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["port"] == "health"
        svc = json.loads(
            kubectl("-n", namespace, "get", "svc", f"{rel}-vmgitops-metrics", "-o", "json")
        )
        assert svc["spec"]["ports"][0]["port"] == 8080
        kubectl("get", "clusterrole", f"{rel}-vmgitops-{namespace}")
        assert "vmgitops" in helm("status", rel, "--namespace", namespace).stdout

        sa = f"system:serviceaccount:{namespace}:{rel}-vmgitops"
        other = extra_namespace(namespace)
        missing = [n for n in NEEDED if not check(sa, *n, other)]
        assert not missing, f"the operator lacks: {missing}"
        # Cluster-wide scope: it reads its kinds and credential Secrets in every namespace.
        assert check(sa, "list", "secrets", "ALL", other)
        assert check(sa, "list", "vmapplications.vmgitops.io", "ALL", other)
        granted = [n for n in NEVER if check(sa, *n, other)]
        assert not granted, f"the operator may do more than it needs: {granted}"

        helm(
            "upgrade",
            rel,
            str(CHART),
            "--namespace",
            namespace,
            "--set",
            "operator.probeInterval=30,networkPolicy.enabled=true",
        )
        dep = json.loads(kubectl("-n", namespace, "get", "deploy", f"{rel}-vmgitops", "-o", "json"))
        env = {
            e["name"]: e.get("value")
            for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["VMGITOPS_PROBE_INTERVAL"] == "30"
        kubectl("-n", namespace, "get", "networkpolicy", f"{rel}-vmgitops")
        history = json.loads(helm("history", rel, "--namespace", namespace, "-o", "json").stdout)
        assert [h["revision"] for h in history] == [1, 2]
        assert history[-1]["status"] == "deployed"
    finally:
        helm("uninstall", rel, "--namespace", namespace, check=False)
    out = sh("kubectl", "get", "clusterrole", f"{rel}-vmgitops-{namespace}")
    assert out.returncode != 0, "helm uninstall left the ClusterRole behind"


def test_namespaced_rbac_reaches_only_the_watched_namespaces(
    helm: Any, namespace: str, argocd_crd: None
) -> None:
    rel = release_name()
    watched, unwatched = extra_namespace(namespace), extra_namespace(namespace)
    try:
        helm(
            "install",
            rel,
            str(CHART),
            "--namespace",
            namespace,
            "--set",
            f"watchNamespaces={{{watched}}}",
        )
        dep = json.loads(kubectl("-n", namespace, "get", "deploy", f"{rel}-vmgitops", "-o", "json"))
        assert f"--namespace={watched}" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
        kubectl("-n", watched, "get", "role,rolebinding", f"{rel}-vmgitops")
        out = sh("kubectl", "get", "clusterrole", f"{rel}-vmgitops-{namespace}")
        assert out.returncode != 0, "namespaced scope must not create the cluster-wide role"

        sa = f"system:serviceaccount:{namespace}:{rel}-vmgitops"
        missing = [n for n in NEEDED if not check(sa, *n, watched)]
        assert not missing, f"the operator lacks in {watched}: {missing}"
        granted = [n for n in NEVER if check(sa, *n, watched)]
        assert not granted, f"the operator may do more than it needs: {granted}"
        # Nothing outside its namespaces: no Secret, no object, not even in its own.
        for ns in (unwatched, namespace):
            reach = [n for n in NEEDED if n[2] == "W" and check(sa, *n, ns)]
            assert not reach, f"the operator reaches into {ns}: {reach}"
        assert not check(sa, "list", "secrets", "ALL", watched)
        assert not check(sa, "list", "virtualmachinetargets.vmgitops.io", "ALL", watched)
    finally:
        helm("uninstall", rel, "--namespace", namespace, check=False)
    out = sh("kubectl", "-n", watched, "get", "role", f"{rel}-vmgitops")
    assert out.returncode != 0, "helm uninstall left the Role behind"
