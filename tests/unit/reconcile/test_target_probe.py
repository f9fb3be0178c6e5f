"""Building a target's connection from its spec and in-memory Secrets: sudo passwords,
references, bastion hops. No network: only the config is built."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import asyncssh
import pytest

from vmgitops.reconcile.target_probe import (
    BastionUnreachable,
    connection_config,
    referenced_secrets,
    sudo_password,
)
from vmgitops.transport import CredentialsMissing, KeyCache, Timeouts

KEY = asyncssh.generate_private_key("ssh-ed25519")
HOST = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def ssh_secret(name: str) -> dict[str, Any]:
    return {
        "type": "kubernetes.io/ssh-auth",
        "data": {"ssh-privatekey": b64(KEY.export_private_key())},
        "metadata": {"uid": f"uid-{name}", "resourceVersion": "1"},
    }


def opaque(**data: bytes) -> dict[str, Any]:
    return {"type": "Opaque", "data": {k: b64(v) for k, v in data.items()}}


def spec(**extra: Any) -> dict[str, Any]:
    return {
        "address": "127.0.0.1",
        "user": "deploy",
        "credentials": {"secretRef": {"name": "ssh"}},
        "hostKey": {"policy": "Pinned", "publicKeys": [HOST]},
        **extra,
    }


def body(name: str, the_spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name}, "spec": the_spec, "status": {}}


def lookup(objects: Mapping[str, Mapping[str, Any]]) -> Any:
    return lambda ns, name: objects.get(name)


BECOME = {"method": "sudo", "user": "root"}


@pytest.mark.parametrize(
    ("the_spec", "secrets", "expected"),
    [
        pytest.param(spec(), {}, None, id="no-become-no-password"),
        pytest.param(spec(become=BECOME), {}, None, id="become-without-password-ref"),
        pytest.param(
            spec(become={**BECOME, "passwordSecretRef": {"name": "pw"}}),
            {"pw": opaque(password=b"s3cret")},
            b"s3cret",
            id="default-key-is-password",
        ),
        pytest.param(
            spec(become={**BECOME, "passwordSecretRef": {"name": "pw", "key": "sudo"}}),
            {"pw": opaque(sudo=b"other")},
            b"other",
            id="named-key",
        ),
        pytest.param(
            spec(become={**BECOME, "passwordSecretRef": {"name": "pw"}}),
            {"pw": opaque(password=b"from-a-file\n")},
            b"from-a-file",
            id="trailing-newline-of-a-file-dropped",
        ),
        pytest.param(
            spec(become={**BECOME, "passwordSecretRef": {"name": "pw"}}),
            {"pw": opaque(password=b"crlf\r\n")},
            b"crlf",
            id="trailing-crlf-dropped",
        ),
    ],
)
def test_sudo_password_is_read_from_its_secret(
    the_spec: dict[str, Any], secrets: dict[str, Any], expected: bytes | None
) -> None:
    assert sudo_password(the_spec, namespace="ns", secrets=lookup(secrets)) == expected


@pytest.mark.parametrize(
    ("secrets", "words"),
    [
        pytest.param({}, "does not exist", id="secret-missing"),
        pytest.param({"pw": opaque(other=b"x")}, "has no key 'password'", id="key-missing"),
        pytest.param({"pw": opaque(password=b"\n")}, "is empty", id="only-a-newline"),
    ],
)
def test_unusable_sudo_password_secret_is_credentials_missing(
    secrets: dict[str, Any], words: str
) -> None:
    the_spec = spec(become={**BECOME, "passwordSecretRef": {"name": "pw"}})
    with pytest.raises(CredentialsMissing) as caught:
        sudo_password(the_spec, namespace="ns", secrets=lookup(secrets))
    assert words in caught.value.message
    assert "pw" in caught.value.message


def test_password_with_a_newline_inside_is_refused_without_echoing_it() -> None:
    the_spec = spec(become={**BECOME, "passwordSecretRef": {"name": "pw"}})
    secrets = {"ssh": ssh_secret("ssh"), "pw": opaque(password=b"two\nlines")}
    with pytest.raises(CredentialsMissing) as caught:
        connection_config(
            body("vm", the_spec),
            secrets=lookup(secrets),
            targets=lookup({}),
            key_cache=KeyCache(),
            timeouts=Timeouts(),
        )
    assert "two" not in str(caught.value)


def test_password_reaches_the_become_config_and_not_its_repr() -> None:
    the_spec = spec(become={**BECOME, "passwordSecretRef": {"name": "pw"}})
    secrets = {"ssh": ssh_secret("ssh"), "pw": opaque(password=b"hunter2")}
    config = connection_config(
        body("vm", the_spec),
        secrets=lookup(secrets),
        targets=lookup({}),
        key_cache=KeyCache(),
        timeouts=Timeouts(),
    )
    assert config.become is not None and config.become.password == b"hunter2"
    assert "hunter2" not in repr(config)
    assert "hunter2" not in config.connection_id + config.config_id


@pytest.mark.parametrize(
    ("the_spec", "expected"),
    [
        pytest.param(spec(), ["ssh"], id="key-only"),
        pytest.param(
            spec(become={**BECOME, "passwordSecretRef": {"name": "pw"}}),
            ["pw", "ssh"],
            id="key-and-password",
        ),
        pytest.param(
            spec(become={**BECOME, "passwordSecretRef": {"name": "ssh", "key": "pw"}}),
            ["ssh"],
            id="one-secret-for-both",
        ),
        pytest.param({"address": "a", "user": "u"}, [], id="no-credentials"),
    ],
)
def test_referenced_secrets(the_spec: dict[str, Any], expected: list[str]) -> None:
    assert referenced_secrets(the_spec) == expected


def test_bastion_hop_is_built_without_its_own_sudo_password() -> None:
    # The bastion only carries the tunnel: a missing sudo password there is not our error.
    jump = spec(become={**BECOME, "passwordSecretRef": {"name": "absent"}})
    target = spec(bastion={"targetRef": {"name": "jump"}})
    config = connection_config(
        body("private", target),
        secrets=lookup({"ssh": ssh_secret("ssh")}),
        targets=lookup({"jump": body("jump", jump)}),
        key_cache=KeyCache(),
        timeouts=Timeouts(),
    )
    assert config.bastion is not None and config.bastion.target == "ns/jump"
    assert config.bastion.become is not None and config.bastion.become.password is None


def test_missing_bastion_is_bastion_unreachable() -> None:
    target = spec(bastion={"targetRef": {"name": "jump"}})
    with pytest.raises(BastionUnreachable) as caught:
        connection_config(
            body("private", target),
            secrets=lookup({"ssh": ssh_secret("ssh")}),
            targets=lookup({}),
            key_cache=KeyCache(),
            timeouts=Timeouts(),
        )
    assert caught.value.reason == "BastionUnreachable"
    assert "ns/jump" in caught.value.message


def test_garbage_private_key_is_credentials_missing_without_key_material() -> None:
    garbage = b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-key-at-all-AAAA\n"
    secrets = {"ssh": {"type": "kubernetes.io/ssh-auth", "data": {"ssh-privatekey": b64(garbage)}}}
    with pytest.raises(CredentialsMissing) as caught:
        connection_config(
            body("vm", spec()),
            secrets=lookup(secrets),
            targets=lookup({}),
            key_cache=KeyCache(),
            timeouts=Timeouts(),
        )
    assert "not-a-key" not in caught.value.message
    assert "BEGIN" not in caught.value.message
