"""ConnectionPool against real in-process SSH servers: reuse, limits, failures, backoff."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from transport_fakes import FAST, FreezableProxy, Keys, StartServer, closed_port, config_for

from vmgitops.transport import (
    AuthenticationFailed,
    ConnectionLost,
    ConnectionPool,
    ConnectionRefused,
    PoolLimits,
    PoolObserver,
    Timeout,
    Timeouts,
    TransportError,
    TrustOnFirstUse,
    fingerprint,
)


async def eventually(condition: object, seconds: float = 3.0) -> None:
    """Wait (bounded) until `condition()` is true."""
    assert callable(condition)
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_wrong_client_key_is_authentication_failed(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd()
    config = config_for(server, keys, key=keys.client_other)
    with pytest.raises(AuthenticationFailed) as caught:
        await pool.connect(config)
    assert server.log.offered_keys == [fingerprint(keys.client_other)]
    assert "deploy@127.0.0.1" in caught.value.message
    assert fingerprint(keys.client_other) in caught.value.message  # public; helps debugging
    # Not hammered: the next call replays the failure during the (long) backoff.
    with pytest.raises(AuthenticationFailed) as again:
        await pool.connect(config)
    assert again.value.retry_after is not None and again.value.retry_after > 0
    assert server.log.connections == 1


async def test_closed_port_is_connection_refused(pool: ConnectionPool, keys: Keys) -> None:
    with pytest.raises(ConnectionRefused) as caught:
        await pool.connect(config_for(closed_port(), keys))
    assert caught.value.retryable


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """Accepts TCP connections and never says a word (no SSH banner)."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_silent_server_times_out_within_connect_timeout(
    pool: ConnectionPool, keys: Keys, silent_port: int
) -> None:
    timeouts = dataclasses.replace(FAST, connect=0.5)
    started = time.monotonic()
    with pytest.raises(Timeout) as caught:
        await pool.connect(config_for(silent_port, keys, timeouts=timeouts))
    elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 2.0
    assert "0.5s" in caught.value.message


async def test_connection_is_reused_across_runs(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd()
    config = config_for(server, keys)
    for index in range(20):
        result = await pool.runner(config).run(["echo", str(index)])
        assert result.stdout == f"{index}\n".encode()
    results = await asyncio.gather(*(pool.runner(config).run(["true"]) for _ in range(20)))
    assert all(result.ok for result in results)
    assert server.log.connections == 1
    assert pool.stats.connections_opened == 1
    assert pool.open_connections == 1


async def test_channel_limit_per_connection_is_respected(sshd: StartServer, keys: Keys) -> None:
    server = await sshd()
    async with ConnectionPool(PoolLimits(channels_per_connection=3)) as pool:
        runner = pool.runner(config_for(server, keys))
        results = await asyncio.gather(*(runner.run(["sleep", "0.05"]) for _ in range(12)))
    assert all(result.ok for result in results)
    assert server.log.sessions_max == 3
    assert server.log.connections == 1


async def test_global_command_budget_spans_targets(sshd: StartServer, keys: Keys) -> None:
    servers = [await sshd() for _ in range(3)]
    async with ConnectionPool(PoolLimits(max_commands=2)) as pool:
        runners = [
            pool.runner(config_for(server, keys, target=f"ns/vm{index}"))
            for index, server in enumerate(servers)
        ]
        await asyncio.gather(*(r.run(["sleep", "0.03"]) for r in runners for _ in range(3)))
        assert pool.stats.max_commands_in_flight == 2
    assert all(server.log.sessions_max <= 2 for server in servers)


async def test_idle_connection_is_closed_then_reopened(sshd: StartServer, keys: Keys) -> None:
    server = await sshd()
    async with ConnectionPool(PoolLimits(idle_timeout=0.2)) as pool:
        runner = pool.runner(config_for(server, keys))
        assert (await runner.run(["true"])).ok
        assert pool.open_connections == 1
        await eventually(lambda: pool.open_connections == 0)
        assert (await runner.run(["true"])).ok
        assert server.log.connections == 2


async def test_changed_config_replaces_the_connection(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd(authorized=[keys.client, keys.client_other])
    await pool.runner(config_for(server, keys)).run(["true"])
    rotated = config_for(server, keys, key=keys.client_other)
    await pool.runner(rotated).run(["true"])
    assert server.log.connections == 2
    assert pool.open_connections == 1
    assert pool.stats.connections_closed == 1
    await eventually(lambda: server.log.offered_keys[-1] == fingerprint(keys.client_other))


async def test_recording_the_first_use_fingerprint_keeps_the_connection(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd()
    runner = await pool.connect(config_for(server, keys, policy=TrustOnFirstUse()))
    learned = runner.learned_fingerprint
    assert learned == fingerprint(keys.host)
    recorded = await pool.connect(config_for(server, keys, policy=TrustOnFirstUse(learned)))
    assert recorded.learned_fingerprint is None
    assert server.log.connections == 1


async def test_refused_then_backoff_then_success(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    port = closed_port()
    config = config_for(port, keys)
    with pytest.raises(ConnectionRefused) as first:
        await pool.connect(config)
    assert first.value.retry_after is not None and 0 < first.value.retry_after <= 0.2
    server = await sshd(port=port)
    # Still backing off: the cached failure, no new attempt.
    with pytest.raises(ConnectionRefused) as replayed:
        await pool.connect(config)
    assert replayed.value.retry_after is not None
    assert server.log.connections == 0
    await asyncio.sleep(0.25)
    assert (await (await pool.connect(config)).run(["true"])).ok
    assert pool.last_error(config.target) is None


async def test_lost_connection_is_reported_then_replaced(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd()
    runner = pool.runner(config_for(server, keys))
    with pytest.raises(ConnectionLost):
        await runner.run(["disconnect"])
    assert (await runner.run(["true"])).ok
    assert server.log.connections == 2


async def test_command_timeout_leaves_connection_usable(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd()
    runner = pool.runner(config_for(server, keys))
    started = time.monotonic()
    with pytest.raises(Timeout) as caught:
        await runner.run(["sleep", "5"], timeout=0.2)
    assert time.monotonic() - started < 3.0
    assert "0.2s" in caught.value.message
    assert (await runner.run(["true"])).ok
    assert server.log.connections == 1


async def test_stdin_is_delivered_and_closed(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd()
    runner = pool.runner(config_for(server, keys))
    payload = bytes(range(256)) * 64
    assert (await runner.run(["cat"], stdin=payload)).stdout == payload
    assert (await runner.run(["cat"])).stdout == b""  # no stdin: EOF at once, no hang


async def test_exit_status_and_stderr_are_results_not_errors(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd()
    result = await pool.runner(config_for(server, keys)).run(
        ["sh", "-c", "echo out; echo err >&2; exit 3"]
    )
    assert (result.exit_status, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    assert not result.ok


@pytest.mark.parametrize(
    "argv",
    [pytest.param("echo hi", id="a-string-is-not-an-argv"), pytest.param([], id="empty-argv")],
)
async def test_bad_argv_is_refused_before_sending(
    sshd: StartServer, pool: ConnectionPool, keys: Keys, argv: object
) -> None:
    server = await sshd()
    with pytest.raises((TypeError, ValueError)):
        await pool.runner(config_for(server, keys)).run(argv)  # type: ignore[arg-type]
    assert server.log.commands == []


async def test_local_ssh_config_agent_and_known_hosts_are_ignored(
    sshd: StartServer,
    pool: ConnectionPool,
    keys: Keys,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ssh_dir = tmp_path / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "config").write_text(
        "Host *\n  User nobody\n  Port 1\n  HostKeyAlgorithms ssh-dss\n  ProxyJump nowhere\n"
    )
    (ssh_dir / "known_hosts").write_text("127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "no-agent"))
    server = await sshd()
    assert (await (await pool.connect(config_for(server, keys))).run(["true"])).ok
    assert os.environ["HOME"] == str(tmp_path)


class Recorder(PoolObserver):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def connection_opened(self, target: str, seconds: float) -> None:
        assert seconds >= 0
        self.events.append(("opened", target))

    def connection_closed(self, target: str, reason: str) -> None:
        self.events.append(("closed", reason))

    def connection_failed(self, target: str, reason: str) -> None:
        self.events.append(("failed", reason))

    def command_finished(self, target: str, seconds: float, outcome: str) -> None:
        self.events.append(("command", outcome))

    def host_key_learned(self, target: str, fingerprint: str) -> None:
        self.events.append(("learned", fingerprint))


async def test_observer_sees_connections_commands_and_failures(
    sshd: StartServer, keys: Keys
) -> None:
    server = await sshd()
    recorder = Recorder()
    async with ConnectionPool(observer=recorder) as pool:
        runner = pool.runner(config_for(server, keys, policy=TrustOnFirstUse()))
        await runner.run(["true"])
        await runner.run(["false"])
        with pytest.raises(TransportError):
            await pool.connect(config_for(closed_port(), keys, target="ns/down"))
    assert recorder.events == [
        ("opened", "ns/vm"),
        ("learned", fingerprint(keys.host)),
        ("command", "ok"),
        ("command", "nonzero"),
        ("failed", "ConnectionRefused"),
        ("closed", "pool closed"),
    ]
    assert pool.stats.connect_failures["ConnectionRefused"] == 1
    assert pool.stats.connect_seconds_total > 0


async def test_closed_pool_refuses_work(pool: ConnectionPool, keys: Keys) -> None:
    await pool.close()
    with pytest.raises(TransportError):
        await pool.connect(config_for(closed_port(), keys))


def test_fast_timeouts_are_sane() -> None:
    assert FAST.connect < Timeouts().connect


async def test_keepalive_detects_a_hung_peer(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    server = await sshd()
    proxy = await FreezableProxy(server.port).start()
    try:
        timeouts = dataclasses.replace(FAST, keepalive_interval=0.2, keepalive_count_max=2)
        runner = pool.runner(config_for(proxy.port, keys, timeouts=timeouts))
        assert (await runner.run(["true"])).ok
        proxy.frozen = True
        started = time.monotonic()
        with pytest.raises(ConnectionLost):
            await runner.run(["sleep", "30"], timeout=20)
        assert time.monotonic() - started < 5
        assert pool.open_connections == 0
        proxy.frozen = False
        assert (await runner.run(["true"])).ok
        assert server.log.connections == 2
    finally:
        await proxy.stop()


async def test_losing_the_bastion_drops_the_targets_behind_it(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    jump = await sshd(allow_tunnels=True)
    target = await sshd()
    config = config_for(target, keys, bastion=config_for(jump, keys, target="ns/jump"))
    await pool.runner(config).run(["true"])
    assert pool.open_connections == 2
    jump.disconnect_all()
    await eventually(lambda: pool.open_connections == 0)
    assert (await pool.runner(config).run(["true"])).ok
    assert (jump.log.connections, target.log.connections) == (2, 2)
