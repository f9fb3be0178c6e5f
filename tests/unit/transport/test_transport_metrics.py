"""The pool's observer feeds the Prometheus metrics: connects, open connections, failures."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from transport_fakes import Keys, StartServer, closed_port, config_for

from vmgitops.metrics import Metrics
from vmgitops.transport import ConnectionPool, ConnectionRefused, PoolLimits


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def test_connects_open_connections_and_failures_are_counted(
    sshd: StartServer, keys: Keys
) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    server = await sshd()
    async with ConnectionPool(
        PoolLimits(backoff_base=0.05, backoff_max=0.1), observer=metrics.observer()
    ) as pool:
        for _ in range(5):
            assert (await pool.runner(config_for(server, keys)).run(["true"])).ok
        assert value(registry, "vmgitops_ssh_connect_seconds_count") == 1
        assert value(registry, "vmgitops_ssh_open_connections") == 1
        with pytest.raises(ConnectionRefused):
            await pool.connect(config_for(closed_port(), keys, target="ns/closed"))
        assert (
            value(registry, "vmgitops_ssh_connect_failures_total", reason="ConnectionRefused") == 1
        )
        await pool.drop("ns/vm")
        assert value(registry, "vmgitops_ssh_open_connections") == 0


def test_targets_by_reason_follow_probes_pauses_and_deletes() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.probe_finished("ns/a", "Connected", 0.01)
    metrics.probe_finished("ns/b", "Connected", 0.02)
    metrics.probe_finished("ns/c", "HostKeyMismatch", 0.03)
    metrics.probe_finished("ns/a", "Timeout", 10.0)
    metrics.target_paused("ns/d")
    assert value(registry, "vmgitops_targets", reason="Connected") == 1
    assert value(registry, "vmgitops_targets", reason="Timeout") == 1
    assert value(registry, "vmgitops_targets", reason="HostKeyMismatch") == 1
    assert value(registry, "vmgitops_targets", reason="Paused") == 1
    assert value(registry, "vmgitops_probes_total", result="Connected") == 2
    assert value(registry, "vmgitops_probe_seconds_count") == 4
    metrics.target_deleted("ns/c")
    assert value(registry, "vmgitops_targets", reason="HostKeyMismatch") == 0
