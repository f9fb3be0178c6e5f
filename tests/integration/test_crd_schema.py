"""The real API server refuses obvious garbage through our CRDs' schemas."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import pytest

from testbed import KUBECONFIG

pytestmark = pytest.mark.integration

GOOD_TARGET: dict[str, Any] = {
    "apiVersion": "vmgitops.io/v1alpha1",
    "kind": "VirtualMachineTarget",
    "metadata": {"name": "t"},
    "spec": {
        "address": "127.0.10.1",
        "port": 22,
        "user": "root",
        "credentials": {"secretRef": {"name": "fleet-ssh"}},
        "hostKey": {"policy": "Pinned", "publicKeys": ["ssh-ed25519 AAAA"]},
    },
}
GOOD_APP: dict[str, Any] = {
    "apiVersion": "vmgitops.io/v1alpha1",
    "kind": "VMApplication",
    "metadata": {"name": "a"},
    "spec": {
        "source": {"repoURL": "git://127.0.0.1:9418/shop.git", "path": "apps/web"},
        "destination": {"selector": {"matchLabels": {"env": "staging"}}},
    },
}
GOOD_PROMO: dict[str, Any] = {
    "apiVersion": "vmgitops.io/v1alpha1",
    "kind": "Promotion",
    "metadata": {"name": "p"},
    "spec": {"from": {"name": "web-staging"}, "to": [{"name": "web-prod"}]},
}


def with_(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = obj
    for p in parents:
        node = node.setdefault(p, {})
    if value is DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return obj


DELETE = object()


def server_dry_run(namespace: str, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "-n", namespace, "create", "--dry-run=server", "-o", "name", "-f", "-"],
        input=json.dumps(obj),
        text=True,
        capture_output=True,
        check=False,
        env={"KUBECONFIG": str(KUBECONFIG), "PATH": "/usr/local/bin:/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    "obj", [GOOD_TARGET, GOOD_APP, GOOD_PROMO], ids=["target", "application", "promotion"]
)
def test_valid_objects_are_accepted(namespace: str, obj: dict[str, Any]) -> None:
    res = server_dry_run(namespace, obj)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize(
    "url",
    ["file:///srv/git/shop.git", "/srv/git/shop.git", "git@example.com:org/shop.git"],
)
def test_repo_url_policy_is_left_to_the_operator(namespace: str, url: str) -> None:
    # Whether file:// or a local path may be fetched is the operator's setting
    # (VMGITOPS_GIT_ALLOW_FILE, else RepoURLRefused with the reason): admission must not
    # refuse them first, or the setting could never take effect.
    res = server_dry_run(namespace, with_(GOOD_APP, "spec.source.repoURL", url))
    assert res.returncode == 0, res.stderr


BAD = [
    pytest.param(with_(GOOD_TARGET, "spec.port", 0), "spec.port", id="port-zero"),
    pytest.param(with_(GOOD_TARGET, "spec.port", 70000), "spec.port", id="port-too-large"),
    pytest.param(with_(GOOD_TARGET, "spec.port", "ssh"), "spec.port", id="port-not-a-number"),
    pytest.param(with_(GOOD_TARGET, "spec.address", ""), "spec.address", id="empty-address"),
    pytest.param(with_(GOOD_TARGET, "spec.address", DELETE), "spec.address", id="no-address"),
    pytest.param(
        with_(GOOD_TARGET, "spec.address", "a b"), "spec.address", id="address-with-space"
    ),
    pytest.param(
        with_(GOOD_TARGET, "spec.hostKey.policy", "TrustEveryone"),
        "spec.hostKey.policy",
        id="unknown-host-key-policy",
    ),
    pytest.param(
        with_(GOOD_TARGET, "spec.become", {"method": "su"}),
        "spec.become.method",
        id="unknown-become-method",
    ),
    pytest.param(
        with_(GOOD_TARGET, "spec.hostKey", {"policy": "CertificateAuthority"}),
        "caPublicKeys",
        id="ca-policy-without-ca-keys",
    ),
    pytest.param(
        with_(GOOD_APP, "spec.source.repoURL", ""), "spec.source.repoURL", id="empty-repo-url"
    ),
    pytest.param(
        with_(GOOD_APP, "spec.source.repoURL", "shop"), "spec.source.repoURL", id="not-a-url"
    ),
    pytest.param(
        with_(GOOD_APP, "spec.source.repoURL", "git://host/a b"),
        "spec.source.repoURL",
        id="url-with-space",
    ),
    pytest.param(
        with_(GOOD_APP, "spec.source.repoURL", "-oProxyCommand=touch:x"),
        "spec.source.repoURL",
        id="url-like-an-option",
    ),
    pytest.param(
        with_(GOOD_APP, "spec.strategy", {"type": "Blue"}),
        "spec.strategy.type",
        id="unknown-strategy",
    ),
    pytest.param(
        with_(GOOD_APP, "spec.managementPolicy", "Sometimes"),
        "spec.managementPolicy",
        id="unknown-management-policy",
    ),
    pytest.param(
        with_(GOOD_APP, "spec.refreshInterval", "often"), "spec.refreshInterval", id="bad-duration"
    ),
    pytest.param(with_(GOOD_PROMO, "spec.to", []), "spec.to", id="promotion-without-destination"),
]


@pytest.mark.parametrize(("obj", "field"), BAD)
def test_garbage_is_refused_with_the_field_named(
    namespace: str, obj: dict[str, Any], field: str
) -> None:
    res = server_dry_run(namespace, obj)
    assert res.returncode != 0, f"accepted: {json.dumps(obj)}"
    assert field in res.stderr, res.stderr
