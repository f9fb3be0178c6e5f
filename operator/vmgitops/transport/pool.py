"""One SSH connection per target, shared by every caller, with limits and backoff.

A controller reconciling thousands of VMs must neither open a connection per command
(handshakes cost CPU on both ends and sshd rate-limits unauthenticated connections
through MaxStartups) nor let one sick VM soak up the budget. So:

* one asyncssh connection per target ("namespace/name"), reused by all callers, closed
  after `idle_timeout` without use, replaced when the target's config changes;
* at most `channels_per_connection` commands at once on a connection (sshd's default
  MaxSessions is 10; we stay below it), at most `max_commands` in flight overall, and at
  most `max_connects` handshakes at once;
* a failed connect backs off exponentially with jitter per target, and the caller gets
  the last error again (with `retry_after`) instead of a new attempt while it lasts;
* a host key mismatch, a missing host key or missing credentials are never retried:
  the error is replayed until the target's config changes (or `reset`).

asyncssh is always given our own settings, so that nothing on the operator's machine
changes behaviour: no ssh config file, no agent, no forwarding, no default keys, no
known_hosts file, and a connect timeout and keepalives.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TypeVar

import asyncssh

from .classify import connect_error
from .config import ConnectionConfig
from .errors import (
    ConnectionLost,
    CredentialsMissing,
    HostKeyMismatch,
    HostKeyNotConfigured,
    TransportError,
)
from .hostkeys import HostKeyCheck, HostKeyPolicy, TrustOnFirstUse, fingerprint
from .session import SSHRunner

#: Errors replayed until the config changes: retrying cannot fix them, and retrying a
#: host key mismatch could one day "succeed" against an impostor.
STICKY_ERRORS: tuple[type[TransportError], ...] = (
    HostKeyMismatch,
    HostKeyNotConfigured,
    CredentialsMissing,
)

_E = TypeVar("_E", bound=TransportError)


@dataclass(frozen=True)
class PoolLimits:
    """Budgets and timers of a `ConnectionPool`."""

    #: Handshakes in progress at once, over all targets.
    max_connects: int = 16
    #: Commands in flight at once, over all targets.
    max_commands: int = 256
    #: Commands at once on one connection; below sshd's MaxSessions (10 by default).
    channels_per_connection: int = 8
    #: Seconds a connection may stay unused before it is closed.
    idle_timeout: float = 300.0
    #: First delay after a failed connect; doubles per failure up to `backoff_max`.
    backoff_base: float = 1.0
    backoff_max: float = 300.0


class PoolObserver:
    """Hooks for metrics and events; override what you need. Must not block."""

    def connection_opened(self, target: str, seconds: float) -> None:
        """A connection was established after `seconds` (TCP + handshake + auth)."""

    def connection_closed(self, target: str, reason: str) -> None:
        """A connection ended: "idle", "config changed", "lost", "dropped", "pool closed"."""

    def connection_failed(self, target: str, reason: str) -> None:
        """A connect attempt failed with this CamelCase reason."""

    def command_finished(self, target: str, seconds: float, outcome: str) -> None:
        """A command ended: "ok", "nonzero", or a CamelCase error reason."""

    def host_key_learned(self, target: str, fingerprint: str) -> None:
        """TrustOnFirstUse accepted this fingerprint; the caller should record it."""


@dataclass
class PoolStats:
    """Plain counters, readable at any time (e.g. by a metrics collector)."""

    connections_opened: int = 0
    connections_closed: int = 0
    connect_failures: Counter[str] = field(default_factory=Counter)
    connect_seconds_total: float = 0.0
    commands_started: int = 0
    commands_in_flight: int = 0
    max_commands_in_flight: int = 0


class _Client(HostKeyCheck):
    """The SSHClient of one pooled connection: host key checks plus loss notification."""

    def __init__(self, policy: HostKeyPolicy, pool: ConnectionPool) -> None:
        super().__init__(policy)
        self._pool = pool
        self.live: _Live | None = None
        self.lost_early = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.live is None:
            self.lost_early = True
        else:
            self._pool._forget(self.live, "lost")


@dataclass(eq=False)
class _Live:
    """An established connection and its bookkeeping."""

    target: str
    conn: asyncssh.SSHClientConnection
    fingerprint: str | None
    channels: asyncio.Semaphore
    via: _Live | None
    last_used: float
    active: int = 0
    dependents: int = 0
    closed: bool = False
    retired: bool = False
    #: become user -> whether sudo lets the login user become them without a password.
    sudo_nopasswd: dict[str, bool] = field(default_factory=dict)


@dataclass(eq=False)
class _Entry:
    """Everything the pool knows about one target."""

    target: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    config_id: str | None = None
    connection_id: str | None = None
    live: _Live | None = None
    learned_fingerprint: str | None = None
    failures: int = 0
    next_attempt: float = 0.0
    last_error: TransportError | None = None
    sticky: bool = False


def _replay(err: _E, retry_after: float | None) -> _E:
    """A fresh copy of a cached error (raising one instance twice grows its traceback)."""
    again = copy.copy(err)
    again.retry_after = retry_after
    return again


def _hop_error(err: TransportError, bastion: ConnectionConfig) -> TransportError:
    """A bastion's failure, as seen by a target behind it: same reason, named hop."""
    again = _replay(err, err.retry_after)
    again.message = f"via bastion {bastion.target}: {err.message}"
    again.args = (again.message,)
    return again


class ConnectionPool:
    """Pooled asyncssh connections keyed by target; one per event loop."""

    def __init__(
        self,
        limits: PoolLimits | None = None,
        *,
        observer: PoolObserver | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.limits = limits or PoolLimits()
        self.observer = observer or PoolObserver()
        self.stats = PoolStats()
        self._rng = rng or random.Random()  # noqa: S311 - backoff jitter, not cryptography
        self._entries: dict[str, _Entry] = {}
        self._connects = asyncio.Semaphore(self.limits.max_connects)
        self._commands = asyncio.Semaphore(self.limits.max_commands)
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    # -- public -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once `close()` was called (the operator is stopping)."""
        return self._closed

    def runner(self, config: ConnectionConfig) -> SSHRunner:
        """A Runner for this target; it connects (or reuses) on each `run`."""
        return SSHRunner(self, config)

    async def connect(self, config: ConnectionConfig) -> SSHRunner:
        """Make sure the target is connected now (raising why not); returns its Runner.

        After it returns, `runner.host_key_fingerprint` is the server's key and, under
        TrustOnFirstUse without a recorded fingerprint, `runner.learned_fingerprint` is
        the one to write to status.hostKeyFingerprint.
        """
        await self._live(config)
        return SSHRunner(self, config)

    @property
    def open_connections(self) -> int:
        return sum(1 for entry in self._entries.values() if entry.live is not None)

    def host_key_fingerprint(self, target: str) -> str | None:
        """The fingerprint presented on the target's open connection, if any."""
        entry = self._entries.get(target)
        if entry is None or entry.live is None:
            return None
        return entry.live.fingerprint

    def learned_fingerprint(self, config: ConnectionConfig) -> str | None:
        """The first-use fingerprint still waiting to be recorded for this config."""
        policy = config.host_key_policy
        if not isinstance(policy, TrustOnFirstUse) or policy.recorded_fingerprint is not None:
            return None
        entry = self._entries.get(config.target)
        if entry is None or entry.config_id != config.config_id:
            return None
        return entry.learned_fingerprint

    def last_error(self, target: str) -> TransportError | None:
        """The failure being replayed for this target, if any."""
        entry = self._entries.get(target)
        return entry.last_error if entry is not None else None

    def reset(self, target: str) -> None:
        """Forget a cached failure, its backoff and any key learned on first use.

        For a user's explicit "try again", e.g. after clearing status.hostKeyFingerprint
        of a VM that was legitimately re-keyed.
        """
        entry = self._entries.get(target)
        if entry is not None:
            entry.learned_fingerprint = None
            entry.failures = 0
            entry.next_attempt = 0.0
            entry.last_error = None
            entry.sticky = False

    def retry_now(self, target: str) -> None:
        """Forget a cached failure and its backoff, keeping any key learned on first use.

        For a user's edit of the target (a new generation): the next connect is a fresh
        attempt, with the same host key checks, so a mismatch can only end in success
        when the VM really presents an acceptable key.
        """
        entry = self._entries.get(target)
        if entry is not None:
            entry.failures = 0
            entry.next_attempt = 0.0
            entry.last_error = None
            entry.sticky = False

    async def drop(self, target: str) -> None:
        """Close the target's connection and forget it (the target was deleted)."""
        entry = self._entries.pop(target, None)
        if entry is not None and entry.live is not None:
            live = entry.live
            self._close(live, "dropped")
            await self._wait_closed(live)

    async def close(self) -> None:
        """Close every connection; the pool can not be used afterwards."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        lives = [entry.live for entry in self._entries.values() if entry.live is not None]
        # Targets behind a bastion first, then the bastions.
        lives.sort(key=lambda live: live.dependents)
        for live in lives:
            self._close(live, "pool closed")
        for live in lives:
            await self._wait_closed(live)
        self._entries.clear()

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- leases, used by SSHRunner ------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, config: ConnectionConfig) -> AsyncIterator[_Live]:
        """A connection with one of its channel slots held, within the global budget.

        Order matters: connect first (bounded by `max_connects`, so unreachable targets
        hold no command slot while they time out), then a channel of this connection,
        then a global slot (so a busy target queues on its own channels, not on the
        budget everyone shares).
        """
        for _attempt in range(3):
            live = await self._live(config)
            async with live.channels:
                if live.closed:  # it died while we queued for a channel
                    continue
                async with self._commands:
                    stats = self.stats
                    stats.commands_started += 1
                    stats.commands_in_flight += 1
                    stats.max_commands_in_flight = max(
                        stats.max_commands_in_flight, stats.commands_in_flight
                    )
                    live.active += 1
                    try:
                        yield live
                    finally:
                        live.active -= 1
                        stats.commands_in_flight -= 1
                        live.last_used = time.monotonic()
                        if live.retired and live.active == 0:
                            self._close(live, "config changed")
                return
        raise ConnectionLost(f"{config.where}: connection kept closing before use")

    def connection_broken(self, live: _Live) -> None:
        """A command saw the connection die: stop handing it out."""
        self._close(live, "lost")

    # -- internals ----------------------------------------------------------------------

    async def _live(self, config: ConnectionConfig) -> _Live:
        if self._closed:
            raise TransportError(f"{config.where}: the connection pool is closed")
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap(), name="vmgitops-ssh-reaper")
        entry = self._entries.get(config.target)
        if entry is None:
            entry = self._entries[config.target] = _Entry(config.target)
        async with entry.lock:
            self._apply(entry, config)
            live = entry.live
            if live is not None and not live.closed:
                return live
            try:
                config.host_key_policy.ensure_configured()
            except TransportError as err:
                err.message = f"{config.where}: {err.message}"
                err.args = (err.message,)
                self._failed(entry, err)
                raise
            if entry.last_error is not None:
                if entry.sticky:
                    raise _replay(entry.last_error, None)
                remaining = entry.next_attempt - time.monotonic()
                if remaining > 0:
                    raise _replay(entry.last_error, remaining)
            return await self._open(entry, config)

    def _apply(self, entry: _Entry, config: ConnectionConfig) -> None:
        """Take a (possibly changed) config: clear what it invalidates."""
        if entry.config_id == config.config_id:
            return
        entry.config_id = config.config_id
        entry.failures = 0
        entry.next_attempt = 0.0
        entry.last_error = None
        entry.sticky = False
        if entry.connection_id != config.connection_id:
            # A key learned on first use outlives changes of the recorded fingerprint
            # alone: a stale body without it must not reopen trust (reset() does that).
            entry.learned_fingerprint = None
        live = entry.live
        if live is not None and (
            entry.connection_id != config.connection_id
            or live.fingerprint is None
            or not config.host_key_policy.accepts_fingerprint(live.fingerprint)
        ):
            entry.live = None
            live.retired = True
            if live.active == 0:
                self._close(live, "config changed")
        entry.connection_id = config.connection_id

    async def _open(self, entry: _Entry, config: ConnectionConfig) -> _Live:
        policy = config.host_key_policy
        if (
            isinstance(policy, TrustOnFirstUse)
            and policy.recorded_fingerprint is None
            and entry.learned_fingerprint is not None
        ):
            # Not recorded yet, but this pool already trusted a key: hold on to it.
            policy = TrustOnFirstUse(entry.learned_fingerprint)
        via: _Live | None = None
        if config.bastion is not None:
            try:
                via = await self._live(config.bastion)
            except TransportError as err:
                raise _hop_error(err, config.bastion) from err
            via.last_used = time.monotonic()  # not idle: about to carry a tunnel
        client = _Client(policy, self)
        timeouts = config.timeouts
        started = time.monotonic()
        try:
            async with self._connects:
                started = time.monotonic()
                conn = await asyncssh.connect(
                    config.address,
                    config.port,
                    **({"tunnel": via.conn} if via is not None else {}),
                    config=None,
                    client_factory=lambda: client,
                    username=config.user,
                    client_keys=[config.key],
                    known_hosts=policy.known_hosts(),
                    server_host_key_algs=policy.server_host_key_algs(),
                    x509_trusted_certs=None,
                    x509_trusted_cert_paths=[],
                    agent_path=None,
                    agent_identities=None,
                    agent_forwarding=False,
                    pkcs11_provider=None,
                    x11_forwarding=False,
                    client_host_keysign=False,
                    host_based_auth=False,
                    gss_auth=False,
                    gss_kex=False,
                    kbdint_auth=False,
                    password_auth=False,
                    preferred_auth="publickey",
                    disable_trivial_auth=True,
                    request_pty=False,
                    canonicalize_hostname=False,
                    tcp_keepalive=True,
                    connect_timeout=timeouts.connect,
                    keepalive_interval=timeouts.keepalive_interval,
                    keepalive_count_max=timeouts.keepalive_count_max,
                )
        except Exception as exc:
            failure = connect_error(
                exc,
                where=config.where,
                timeout=timeouts.connect,
                check=client,
                client_key=fingerprint(config.key),
            )
            self._failed(entry, failure)
            raise failure from exc
        seconds = time.monotonic() - started
        server_key = conn.get_server_host_key()
        live = _Live(
            target=config.target,
            conn=conn,
            fingerprint=fingerprint(server_key) if server_key is not None else None,
            channels=asyncio.Semaphore(self.limits.channels_per_connection),
            via=via,
            last_used=time.monotonic(),
        )
        client.live = live
        if via is not None:
            via.dependents += 1
        entry.live = live
        entry.failures = 0
        entry.next_attempt = 0.0
        entry.last_error = None
        entry.sticky = False
        self.stats.connections_opened += 1
        self.stats.connect_seconds_total += seconds
        self.observer.connection_opened(config.target, seconds)
        if client.learned_fingerprint is not None:
            entry.learned_fingerprint = client.learned_fingerprint
            self.observer.host_key_learned(config.target, client.learned_fingerprint)
        if client.lost_early:
            self._forget(live, "lost")
        return live

    def _failed(self, entry: _Entry, err: TransportError) -> None:
        entry.last_error = err
        self.stats.connect_failures[err.reason] += 1
        self.observer.connection_failed(entry.target, err.reason)
        if isinstance(err, STICKY_ERRORS):
            entry.sticky = True
            err.retry_after = None
            return
        entry.failures += 1
        if err.retryable:
            delay = min(
                self.limits.backoff_max,
                self.limits.backoff_base * 2 ** min(entry.failures - 1, 30),
            )
            delay = delay / 2 + self._rng.uniform(0, delay / 2)
        else:
            # e.g. AuthenticationFailed: the fix may happen on the VM, so try again,
            # but rarely (a refused key also feeds sshd's and fail2ban's counters).
            delay = self.limits.backoff_max
        entry.next_attempt = time.monotonic() + delay
        err.retry_after = delay

    def _close(self, live: _Live, reason: str) -> None:
        if live.closed:
            return
        self._forget(live, reason)
        live.conn.close()

    def _forget(self, live: _Live, reason: str) -> None:
        """Bookkeeping for a connection that is closing or closed; idempotent."""
        if live.closed:
            return
        live.closed = True
        entry = self._entries.get(live.target)
        if entry is not None and entry.live is live:
            entry.live = None
        if live.via is not None:
            live.via.dependents -= 1
            live.via.last_used = time.monotonic()
        self.stats.connections_closed += 1
        self.observer.connection_closed(live.target, reason)

    @staticmethod
    async def _wait_closed(live: _Live) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await live.conn.wait_closed()

    async def _reap(self) -> None:
        """Close connections idle for `idle_timeout`; forget targets with nothing to keep."""
        idle = self.limits.idle_timeout
        interval = max(0.05, min(idle / 4, 15.0))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for target, entry in list(self._entries.items()):
                live = entry.live
                if (
                    live is not None
                    and live.active == 0
                    and live.dependents == 0
                    and now - live.last_used >= idle
                ):
                    self._close(live, "idle")
                if (
                    entry.live is None
                    and entry.last_error is None
                    and entry.learned_fingerprint is None
                    and not entry.lock.locked()
                ):
                    del self._entries[target]
