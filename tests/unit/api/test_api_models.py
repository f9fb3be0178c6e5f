"""The models read the objects of api.md, fill in its defaults, and refuse what the
API server refuses."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from vmgitops.api import (
    ANNOTATION_APPROVED_BY,
    ANNOTATION_REFRESH,
    ANNOTATION_SYNC,
    API_VERSION,
    ApplicationKind,
    ApplicationRef,
    HostKey,
    HostKeyPolicy,
    LabelSelector,
    Promotion,
    PromotionPhase,
    PromotionPipeline,
    PromotionPipelineSpec,
    PromotionSpec,
    VirtualMachineTarget,
    VirtualMachineTargetSpec,
    VirtualMachineTargetStatus,
    VMApplication,
    VMApplicationSpec,
    VMApplicationStatus,
)

# The examples of api.md, with its placeholders filled in.
TARGET_EXAMPLE: dict[str, Any] = {
    "apiVersion": "vmgitops.io/v1alpha1",
    "kind": "VirtualMachineTarget",
    "metadata": {"name": "web-eu-1", "labels": {"env": "staging", "region": "eu"}},
    "spec": {
        "address": "127.0.3.1",
        "port": 22,
        "user": "root",
        "credentials": {"secretRef": {"name": "fleet-ssh"}},
        "hostKey": {"policy": "Pinned", "publicKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 c"]},
        "become": {"method": "sudo", "user": "root"},
        "bastion": {"targetRef": {"name": "jump-eu"}},
        "paused": False,
    },
    "status": {
        "conditions": [
            {
                "type": "Reachable",
                "status": "False",
                "reason": "HostKeyMismatch",
                "message": "...",
                "lastTransitionTime": "2025-05-01T12:00:00Z",
            }
        ],
        "hostKeyFingerprint": "SHA256:abc",
        "facts": {
            "hostname": "web-eu-1",
            "os": {"id": "debian", "versionId": "12", "prettyName": "Debian GNU/Linux 12"},
            "kernel": "6.1.0",
            "arch": "x86_64",
            "initSystem": "systemd",
            "packageManager": "apt",
        },
        "lastProbeTime": "2025-05-01T12:00:00Z",
        "applications": [
            {
                "name": "web-staging",
                "revision": "a" * 40,
                "sync": "Synced",
                "health": "Healthy",
                "lastSyncTime": "2025-05-01T12:00:00Z",
                "message": "",
            }
        ],
    },
}

APP_EXAMPLE: dict[str, Any] = {
    "apiVersion": "vmgitops.io/v1alpha1",
    "kind": "VMApplication",
    "metadata": {"name": "web-staging"},
    "spec": {
        "source": {
            "repoURL": "git://127.0.0.1:9418/shop.git",
            "targetRevision": "main",
            "path": "apps/web",
            "credentials": {"secretRef": {"name": "git-creds"}},
        },
        "destination": {"selector": {"matchLabels": {"env": "staging", "role": "web"}}},
        "parameters": {"greeting": "hello", "log_level": "debug"},
        "syncPolicy": {
            "automated": {"prune": True, "selfHeal": True},
            "retry": {"limit": 3, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}},
        },
        "strategy": {
            "type": "Rolling",
            "rolling": {"maxUnavailable": "25%", "maxFailures": 1, "pauseBetweenBatches": "0s"},
        },
        "managementPolicy": "Full",
        "refreshInterval": "3m",
        "revisionHistoryLimit": 10,
        "paused": False,
    },
    "status": {
        "sync": {"status": "Synced", "revision": "a" * 40},
        "health": {"status": "Healthy", "message": ""},
        "operation": {
            "phase": "Succeeded",
            "revision": "a" * 40,
            "startedAt": "2025-05-01T12:00:00Z",
            "finishedAt": "2025-05-01T12:01:00Z",
            "message": "",
            "batches": {"current": 2, "total": 2},
            "targets": {"succeeded": 4, "failed": 0, "pending": 0},
        },
        "summary": {
            "targets": 4,
            "synced": 4,
            "outOfSync": 0,
            "healthy": 4,
            "degraded": 0,
            "unreachable": 0,
        },
        "history": [
            {
                "id": 3,
                "revision": "a" * 40,
                "deployedAt": "2025-05-01T12:01:00Z",
                "phase": "Succeeded",
            }
        ],
        "conditions": [],
    },
}

PROMOTION_EXAMPLE: dict[str, Any] = {
    "apiVersion": "vmgitops.io/v1alpha1",
    "kind": "Promotion",
    "metadata": {"name": "web-to-prod-42"},
    "spec": {
        "from": {"name": "web-staging"},
        "to": [
            {"name": "web-prod"},
            {"kind": "Application", "apiVersion": "argoproj.io/v1alpha1", "name": "web-prod-k8s"},
        ],
        "revision": "",
        "approval": {"required": True},
        "verification": {"soakTime": "10m", "timeout": "30m"},
        "method": "Patch",
        "rollbackOnFailure": True,
    },
    "status": {
        "phase": "Succeeded",
        "revision": "a" * 40,
        "previousRevisions": {"web-prod": "b" * 40},
        "approvedBy": "alice",
        "startedAt": "2025-05-01T12:00:00Z",
        "finishedAt": "2025-05-01T12:30:00Z",
        "message": "",
        "conditions": [],
    },
}

PIPELINE_EXAMPLE: dict[str, Any] = {
    "apiVersion": "vmgitops.io/v1alpha1",
    "kind": "PromotionPipeline",
    "metadata": {"name": "web"},
    "spec": {
        "stages": [
            {"name": "web-staging"},
            {"name": "web-prod", "soakTime": "1h", "approval": {"required": True}},
            {"name": "web-prod-k8s", "kind": "Application", "auto": False},
        ],
        "method": "Patch",
        "rollbackOnFailure": True,
    },
    "status": {
        "stages": [
            {"name": "web-staging", "revision": "a" * 40, "phase": "Succeeded"},
            {
                "name": "web-prod",
                "revision": "b" * 40,
                "hold": {"reason": "WaitingForApproval", "since": "2025-05-01T12:00:00Z"},
            },
        ],
        "holds": 1,
        "conditions": [],
    },
}


@pytest.mark.parametrize(
    ("model", "example"),
    [
        pytest.param(VirtualMachineTarget, TARGET_EXAMPLE, id="target"),
        pytest.param(VMApplication, APP_EXAMPLE, id="application"),
        pytest.param(Promotion, PROMOTION_EXAMPLE, id="promotion"),
        pytest.param(PromotionPipeline, PIPELINE_EXAMPLE, id="pipeline"),
    ],
)
def test_api_md_examples_round_trip(model: type[BaseModel], example: dict[str, Any]) -> None:
    """What api.md shows is read, and written back the same (camelCase, same values)."""
    obj = model.model_validate(example)
    dumped = obj.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert _subset(example["spec"], dumped["spec"])
    assert _subset(example["status"], dumped["status"])
    assert model.model_validate(dumped) == obj


def _subset(expected: Any, actual: Any) -> bool:
    """Every key of `expected` is in `actual` with the same value (defaults may be added)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_subset(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


MIN_TARGET = {"address": "127.0.3.1", "user": "root"}
MIN_APP = {
    "source": {"repoURL": "git://127.0.0.1:9418/shop.git"},
    "destination": {"selector": {}},
}
MIN_PROMO = {"from": {"name": "a"}, "to": [{"name": "b"}]}
MIN_PIPE = {"stages": [{"name": "a"}, {"name": "b"}]}


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


@pytest.mark.parametrize(
    ("model", "data", "path", "expected"),
    [
        pytest.param(VirtualMachineTargetSpec, MIN_TARGET, "port", 22, id="ssh-port-22"),
        pytest.param(
            VirtualMachineTargetSpec, MIN_TARGET, "host_key.policy", "Pinned", id="pinned"
        ),
        pytest.param(VirtualMachineTargetSpec, MIN_TARGET, "host_key.public_keys", [], id="no-key"),
        pytest.param(VirtualMachineTargetSpec, MIN_TARGET, "become", None, id="no-become"),
        pytest.param(VirtualMachineTargetSpec, MIN_TARGET, "bastion", None, id="no-bastion"),
        pytest.param(VirtualMachineTargetSpec, MIN_TARGET, "credentials", None, id="no-creds"),
        pytest.param(VirtualMachineTargetSpec, MIN_TARGET, "paused", False, id="target-running"),
        pytest.param(
            VirtualMachineTargetSpec,
            {**MIN_TARGET, "become": {}},
            "become.user",
            "root",
            id="become-root-by-sudo",
        ),
        pytest.param(VMApplicationSpec, MIN_APP, "source.target_revision", "HEAD", id="head"),
        pytest.param(VMApplicationSpec, MIN_APP, "source.path", ".", id="repo-root"),
        pytest.param(VMApplicationSpec, MIN_APP, "strategy.type", "Rolling", id="rolling"),
        pytest.param(
            VMApplicationSpec, MIN_APP, "strategy.rolling.max_unavailable", "25%", id="quarter"
        ),
        pytest.param(
            VMApplicationSpec, MIN_APP, "strategy.rolling.max_failures", 1, id="one-failure"
        ),
        pytest.param(
            VMApplicationSpec,
            MIN_APP,
            "strategy.rolling.pause_between_batches",
            "0s",
            id="no-pause",
        ),
        pytest.param(VMApplicationSpec, MIN_APP, "management_policy", "Full", id="full"),
        pytest.param(VMApplicationSpec, MIN_APP, "refresh_interval", "3m", id="poll-3m"),
        pytest.param(VMApplicationSpec, MIN_APP, "revision_history_limit", 10, id="history-10"),
        pytest.param(VMApplicationSpec, MIN_APP, "sync_policy", None, id="manual-sync-only"),
        pytest.param(VMApplicationSpec, MIN_APP, "parameters", {}, id="no-parameters"),
        pytest.param(VMApplicationSpec, MIN_APP, "paused", False, id="app-running"),
        pytest.param(
            VMApplicationSpec,
            {**MIN_APP, "syncPolicy": {"retry": {}}},
            "sync_policy.retry.backoff.duration",
            "5s",
            id="retry-backoff-5s",
        ),
        pytest.param(
            VMApplicationSpec,
            {**MIN_APP, "syncPolicy": {"automated": {}}},
            "sync_policy.automated.prune",
            False,
            id="automated-does-not-prune-unless-asked",
        ),
        pytest.param(PromotionSpec, MIN_PROMO, "from_.kind", "VMApplication", id="from-vmapp"),
        pytest.param(PromotionSpec, MIN_PROMO, "to.0.kind", "VMApplication", id="to-vmapp"),
        pytest.param(PromotionSpec, MIN_PROMO, "revision", "", id="revision-from-source"),
        pytest.param(PromotionSpec, MIN_PROMO, "method", "Patch", id="patch"),
        pytest.param(PromotionSpec, MIN_PROMO, "approval.required", False, id="no-approval"),
        pytest.param(PromotionSpec, MIN_PROMO, "rollback_on_failure", True, id="rollback"),
        pytest.param(PromotionSpec, MIN_PROMO, "verification.soak_time", "0s", id="no-soak"),
        pytest.param(PromotionPipelineSpec, MIN_PIPE, "stages.1.auto", True, id="stage-auto"),
        pytest.param(PromotionPipelineSpec, MIN_PIPE, "stages.1.soak_time", "0s", id="stage-soak"),
        pytest.param(
            PromotionPipelineSpec, MIN_PIPE, "stages.1.approval.required", False, id="stage-gate"
        ),
        pytest.param(PromotionPipelineSpec, MIN_PIPE, "method", "Patch", id="pipeline-patch"),
        pytest.param(
            PromotionPipelineSpec, MIN_PIPE, "rollback_on_failure", True, id="pipeline-rollback"
        ),
    ],
)
def test_defaults(model: type[BaseModel], data: dict[str, Any], path: str, expected: Any) -> None:
    assert _get(model.model_validate(data), path) == expected


def test_fields_are_accepted_by_python_name_too() -> None:
    by_alias = VirtualMachineTargetSpec.model_validate(
        {**MIN_TARGET, "hostKey": {"policy": "TrustOnFirstUse"}}
    )
    by_name = VirtualMachineTargetSpec(
        address="127.0.3.1", user="root", host_key=HostKey(policy=HostKeyPolicy.TRUST_ON_FIRST_USE)
    )
    assert by_alias == by_name
    promotion = PromotionSpec(from_=ApplicationRef(name="a"), to=[ApplicationRef(name="b")])
    assert promotion.from_.name == "a"


def test_wire_names_are_camel_case_with_the_exceptions_of_api_md() -> None:
    spec = VMApplicationSpec.model_validate(MIN_APP).to_dict()
    assert spec["source"]["repoURL"] == "git://127.0.0.1:9418/shop.git"
    assert "targetRevision" in spec["source"]
    assert "revisionHistoryLimit" in spec
    assert "maxUnavailable" in spec["strategy"]["rolling"]
    assert "syncPolicy" not in spec  # None is left out, not sent as null
    assert PromotionSpec.model_validate(MIN_PROMO).to_dict()["from"] == {
        "kind": "VMApplication",
        "name": "a",
    }


def test_unknown_fields_are_ignored() -> None:
    """A newer CLI or CRD may add fields; an older operator must still read the object."""
    spec = VirtualMachineTargetSpec.model_validate({**MIN_TARGET, "futureField": 1})
    assert "futureField" not in spec.to_dict()


def test_status_defaults_and_timestamps() -> None:
    status = VMApplicationStatus()
    assert status.sync.status == "Unknown"
    assert status.health.status == "Unknown"
    assert status.operation is None
    target = VirtualMachineTargetStatus(
        last_probe_time=datetime(2025, 5, 1, 12, 0, 0, 999999, tzinfo=UTC)
    )
    assert target.to_dict()["lastProbeTime"] == "2025-05-01T12:00:00Z"


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = obj
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return obj


# The same garbage the CRD refuses at the API server (tests/integration/test_crd_schema.py).
@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        pytest.param(VirtualMachineTargetSpec, _with(MIN_TARGET, "port", 0), "port", id="port-0"),
        pytest.param(
            VirtualMachineTargetSpec, _with(MIN_TARGET, "port", 70000), "port", id="port-70000"
        ),
        pytest.param(
            VirtualMachineTargetSpec, _with(MIN_TARGET, "address", ""), "address", id="no-address"
        ),
        pytest.param(
            VirtualMachineTargetSpec,
            _with(MIN_TARGET, "address", "a b"),
            "address",
            id="address-with-space",
        ),
        pytest.param(
            VirtualMachineTargetSpec,
            _with(MIN_TARGET, "address", "-oProxyCommand=x"),
            "address",
            id="address-that-looks-like-an-option",
        ),
        pytest.param(
            VirtualMachineTargetSpec,
            _with(MIN_TARGET, "hostKey", {"policy": "TrustEveryone"}),
            "policy",
            id="unknown-host-key-policy",
        ),
        pytest.param(
            VirtualMachineTargetSpec,
            _with(MIN_TARGET, "hostKey", {"policy": "CertificateAuthority"}),
            "caPublicKeys",
            id="ca-policy-without-ca-keys",
        ),
        pytest.param(
            VirtualMachineTargetSpec,
            _with(MIN_TARGET, "hostKey", {"publicKeys": ["not a key\nat all"]}),
            "publicKeys",
            id="host-key-not-an-openssh-line",
        ),
        pytest.param(
            VirtualMachineTargetSpec,
            _with(MIN_TARGET, "become", {"method": "su"}),
            "method",
            id="unknown-become-method",
        ),
        pytest.param(
            VMApplicationSpec,
            _with(MIN_APP, "source.repoURL", ""),
            "repoURL",
            id="empty-repo-url",
        ),
        pytest.param(
            VMApplicationSpec,
            _with(MIN_APP, "source.repoURL", "not a url"),
            "repoURL",
            id="garbage-url",
        ),
        pytest.param(
            VMApplicationSpec, _with(MIN_APP, "source.path", "../x"), "path", id="path-escapes"
        ),
        pytest.param(
            VMApplicationSpec, _with(MIN_APP, "source.path", "a/../../x"), "path", id="inner-dotdot"
        ),
        pytest.param(
            VMApplicationSpec, _with(MIN_APP, "source.path", "/etc"), "path", id="absolute-path"
        ),
        pytest.param(
            VMApplicationSpec,
            _with(MIN_APP, "strategy", {"type": "Blue"}),
            "type",
            id="unknown-strategy",
        ),
        pytest.param(
            VMApplicationSpec,
            _with(MIN_APP, "strategy", {"rolling": {"maxUnavailable": "25"}}),
            "maxUnavailable",
            id="percent-without-sign",
        ),
        pytest.param(
            VMApplicationSpec,
            _with(MIN_APP, "managementPolicy", "Sometimes"),
            "managementPolicy",
            id="unknown-management-policy",
        ),
        pytest.param(
            VMApplicationSpec,
            _with(MIN_APP, "refreshInterval", "often"),
            "invalid duration 'often'",
            id="bad-duration",
        ),
        pytest.param(
            VMApplicationSpec, _with(MIN_APP, "parameters", {"a": 1}), "parameters", id="param-int"
        ),
        pytest.param(PromotionSpec, _with(MIN_PROMO, "to", []), "to", id="no-destination"),
        pytest.param(
            PromotionSpec,
            _with(MIN_PROMO, "method", "GitCommit"),
            "gitCommit is required",
            id="git-commit-without-where",
        ),
        pytest.param(
            PromotionSpec,
            _with(MIN_PROMO, "to", [{"name": "a"}]),
            "from",
            id="promote-to-itself",
        ),
        pytest.param(
            PromotionSpec,
            _with(MIN_PROMO, "to", [{"name": "b"}, {"name": "b"}]),
            "twice",
            id="same-destination-twice",
        ),
        pytest.param(
            PromotionSpec,
            _with(MIN_PROMO, "to", [{"name": "b", "kind": "Application"}, {"name": "b"}]),
            None,
            id="same-name-different-kind-is-fine",
        ),
        pytest.param(
            PromotionSpec,
            _with(MIN_PROMO, "to", [{"name": "b", "kind": "Deployment"}]),
            "kind",
            id="unknown-destination-kind",
        ),
        pytest.param(
            PromotionSpec,
            _with(MIN_PROMO, "to", [{"name": "b", "apiVersion": "argoproj.io/v1alpha1"}]),
            "apiVersion must be",
            id="api-version-of-another-kind",
        ),
        pytest.param(PromotionPipelineSpec, _with(MIN_PIPE, "stages", []), "stages", id="no-stage"),
        pytest.param(
            PromotionPipelineSpec,
            _with(MIN_PIPE, "stages", [{"name": "a"}, {"name": "a"}]),
            "unique",
            id="stage-twice",
        ),
        pytest.param(
            PromotionPipelineSpec,
            _with(MIN_PIPE, "method", "GitCommit"),
            "gitCommit is required",
            id="pipeline-git-commit-without-where",
        ),
    ],
)
def test_models_refuse_what_the_crds_refuse(
    model: type[BaseModel], data: dict[str, Any], message: str | None
) -> None:
    if message is None:
        model.model_validate(data)
        return
    with pytest.raises(ValidationError, match=message):
        model.model_validate(data)


@pytest.mark.parametrize(
    ("path", "valid"),
    [
        (".", True),
        ("apps/web", True),
        ("./apps/web/", True),
        (".hidden/x..y/...", True),
        ("..", False),
        ("a//b", False),
        ("", False),
    ],
    ids=lambda v: repr(v),
)
def test_source_path(path: str, valid: bool) -> None:
    data = _with(MIN_APP, "source.path", path)
    if valid:
        VMApplicationSpec.model_validate(data)
    else:
        with pytest.raises(ValidationError):
            VMApplicationSpec.model_validate(data)


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("git://127.0.0.1:9418/shop.git", True),
        ("https://example.com/org/shop.git", True),
        ("ssh://git@127.0.0.1:2222/shop.git", True),
        ("git@example.com:org/shop.git", True),
        ("example.com:org/shop.git", True),
        ("git@[::1]:shop.git", True),
        # The operator's policy decides on these (VMGITOPS_GIT_ALLOW_FILE), with a
        # RepoURLRefused that says why; the schema must not refuse them first.
        ("file:///srv/shop.git", True),
        ("/srv/shop.git", True),
        ("ftp://example.com/shop.git", True),
        ("git://host/with space", False),
        ("git://host/x\n", False),
        ("git://host/\x01", False),
        ("", False),
        ("shop", False),
        ("relative/shop.git", False),
        ("-oProxyCommand=touch:x", False),  # the whole URL would read as an option
        ("git@-oProxyCommand=touch:x", True),  # the operator refuses this host
        ("a@b@c:x", False),
    ],
    ids=lambda v: repr(v),
)
def test_repo_url(url: str, valid: bool) -> None:
    data = _with(MIN_APP, "source.repoURL", url)
    if valid:
        VMApplicationSpec.model_validate(data)
    else:
        with pytest.raises(ValidationError):
            VMApplicationSpec.model_validate(data)


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        pytest.param({}, {}, True, id="empty-selects-all"),
        pytest.param({"matchLabels": {"env": "staging"}}, {"env": "staging"}, True, id="equal"),
        pytest.param({"matchLabels": {"env": "staging"}}, {"env": "prod"}, False, id="other"),
        pytest.param({"matchLabels": {"env": "staging"}}, {}, False, id="label-missing"),
        pytest.param(
            {"matchLabels": {"env": "staging", "role": "web"}},
            {"env": "staging"},
            False,
            id="all-labels-must-match",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]},
            {"env": "b"},
            True,
            id="in",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]},
            {},
            True,
            id="not-in-matches-missing-label",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]},
            {"env": "a"},
            False,
            id="not-in",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "Exists"}]},
            {"env": ""},
            True,
            id="exists",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]},
            {"env": ""},
            False,
            id="does-not-exist",
        ),
    ],
)
def test_label_selector(selector: dict[str, Any], labels: dict[str, str], selected: bool) -> None:
    assert LabelSelector.model_validate(selector).matches(labels) is selected


@pytest.mark.parametrize(
    ("ref", "api_version"),
    [
        pytest.param({"name": "a"}, API_VERSION, id="vmapplication-by-default"),
        pytest.param({"name": "a", "kind": "Application"}, "argoproj.io/v1alpha1", id="argo"),
    ],
)
def test_application_ref_api_version_is_implied_by_kind(
    ref: dict[str, str], api_version: str
) -> None:
    parsed = ApplicationRef.model_validate(ref)
    assert parsed.resolved_api_version == api_version
    assert parsed.key == (parsed.kind.value, "a")
    assert ApplicationKind(parsed.kind)


def test_final_promotion_phases() -> None:
    final = {p for p in PromotionPhase if p.is_final}
    assert final == {PromotionPhase.SUCCEEDED, PromotionPhase.FAILED, PromotionPhase.ROLLED_BACK}


def test_annotation_names() -> None:
    assert ANNOTATION_REFRESH == "vmgitops.io/refresh"
    assert ANNOTATION_SYNC == "vmgitops.io/sync"
    assert ANNOTATION_APPROVED_BY == "vmgitops.io/approved-by"
