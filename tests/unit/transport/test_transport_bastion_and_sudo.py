"""Bastion hops and sudo wrapping against real in-process SSH servers."""

from __future__ import annotations

import pytest
from transport_fakes import Keys, StartServer, closed_port, config_for

from vmgitops.transport import (
    Become,
    ConnectionPool,
    ConnectionRefused,
    CredentialsMissing,
    HostKeyMismatch,
    Pinned,
    SudoPasswordRejected,
    SudoPasswordRequired,
    fingerprint,
)

# -- bastion --------------------------------------------------------------------------


async def test_bastion_hop_reaches_target_through_a_tunnel(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    jump = await sshd(host_keys=[keys.host_other], allow_tunnels=True)
    target = await sshd()
    bastion = config_for(
        jump, keys, target="ns/jump", policy=Pinned((keys.host_other.convert_to_public(),))
    )
    config = config_for(target, keys, bastion=bastion)
    runner = await pool.connect(config)
    assert (await runner.run(["echo", "behind"])).stdout == b"behind\n"
    assert runner.host_key_fingerprint == fingerprint(keys.host)
    assert jump.log.tunnels == [("127.0.0.1", target.port)]
    assert (jump.log.connections, target.log.connections) == (1, 1)
    assert jump.log.commands == []
    # A second target behind the same bastion reuses the bastion's connection.
    other = await sshd()
    await pool.runner(config_for(other, keys, target="ns/vm2", bastion=bastion)).run(["true"])
    assert jump.log.connections == 1
    assert pool.open_connections == 3


async def test_bastion_host_key_mismatch_stops_before_either_login(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    jump = await sshd(host_keys=[keys.host_other], allow_tunnels=True)
    target = await sshd()
    bastion = config_for(jump, keys, target="ns/jump")  # pins keys.host: wrong for the jump
    with pytest.raises(HostKeyMismatch) as caught:
        await pool.connect(config_for(target, keys, bastion=bastion))
    assert caught.value.message.startswith("via bastion ns/jump: ")
    assert caught.value.presented_fingerprint == fingerprint(keys.host_other)
    assert jump.log.auth_attempts == 0
    assert target.log.connections == 0


async def test_target_host_key_is_checked_behind_the_bastion(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    jump = await sshd(allow_tunnels=True)
    target = await sshd(host_keys=[keys.host_other])
    bastion = config_for(jump, keys, target="ns/jump")
    with pytest.raises(HostKeyMismatch) as caught:
        await pool.connect(config_for(target, keys, bastion=bastion))
    assert caught.value.presented_fingerprint == fingerprint(keys.host_other)
    assert target.log.auth_attempts == 0
    assert jump.log.auth_attempts == 1  # the bastion itself was fine


async def test_bastion_that_cannot_reach_target_is_connection_refused(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    jump = await sshd(allow_tunnels=True)
    bastion = config_for(jump, keys, target="ns/jump")
    with pytest.raises(ConnectionRefused):
        await pool.connect(config_for(closed_port(), keys, bastion=bastion))


async def test_bastion_refusing_tunnels_is_an_error_not_a_hang(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    jump = await sshd(allow_tunnels=False)
    target = await sshd()
    with pytest.raises(ConnectionRefused):
        await pool.connect(config_for(target, keys, bastion=config_for(jump, keys, target="j/j")))
    assert target.log.connections == 0


def test_bastion_loops_are_refused(keys: Keys) -> None:
    a = config_for(1, keys, target="ns/a")
    b = config_for(2, keys, target="ns/b", bastion=a)
    with pytest.raises(ValueError, match="loop"):
        config_for(3, keys, target="ns/a", bastion=b)


# -- sudo -----------------------------------------------------------------------------

ROOT = Become(user="root")


async def test_become_without_password_wraps_in_sudo_n(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd()
    runner = pool.runner(config_for(server, keys, become=ROOT))
    result = await runner.run(["echo", "as root"], stdin=b"")
    assert result.stdout == b"as root\n"
    assert result.argv == ("echo", "as root")
    assert server.log.commands[-1].argv == ["sudo", "-n", "-u", "root", "--", "echo", "as root"]


async def test_sudo_wanting_a_password_we_lack_is_sudo_password_required(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd(sudo_password=b"s3cret")
    runner = pool.runner(config_for(server, keys, become=ROOT))
    with pytest.raises(SudoPasswordRequired) as caught:
        await runner.run(["true"])
    assert "root" in caught.value.message


async def test_sudo_password_travels_only_as_first_stdin_line(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd(sudo_password=b"s3cret")
    become = Become(user="www-data", password=b"s3cret")
    runner = pool.runner(config_for(server, keys, become=become))
    result = await runner.run(["cat"], stdin=b"payload\nline 2\n")
    assert result.stdout == b"payload\nline 2\n"  # sudo ate the password line
    probe, command = server.log.commands
    assert probe.argv == ["sudo", "-n", "-k", "-u", "www-data", "--", "true"]
    assert probe.stdin == b""
    assert command.argv == ["sudo", "-k", "-S", "-p", "", "-u", "www-data", "--", "cat"]
    assert command.stdin == b"s3cret\npayload\nline 2\n"
    assert all("s3cret" not in seen.command for seen in server.log.commands)
    assert "s3cret" not in repr(runner.config)
    # The probe is asked once per connection.
    await runner.run(["true"])
    assert len(server.log.commands) == 3


async def test_configured_password_is_not_sent_when_sudo_needs_none(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd(sudo_password=None)  # NOPASSWD
    runner = pool.runner(config_for(server, keys, become=Become(password=b"s3cret")))
    assert (await runner.run(["cat"], stdin=b"data")).stdout == b"data"
    assert server.log.commands[-1].argv == ["sudo", "-n", "-u", "root", "--", "cat"]
    assert all(b"s3cret" not in seen.stdin for seen in server.log.commands)


async def test_wrong_sudo_password_is_sudo_password_rejected(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd(sudo_password=b"right")
    runner = pool.runner(config_for(server, keys, become=Become(password=b"wrong")))
    with pytest.raises(SudoPasswordRejected) as caught:
        await runner.run(["true"])
    assert "wrong" not in caught.value.message
    assert "right" not in caught.value.message


def test_multiline_sudo_password_is_refused() -> None:
    with pytest.raises(CredentialsMissing, match="single line") as caught:
        Become(password=b"a\nb")
    assert "a\nb" not in caught.value.message
