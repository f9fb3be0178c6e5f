"""Prometheus metrics of the operator, served by `vmgitops run` on `--metrics-port`.

* `vmgitops_targets{reason}`: VirtualMachineTargets by the reason of their Reachable
  condition (`Connected`, `HostKeyMismatch`, ...; `Paused` for paused targets), read
  from memory at scrape time, so a fleet of 5,000 costs one dict walk per scrape.
* `vmgitops_ssh_connect_seconds`: TCP + key exchange + authentication of a new pooled
  connection (a reused connection is not a connect).
* `vmgitops_ssh_open_connections`: connections the pool holds open right now.
* `vmgitops_ssh_connect_failures_total{reason}`: failed connect attempts by reason.
* `vmgitops_probes_total{result}`: reachability probes by result (the Reachable reason).
* `vmgitops_probe_seconds`: wall time of one probe (connect if needed, facts command).

VMApplications:

* `vmgitops_sync_duration_seconds`: wall time of one sync operation (a rollout), from
  its start to its end, over every batch.
* `vmgitops_operations_total{result}`: operations that ended, by result (`Succeeded`,
  `Failed`, `Superseded`).
* `vmgitops_app_targets{namespace,app,sync,health}`: the selected targets of each
  application by sync and health status (`Unreachable` health for a VM that cannot be
  reached), read from memory at scrape time.
* `vmgitops_drift_detected_total{namespace,app}`: targets found changed by hand at the
  revision they were synced to.

Label values are CamelCase reasons from a closed set, or application names; never
target names, so the series count does not grow with the fleet. Nothing here reads or
exports a secret.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter as _Counter
from collections.abc import Iterator, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from vmgitops.transport.pool import PoolObserver

log = logging.getLogger("vmgitops.metrics")

SYNC_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
CONNECT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: The reason counted for a paused target, which is not probed.
PAUSED = "Paused"


class _TargetsByReason(Collector):
    """`vmgitops_targets{reason}` from the controller's in-memory view."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reasons: dict[str, str] = {}

    def set(self, target: str, reason: str) -> None:
        with self._lock:
            self._reasons[target] = reason

    def forget(self, target: str) -> None:
        with self._lock:
            self._reasons.pop(target, None)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(_Counter(self._reasons.values()))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "vmgitops_targets",
            "VirtualMachineTargets by the reason of their Reachable condition",
            labels=["reason"],
        )
        for reason, count in sorted(self.counts().items()):
            family.add_metric([reason], count)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "vmgitops_targets",
            "VirtualMachineTargets by the reason of their Reachable condition",
            labels=["reason"],
        )


class _AppTargets(Collector):
    """`vmgitops_app_targets{namespace,app,sync,health}` from the controllers' memory."""

    NAME = "vmgitops_app_targets"
    HELP = "Selected VirtualMachineTargets of each VMApplication by sync and health status"
    LABELS = ("namespace", "app", "sync", "health")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], dict[tuple[str, str], int]] = {}

    def set(self, namespace: str, app: str, counts: Mapping[tuple[str, str], int]) -> None:
        with self._lock:
            self._counts[(namespace, app)] = dict(counts)

    def forget(self, namespace: str, app: str) -> None:
        with self._lock:
            self._counts.pop((namespace, app), None)

    def snapshot(self) -> dict[tuple[str, str], dict[tuple[str, str], int]]:
        with self._lock:
            return {k: dict(v) for k, v in self._counts.items()}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=list(self.LABELS))
        for (namespace, app), counts in sorted(self.snapshot().items()):
            for (sync, health), n in sorted(counts.items()):
                family.add_metric([namespace, app, sync, health], n)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.NAME, self.HELP, labels=list(self.LABELS))


class Metrics:
    """The operator's metrics in one registry (the process-wide one by default)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.targets = _TargetsByReason()
        registry.register(self.targets)
        self.ssh_connect_seconds = Histogram(
            "vmgitops_ssh_connect_seconds",
            "Time to open a pooled SSH connection: TCP, key exchange and authentication",
            buckets=CONNECT_BUCKETS,
            registry=registry,
        )
        self.ssh_open_connections = Gauge(
            "vmgitops_ssh_open_connections",
            "SSH connections the pool holds open",
            registry=registry,
        )
        self.ssh_connect_failures = Counter(
            "vmgitops_ssh_connect_failures",
            "Failed SSH connect attempts by reason",
            ["reason"],
            registry=registry,
        )
        self.probes = Counter(
            "vmgitops_probes",
            "Reachability probes of VirtualMachineTargets by result (the Reachable reason)",
            ["result"],
            registry=registry,
        )
        self.probe_seconds = Histogram(
            "vmgitops_probe_seconds",
            "Wall time of one reachability probe (connect when needed, facts command)",
            buckets=PROBE_BUCKETS,
            registry=registry,
        )
        self.app_targets = _AppTargets()
        registry.register(self.app_targets)
        self.sync_duration = Histogram(
            "vmgitops_sync_duration_seconds",
            "Wall time of one VMApplication sync operation (a rollout), start to end",
            buckets=SYNC_BUCKETS,
            registry=registry,
        )
        self.operations = Counter(
            "vmgitops_operations",
            "VMApplication sync operations that ended, by result",
            ["result"],
            registry=registry,
        )
        self.drift_detected = Counter(
            "vmgitops_drift_detected",
            "Targets found changed by hand at the revision they were synced to",
            ["namespace", "app"],
            registry=registry,
        )

    def observer(self) -> PoolObserver:
        """A PoolObserver that feeds the SSH metrics; give it to the ConnectionPool."""
        return MetricsObserver(self)

    def probe_finished(self, target: str, result: str, seconds: float) -> None:
        self.probes.labels(result=result).inc()
        self.probe_seconds.observe(seconds)
        self.targets.set(target, result)

    def target_paused(self, target: str) -> None:
        self.targets.set(target, PAUSED)

    def target_deleted(self, target: str) -> None:
        self.targets.forget(target)

    # -- VMApplications (the reconciler's AppMetrics) -----------------------------------

    def operation_finished(self, result: str, seconds: float | None) -> None:
        self.operations.labels(result=result).inc()
        if seconds is not None and seconds >= 0:
            self.sync_duration.observe(seconds)

    def drift_found(self, namespace: str, app: str, count: int) -> None:
        if count > 0:
            self.drift_detected.labels(namespace=namespace, app=app).inc(count)

    def app_targets_counted(
        self, namespace: str, app: str, counts: Mapping[tuple[str, str], int]
    ) -> None:
        self.app_targets.set(namespace, app, counts)

    def app_forgotten(self, namespace: str, app: str) -> None:
        self.app_targets.forget(namespace, app)
        with contextlib.suppress(KeyError):
            self.drift_detected.remove(namespace, app)


class MetricsObserver(PoolObserver):
    """Pool events -> metrics. Called on the event loop; never blocks."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def connection_opened(self, target: str, seconds: float) -> None:
        self.metrics.ssh_connect_seconds.observe(seconds)
        self.metrics.ssh_open_connections.inc()
        log.debug("%s: SSH connection opened in %.1f ms", target, seconds * 1000)

    def connection_closed(self, target: str, reason: str) -> None:
        self.metrics.ssh_open_connections.dec()
        log.debug("%s: SSH connection closed (%s)", target, reason)

    def connection_failed(self, target: str, reason: str) -> None:
        self.metrics.ssh_connect_failures.labels(reason=reason).inc()
        log.debug("%s: SSH connect failed (%s)", target, reason)


_metrics: Metrics | None = None
_metrics_lock = threading.Lock()


def current() -> Metrics:
    """The process-wide metrics, registered in prometheus_client's default registry."""
    global _metrics
    with _metrics_lock:
        if _metrics is None:
            _metrics = Metrics()
        return _metrics


def serve(address: str, port: int, registry: CollectorRegistry = REGISTRY) -> tuple[str, int]:
    """Serve /metrics from a daemon thread; returns the bound address and port.

    Port 0 picks a free port (the log line says which).
    """
    server, _thread = start_http_server(port, addr=address, registry=registry)
    host, bound = server.server_address[:2]
    return str(host), int(bound)
