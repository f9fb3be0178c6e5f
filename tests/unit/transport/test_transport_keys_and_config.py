"""Keys from Secrets, ConnectionConfig building and identities. No network."""

from __future__ import annotations

import base64
from typing import Any

import asyncssh
import pytest
from transport_fakes import Keys, config_for, public_line

from vmgitops.transport import (
    Become,
    CertificateAuthority,
    CredentialsMissing,
    HostKeyNotConfigured,
    KeyCache,
    Pinned,
    TrustOnFirstUse,
    build_connection_config,
    fingerprint,
    host_key_policy_from_spec,
)

PASSPHRASE = "correct horse battery"


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def secret(
    key_data: bytes | None,
    *,
    passphrase: bytes | None = None,
    type_: str = "kubernetes.io/ssh-auth",
    uid: str = "uid-1",
    rv: str = "1",
) -> dict[str, Any]:
    data: dict[str, str] = {}
    if key_data is not None:
        data["ssh-privatekey"] = b64(key_data)
    if passphrase is not None:
        data["passphrase"] = b64(passphrase)
    return {"type": type_, "data": data, "metadata": {"uid": uid, "resourceVersion": rv}}


@pytest.fixture(scope="module")
def private_pem(keys: Keys) -> bytes:
    return bytes(keys.client.export_private_key())


@pytest.fixture(scope="module")
def encrypted_pem(keys: Keys) -> bytes:
    return bytes(keys.client.export_private_key(passphrase=PASSPHRASE))


def load(cache: KeyCache, body: dict[str, Any] | None) -> asyncssh.SSHKey:
    return cache.load(body, namespace="ns", name="fleet-ssh")


def test_key_is_parsed_once_per_secret_version(keys: Keys, private_pem: bytes) -> None:
    cache = KeyCache()
    first = load(cache, secret(private_pem))
    assert fingerprint(first) == fingerprint(keys.client)
    assert load(cache, secret(private_pem)) is first
    assert cache.parses == 1
    assert load(cache, secret(private_pem, rv="2")) is not first
    assert cache.parses == 2


def test_secret_without_identity_is_parsed_every_time(private_pem: bytes) -> None:
    cache = KeyCache()
    body = secret(private_pem)
    del body["metadata"]
    load(cache, body)
    load(cache, body)
    assert cache.parses == 2 and len(cache) == 0


def test_cache_is_bounded(keys: Keys, private_pem: bytes) -> None:
    cache = KeyCache(max_entries=2)
    for rv in range(5):
        load(cache, secret(private_pem, rv=str(rv)))
    assert len(cache) == 2


def test_encrypted_key_with_passphrase(keys: Keys, encrypted_pem: bytes) -> None:
    key = load(KeyCache(), secret(encrypted_pem, passphrase=PASSPHRASE.encode() + b"\n"))
    assert fingerprint(key) == fingerprint(keys.client)


async def test_load_async_parses_off_the_loop_and_caches(keys: Keys, encrypted_pem: bytes) -> None:
    cache = KeyCache()
    body = secret(encrypted_pem, passphrase=PASSPHRASE.encode())
    key = await cache.load_async(body, namespace="ns", name="fleet-ssh")
    assert await cache.load_async(body, namespace="ns", name="fleet-ssh") is key
    assert cache.parses == 1


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("absent", "not found", id="secret-does-not-exist"),
        pytest.param("opaque", "type 'Opaque'", id="wrong-secret-type"),
        pytest.param("no-key", "no key 'ssh-privatekey'", id="key-missing"),
        pytest.param("not-base64", "not valid base64", id="data-not-base64"),
        pytest.param("garbage", "not a private key", id="garbage-key"),
        pytest.param("public", "not a private key", id="public-key-instead"),
        pytest.param("truncated", "not a private key", id="truncated-key"),
        pytest.param("encrypted", "has no key 'passphrase'", id="encrypted-without-passphrase"),
        pytest.param("bad-passphrase", "does not decrypt", id="wrong-passphrase"),
    ],
)
def test_unusable_credentials_are_credentials_missing_without_leaking(
    case: str, expected: str, keys: Keys, private_pem: bytes, encrypted_pem: bytes
) -> None:
    bodies: dict[str, dict[str, Any] | None] = {
        "absent": None,
        "opaque": secret(private_pem, type_="Opaque"),
        "no-key": secret(None),
        "not-base64": {"type": "kubernetes.io/ssh-auth", "data": {"ssh-privatekey": "%%%"}},
        "garbage": secret(b"not a key at all"),
        "public": secret(keys.client.export_public_key()),
        "truncated": secret(private_pem[: len(private_pem) // 2]),
        "encrypted": secret(encrypted_pem),
        "bad-passphrase": secret(encrypted_pem, passphrase=b"hunter2"),
    }
    with pytest.raises(CredentialsMissing) as caught:
        load(KeyCache(), bodies[case])
    message = caught.value.message
    assert expected in message
    assert "ns/fleet-ssh" in message
    for secret_text in ("PRIVATE KEY", "hunter2", PASSPHRASE, b64(private_pem)[:40]):
        assert secret_text not in message
        assert secret_text not in repr(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ or caught.value.__context__ is None


SPEC: dict[str, Any] = {
    "address": "127.0.3.1",
    "port": 2222,
    "user": "deploy",
    "credentials": {"secretRef": {"name": "fleet-ssh"}},
    "become": {"method": "sudo", "user": "root"},
}


def test_build_connection_config_from_spec(keys: Keys, private_pem: bytes) -> None:
    spec = {**SPEC, "hostKey": {"policy": "Pinned", "publicKeys": [public_line(keys.host)]}}
    config = build_connection_config(
        spec,
        namespace="shop",
        name="web-eu-1",
        secret=secret(private_pem),
        key_cache=KeyCache(),
        sudo_password=b"pw",
    )
    assert config.target == "shop/web-eu-1"
    assert config.where == "deploy@127.0.3.1:2222"
    assert fingerprint(config.key) == fingerprint(keys.client)
    assert isinstance(config.host_key_policy, Pinned)
    assert config.become == Become(user="root", password=b"pw")
    assert "pw" not in repr(config.become) and "PRIVATE" not in repr(config)


def test_defaults_port_user_and_policy(private_pem: bytes) -> None:
    spec = {"address": "vm.example", "credentials": {"secretRef": {"name": "s"}}}
    config = build_connection_config(
        spec, namespace="ns", name="vm", secret=secret(private_pem), key_cache=KeyCache()
    )
    assert (config.port, config.user, config.become) == (22, "root", None)
    with pytest.raises(HostKeyNotConfigured):
        config.host_key_policy.ensure_configured()  # Pinned by default, nothing pinned


def test_missing_secret_ref_is_credentials_missing() -> None:
    with pytest.raises(CredentialsMissing, match="secretRef"):
        build_connection_config(
            {"address": "a"}, namespace="ns", name="vm", secret=None, key_cache=KeyCache()
        )


@pytest.mark.parametrize(
    ("host_key", "recorded", "kind"),
    [
        pytest.param(None, None, Pinned, id="absent-means-pinned"),
        pytest.param({"policy": "TrustOnFirstUse"}, None, TrustOnFirstUse, id="tofu"),
        pytest.param({"policy": "CertificateAuthority"}, None, CertificateAuthority, id="ca"),
    ],
)
def test_policy_from_spec(
    host_key: dict[str, Any] | None, recorded: str | None, kind: type
) -> None:
    assert isinstance(host_key_policy_from_spec(host_key, recorded_fingerprint=recorded), kind)


@pytest.mark.parametrize(
    "host_key",
    [
        pytest.param({"policy": "Pinned", "publicKeys": ["ssh-ed25519 AAAAnot"]}, id="bad-key"),
        pytest.param({"policy": "Pinned", "publicKeys": ["@cert-authority * x"]}, id="marker"),
        pytest.param({"policy": "Whatever"}, id="unknown-policy"),
        pytest.param({"policy": "CertificateAuthority", "caPublicKeys": ["x"]}, id="bad-ca"),
    ],
)
def test_bad_host_key_spec_is_not_configured(host_key: dict[str, Any]) -> None:
    with pytest.raises(HostKeyNotConfigured):
        host_key_policy_from_spec(host_key)


def test_recorded_fingerprint_must_be_sha256() -> None:
    with pytest.raises(HostKeyNotConfigured, match="SHA256"):
        TrustOnFirstUse("MD5:aa:bb")


def test_connection_identity(keys: Keys) -> None:
    base = config_for(22, keys)
    same = config_for(22, keys)
    assert base.connection_id == same.connection_id
    changed = [
        config_for(23, keys),
        config_for(22, keys, user="other"),
        config_for(22, keys, key=keys.client_other),
        config_for(22, keys, policy=Pinned((keys.host_other.convert_to_public(),))),
        config_for(22, keys, bastion=config_for(22, keys, target="ns/jump")),
    ]
    assert len({config.connection_id for config in [base, *changed]}) == 6
    # sudo settings are per command: they never cost a new connection.
    assert config_for(22, keys, become=Become(password=b"x")).connection_id == base.connection_id
    # Recording a TOFU fingerprint changes the config, not the connection.
    tofu = config_for(22, keys, policy=TrustOnFirstUse())
    recorded = config_for(22, keys, policy=TrustOnFirstUse(fingerprint(keys.host)))
    assert tofu.connection_id == recorded.connection_id
    assert tofu.config_id != recorded.config_id
