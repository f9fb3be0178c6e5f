"""Bad input to the API: malformed VirtualMachineTargets and VMApplications generated with
hypothesis from the CRD schemas, sent to the real API server. Each is refused there
(schema, CEL) or accepted and then reported by the operator in its status with a specific
reason; the operator (a process of this test's own) never exits, logs no traceback, and
keeps reconciling a good target throughout.

Addresses and repository URLs that the schema accepts are replaced by loopback ones (an
unknown host name would cost a DNS query off this machine); the rest of each object is as
hypothesis made it. Promotion objects are left for when the Promotion controller lands.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from apprepo import AppRepo
from chaos import bed, figures
from security.schemagen import malformed, valid
from testbed import KUBECONFIG, ROOT, VM

pytestmark = pytest.mark.e2e

AREA = "3 bad input"
GROUP, VERSION = "vmgitops.io", "v1alpha1"
KINDS = {
    "VirtualMachineTarget": ("virtualmachinetargets", "vmgitops.io_virtualmachinetargets.yaml"),
    "VMApplication": ("vmapplications", "vmgitops.io_vmapplications.yaml"),
}
REPO_URL = re.compile(r"^((https?|git|ssh)://\S+|[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:\S+)$")
SAFE_URLS = [
    "git://127.0.0.1:1/none.git",
    "git://127.0.0.1:9418/does-not-exist.git",
    "http://127.0.0.1:1/x.git",
    "https://localhost:1/x.git",
    "ssh://git@127.0.0.1:1/x.git",
    "git@127.0.0.1:x.git",
    "git://169.254.169.254/x.git",
    "http://metadata.google.internal/x.git",
    "http://user:pw@127.0.0.1:1/x.git",
    "git://127.0.0.1:9418/x.git?q=1",
]


def spec_schema(crd_file: str) -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / crd_file).read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(schema["properties"]["spec"])


def loopback(value: str) -> bool:
    try:
        return ipaddress.ip_address(value).is_loopback
    except ValueError:
        return False


def sanitize(kind: str, spec: Any, i: int, real_repo: str) -> None:
    """Only loopback hosts: a schema-valid address or URL becomes a loopback one (every
    third URL a real repository, so that revisions and paths are tried for real)."""
    if not isinstance(spec, dict):
        return
    if kind == "VirtualMachineTarget":
        a = spec.get("address")
        if isinstance(a, str) and re.fullmatch(r"[^\s-]\S*", a) and not loopback(a):
            spec["address"] = f"127.0.99.{i % 250 + 1}"
    else:
        src = spec.get("source")
        if isinstance(src, dict):
            u = src.get("repoURL")
            if isinstance(u, str) and REPO_URL.fullmatch(u):
                src["repoURL"] = real_repo if i % 3 == 0 else SAFE_URLS[i % len(SAFE_URLS)]


def generate(kind: str, count: int) -> list[Any]:
    """Half broken by mutations, half schema-valid garbage (which the API server accepts,
    so that the operator has to make sense of it)."""
    schema = spec_schema(KINDS[kind][1])
    docs: list[Any] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(malformed(schema) | valid(schema, schema))
    def collect(doc: Any) -> None:
        docs.append(doc)

    collect()
    return docs


def reported(kind: str, obj: dict[str, Any]) -> str | None:
    """The reason the operator gave in status, or None while it has given none."""
    conds = (obj.get("status") or {}).get("conditions") or []
    want = ("Reachable", "Ready") if kind == "VirtualMachineTarget" else ("Ready",)
    for c in conds:
        if c.get("type") in want and c.get("reason") and c.get("status") in ("True", "False"):
            if c.get("status") == "False" and not c.get("message"):
                return None
            return str(c["reason"])
    return None


@pytest.mark.timeout(bed.scale(600, 2400))
def test_malformed_custom_resources(
    shared_namespace: str,
    shared_operator: bed.Operator,
    chaos_vms: list[VM],
    tmp_path: Path,
) -> None:
    ns, op = shared_namespace, shared_operator
    mark = op.mark()
    repo = AppRepo(tmp_path)
    (repo.work / "vmapp.yaml").write_text(
        f"files:\n  - {{path: /etc/vmgt-bad-{repo.id}/x.conf, content: ok}}\n"
    )
    repo.commit("a root app")
    good_vm = chaos_vms[-5]
    api = client.CustomObjectsApi(config.new_client_from_config(str(KUBECONFIG)))
    per_kind = bed.scale(100, 350)
    created: dict[str, tuple[str, dict[str, Any]]] = {}
    refusals: Counter[str] = Counter()
    odd: list[str] = []
    sent = 0
    try:
        bed.apply(
            [
                bed.ssh_secret(ns, good_vm),
                {
                    **bed.target(ns, good_vm, {"good": "yes"}),
                    "metadata": {"name": "good", "namespace": ns, "labels": {"good": "yes"}},
                },
            ]
        )
        assert wait_good(ns, "Connected")
        for kind, (plural, _) in KINDS.items():
            for i, spec in enumerate(generate(kind, per_kind)):
                sanitize(kind, spec, i, repo.url)
                name = f"{'t' if kind == 'VirtualMachineTarget' else 'a'}{i}"
                body = {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": kind,
                    "metadata": {"name": name, "namespace": ns},
                    "spec": spec,
                }
                sent += 1
                try:
                    api.create_namespaced_custom_object(
                        GROUP, VERSION, ns, plural, body, field_validation="Strict"
                    )
                    created[f"{plural}/{name}"] = (kind, spec)
                except ApiException as exc:
                    refusals[f"{exc.status} {exc.reason}"] += 1
                    if exc.status not in (400, 422):
                        odd.append(f"{kind} {spec!r:.300}: {exc.status} {exc.body!r:.300}")
        # Every accepted object gets a reason in its status, within a bound. (An app's
        # first status waits for the observation of every target it selects; hundreds
        # of apps selecting hundreds of targets at once take minutes, see the figure.)
        sent_at = time.monotonic()
        deadline = sent_at + bed.scale(180, 600)
        reasons: dict[str, str] = {}
        delays: list[float] = []
        while time.monotonic() < deadline and len(reasons) < len(created):
            assert op.alive(), f"the operator exited:\n{op.log(mark)[-4000:]}"
            for kind, (plural, _) in KINDS.items():
                items = api.list_namespaced_custom_object(GROUP, VERSION, ns, plural)["items"]
                for obj in items:
                    key = f"{plural}/{obj['metadata']['name']}"
                    if key in created and key not in reasons:
                        why = reported(kind, obj)
                        if why:
                            reasons[key] = why
                            delays.append(time.monotonic() - sent_at)
            time.sleep(2)
        silent = sorted(set(created) - set(reasons))
        # The good target is still reconciled: pause it, then resume it.
        bed.kubectl(
            "-n", ns, "patch", "vmt", "good", "--type=merge", "-p", '{"spec":{"paused":true}}'
        )
        paused = wait_good(ns, "Paused")
        bed.kubectl(
            "-n", ns, "patch", "vmt", "good", "--type=merge", "-p", '{"spec":{"paused":false}}'
        )
        resumed = wait_good(ns, "Connected")
        tracebacks = op.tracebacks(mark)
        alive = op.alive()
    finally:
        print(f"\noperator log: {op.log_path}")
        bed.vm_sh(good_vm, f"rm -rf /etc/vmgt-bad-{repo.id} /var/lib/vmgitops/{ns}_*", check=False)
        repo.remove()
    by_reason = Counter(reasons.values())
    print(
        f"\nsent {sent}: refused {dict(refusals)}; accepted {len(created)}, reported: "
        f"{dict(by_reason.most_common())}"
    )
    for s in silent[:10]:
        print(f"  no reason in status: {s}: {created[s][1]!r:.300}")
    for t in tracebacks[:3]:
        print(t)
    figures.at_least(AREA, "malformed custom resources sent (hypothesis, CRD schemas)", sent, 200)
    figures.record(
        AREA,
        "refused by the API server / accepted and reported with a reason",
        f"{sum(refusals.values())} / {len(reasons)} of {len(created)}",
        "all accepted reported",
        not silent,
    )
    delays.sort()
    if delays:
        figures.record(
            AREA,
            "seconds from the last object sent to its reason in status: median / max",
            f"{delays[len(delays) // 2]:.0f} / {delays[-1]:.0f}",
            f"<= {bed.scale(180, 600)}",
            not silent,
        )
    figures.count(AREA, "operator exits and tracebacks", int(not alive) + len(tracebacks))
    figures.record(
        AREA,
        "good target reconciled after the bad input",
        bool(paused and resumed),
        "True",
        bool(paused and resumed),
    )
    assert not odd, odd[:3]
    assert not silent, silent[:10]
    assert alive and not tracebacks, tracebacks[:1]
    assert paused and resumed


def wait_good(ns: str, reason: str) -> bool:
    def check() -> bool:
        obj = bed.get("vmt", ns, "good")
        conds = (obj.get("status") or {}).get("conditions") or []
        return any(c.get("reason") == reason for c in conds)

    bed.eventually(check, timeout=120, what=f"the good target's condition reason {reason}")
    return True
