"""Host key policies against real in-process SSH servers.

The property that matters most: a refused host key ends the handshake before any user
authentication, so the server records zero auth attempts.
"""

from __future__ import annotations

import asyncssh
import pytest
from transport_fakes import Keys, StartServer, closed_port, config_for

from vmgitops.transport import (
    CertificateAuthority,
    ConnectionPool,
    HostKeyMismatch,
    HostKeyNotConfigured,
    Pinned,
    TrustOnFirstUse,
    fingerprint,
)


def pub(key: asyncssh.SSHKey) -> asyncssh.SSHKey:
    return key.convert_to_public()


async def test_pinned_match_runs_a_command_with_argv_quoted(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd()
    runner = await pool.connect(config_for(server, keys))
    argv = ["printf", "%s|", "two words", "it's", "$HOME", "a;b", ""]
    result = await runner.run(argv)
    assert result.ok, result
    assert result.stdout == b"two words|it's|$HOME|a;b||"
    assert result.argv == tuple(argv)
    assert runner.host_key_fingerprint == fingerprint(keys.host)
    assert runner.learned_fingerprint is None


async def test_pinned_mismatch_sends_no_credentials_and_is_not_retried(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd(host_keys=[keys.host_other])
    config = config_for(server, keys)  # pins keys.host
    with pytest.raises(HostKeyMismatch) as caught:
        await pool.connect(config)
    assert server.log.auth_attempts == 0
    assert server.log.offered_keys == []
    assert caught.value.presented_fingerprint == fingerprint(keys.host_other)
    assert fingerprint(keys.host_other) in caught.value.message
    assert "credentials were not sent" in caught.value.message
    assert caught.value.reason == "HostKeyMismatch"
    assert not caught.value.retryable

    # The failure is replayed, not retried, even for a caller that just runs a command.
    with pytest.raises(HostKeyMismatch) as again:
        await pool.runner(config).run(["true"])
    assert again.value.presented_fingerprint == fingerprint(keys.host_other)
    assert server.log.connections == 1


async def test_pinned_key_type_is_offered_first_so_server_presents_it(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd(host_keys=[keys.host, keys.host_rsa])
    config = config_for(server, keys, policy=Pinned((pub(keys.host_rsa),)))
    runner = await pool.connect(config)
    assert runner.host_key_fingerprint == fingerprint(keys.host_rsa)
    assert (await runner.run(["true"])).ok


async def test_server_without_pinned_key_type_reports_the_key_it_has(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd(host_keys=[keys.host_rsa])
    with pytest.raises(HostKeyMismatch) as caught:
        await pool.connect(config_for(server, keys))  # pins an ed25519 key
    assert caught.value.presented_fingerprint == fingerprint(keys.host_rsa)
    assert server.log.auth_attempts == 0


async def test_empty_pinned_list_fails_before_connecting(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd()
    with pytest.raises(HostKeyNotConfigured) as caught:
        await pool.connect(config_for(server, keys, policy=Pinned(())))
    assert "publicKeys" in caught.value.message
    assert server.log.connections == 0


async def test_trust_on_first_use_learns_then_refuses_another_key(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    first = await sshd()
    runner = await pool.connect(config_for(first, keys, policy=TrustOnFirstUse()))
    assert runner.learned_fingerprint == fingerprint(keys.host)
    assert runner.host_key_fingerprint == fingerprint(keys.host)

    # The controller recorded it; the same VM now presents another key.
    impostor = await sshd(host_keys=[keys.host_other])
    recorded = TrustOnFirstUse(runner.learned_fingerprint)
    with pytest.raises(HostKeyMismatch) as caught:
        await pool.connect(config_for(impostor, keys, policy=recorded, target="ns/other"))
    assert caught.value.presented_fingerprint == fingerprint(keys.host_other)
    assert fingerprint(keys.host) in caught.value.message
    assert impostor.log.auth_attempts == 0


async def test_trust_on_first_use_with_recorded_match_connects(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd()
    policy = TrustOnFirstUse(fingerprint(keys.host))
    runner = await pool.connect(config_for(server, keys, policy=policy))
    assert runner.learned_fingerprint is None
    assert (await runner.run(["true"])).ok


async def test_trust_on_first_use_holds_learned_key_until_it_is_recorded(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    """Between learning and the controller's status write, a swap is still caught."""
    first = await sshd()
    config = config_for(first, keys, policy=TrustOnFirstUse())
    await pool.connect(config)
    port = first.port
    await first.stop()  # drops the connection too
    swapped = await sshd(host_keys=[keys.host_other], port=port)
    with pytest.raises(HostKeyMismatch):
        await pool.connect(config)
    assert swapped.log.auth_attempts == 0


@pytest.fixture
def ca_policy(keys: Keys) -> CertificateAuthority:
    return CertificateAuthority((pub(keys.ca),))


def host_cert(
    keys: Keys, signer: asyncssh.SSHKey | None = None, principal: str = "127.0.0.1"
) -> asyncssh.SSHCertificate:
    return (signer or keys.ca).generate_host_certificate(
        keys.host, "test-host", principals=[principal]
    )


async def test_certificate_authority_accepts_signed_host_certificate(
    sshd: StartServer, pool: ConnectionPool, keys: Keys, ca_policy: CertificateAuthority
) -> None:
    server = await sshd(host_certs=[host_cert(keys)])
    runner = await pool.connect(config_for(server, keys, policy=ca_policy))
    assert runner.host_key_fingerprint == fingerprint(keys.host)
    assert (await runner.run(["true"])).ok


async def test_certificate_authority_refuses_plain_key(
    sshd: StartServer, pool: ConnectionPool, keys: Keys, ca_policy: CertificateAuthority
) -> None:
    server = await sshd()
    with pytest.raises(HostKeyMismatch) as caught:
        await pool.connect(config_for(server, keys, policy=ca_policy))
    assert caught.value.presented_fingerprint == fingerprint(keys.host)
    assert "only host certificates" in caught.value.message
    assert server.log.auth_attempts == 0


async def test_certificate_authority_refuses_revoked_key(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd(host_certs=[host_cert(keys)])
    policy = CertificateAuthority((pub(keys.ca),), revoked_keys=(pub(keys.host),))
    with pytest.raises(HostKeyMismatch) as caught:
        await pool.connect(config_for(server, keys, policy=policy))
    assert "revoked" in caught.value.message
    assert server.log.auth_attempts == 0


async def test_certificate_authority_refuses_unknown_ca(
    sshd: StartServer, pool: ConnectionPool, keys: Keys, ca_policy: CertificateAuthority
) -> None:
    server = await sshd(host_certs=[host_cert(keys, signer=keys.ca_other)])
    with pytest.raises(HostKeyMismatch) as caught:
        await pool.connect(config_for(server, keys, policy=ca_policy))
    assert fingerprint(keys.ca_other) in caught.value.message
    assert server.log.auth_attempts == 0


async def test_certificate_authority_refuses_certificate_for_another_host(
    sshd: StartServer, pool: ConnectionPool, keys: Keys, ca_policy: CertificateAuthority
) -> None:
    server = await sshd(host_certs=[host_cert(keys, principal="db.example")])
    with pytest.raises(HostKeyMismatch):
        await pool.connect(config_for(server, keys, policy=ca_policy))
    assert server.log.auth_attempts == 0


async def test_empty_ca_list_fails_before_connecting(pool: ConnectionPool, keys: Keys) -> None:
    with pytest.raises(HostKeyNotConfigured):
        await pool.connect(config_for(closed_port(), keys, policy=CertificateAuthority(())))


async def test_stale_config_without_the_record_does_not_reopen_trust(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    """Learn, record, then a stale body (nothing recorded) meets an impostor: refused."""
    first = await sshd()
    unrecorded = config_for(first, keys, policy=TrustOnFirstUse())
    learned = (await pool.connect(unrecorded)).learned_fingerprint
    await pool.connect(config_for(first, keys, policy=TrustOnFirstUse(learned)))
    port = first.port
    await first.stop()
    impostor = await sshd(host_keys=[keys.host_other], port=port)
    with pytest.raises(HostKeyMismatch):
        await pool.connect(unrecorded)
    assert impostor.log.auth_attempts == 0
    # A user who cleared the record on purpose gets a fresh first use after reset().
    pool.reset(unrecorded.target)
    runner = await pool.connect(unrecorded)
    assert runner.learned_fingerprint == fingerprint(keys.host_other)
