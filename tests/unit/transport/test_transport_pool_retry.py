"""`retry_now`: a user's edit clears a cached failure, but the host key is checked again."""

from __future__ import annotations

import asyncio

import pytest
from transport_fakes import FakeSSHD, Keys, StartServer, config_for

from vmgitops.transport import (
    ConnectionLost,
    ConnectionPool,
    HostKeyMismatch,
    TrustOnFirstUse,
    fingerprint,
)


async def test_mismatch_stays_sticky_until_retry_now_then_is_checked_again(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    impostor = await sshd(host_keys=[keys.host_other])
    config = config_for(impostor, keys)
    for _ in range(3):
        with pytest.raises(HostKeyMismatch):
            await pool.connect(config)
    assert impostor.log.connections == 1  # replayed, never retried
    pool.retry_now(config.target)
    with pytest.raises(HostKeyMismatch):
        await pool.connect(config)
    assert impostor.log.connections == 2
    assert impostor.log.auth_attempts == 0  # still no credentials sent
    # The VM gets its real key back: the next user-requested retry succeeds.
    port = impostor.port
    await impostor.stop()
    genuine = await FakeSSHD([keys.host], [keys.client], port=port).start()
    try:
        pool.retry_now(config.target)
        assert (await pool.runner(config).run(["true"])).ok
    finally:
        await genuine.stop()


async def test_retry_now_keeps_the_key_learned_on_first_use(
    sshd: StartServer, pool: ConnectionPool, keys: Keys
) -> None:
    first = await sshd(host_keys=[keys.host])
    config = config_for(first, keys, policy=TrustOnFirstUse())
    runner = await pool.connect(config)
    assert runner.learned_fingerprint == fingerprint(keys.host)
    # The VM is re-keyed (and its connections drop) before the key was recorded.
    port = first.port
    await first.stop()
    rekeyed = await FakeSSHD([keys.host_other], [keys.client], port=port).start()
    try:
        for _ in range(100):  # until the pool notices the lost connection and reconnects
            try:
                await pool.runner(config).run(["true"])
            except HostKeyMismatch:
                break
            except ConnectionLost:
                continue
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the re-keyed server was never contacted")
        pool.retry_now(config.target)
        with pytest.raises(HostKeyMismatch):
            await pool.runner(config).run(["true"])
        assert rekeyed.log.auth_attempts == 0
        # Only reset() (the user clearing the fingerprint) trusts a new key.
        pool.reset(config.target)
        runner = await pool.connect(config)
        assert runner.learned_fingerprint == fingerprint(keys.host_other)
    finally:
        await rekeyed.stop()
