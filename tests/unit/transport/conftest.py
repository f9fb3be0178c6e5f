"""Fixtures: in-process SSH servers, keys and a fast-retrying pool (see transport_fakes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncssh
import pytest
from transport_fakes import FakeSSHD, Keys, StartServer, make_keys

from vmgitops.transport import ConnectionPool, PoolLimits


@pytest.fixture(scope="session")
def keys() -> Keys:
    return make_keys()


@pytest.fixture
async def sshd(keys: Keys) -> AsyncIterator[StartServer]:
    """Start FakeSSHDs (host key `keys.host`, client `keys.client` by default)."""
    servers: list[FakeSSHD] = []

    async def start(
        host_keys: Sequence[asyncssh.SSHKey] | None = None,
        authorized: Sequence[asyncssh.SSHKey] | None = None,
        **kwargs: object,
    ) -> FakeSSHD:
        server = FakeSSHD(
            host_keys if host_keys is not None else [keys.host],
            authorized if authorized is not None else [keys.client],
            **kwargs,  # type: ignore[arg-type]
        )
        servers.append(server)
        return await server.start()

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def pool() -> AsyncIterator[ConnectionPool]:
    async with ConnectionPool(PoolLimits(backoff_base=0.05, backoff_max=0.2)) as the_pool:
        yield the_pool
