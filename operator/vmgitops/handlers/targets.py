"""kopf glue for VirtualMachineTarget: body in, probe, status patch and Events out.

Three things make a target probed:

* a new or edited spec (generation != observedGeneration), at once;
* the periodic timer, every `probe_interval` seconds with jitter;
* a change of a Secret it depends on (its key, its sudo password, its bastion's key),
  at once, found through an in-memory index: no API call per target.

And one makes it forget what it trusted: clearing status.hostKeyFingerprint of a
TrustOnFirstUse target resets the pool's memory of the first key, then probes.

Status is written by one merge patch of the status subresource, inside the target's
lock, and only when something changed. The controller remembers what it wrote (the
API server's answer), so a probe that starts before the watch stream has delivered our
previous write neither writes it again nor posts its Event twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from vmgitops import metrics as metrics_mod
from vmgitops import settings as settings_mod
from vmgitops.api import meta
from vmgitops.reconcile import target_probe
from vmgitops.reconcile.target_status import fleet_probe_interval, next_status, probe_due
from vmgitops.transport.config import Timeouts
from vmgitops.transport.keys import KeyCache
from vmgitops.transport.pool import ConnectionPool, PoolLimits

log = logging.getLogger("vmgitops.targets")
TARGETS = (meta.GROUP, meta.VERSION, meta.TARGET.plural)
CREDENTIAL_TYPES = ("kubernetes.io/ssh-auth", "kubernetes.io/basic-auth", "Opaque")
#: Probes started at once by one Secret change (each still waits for its own target).
SECRET_FANOUT = 64
#: How many bastion levels a Secret change is followed up (as MAX_BASTION_DEPTH).
BASTION_LEVELS = 4
#: Seconds between a Secret's deletion and the re-probe of the targets that used it.
DELETED_SECRET_DELAY = 2.0


@dataclass(frozen=True)
class _Written:
    """The status as the API server returned it after our last write."""

    resource_version: str
    status: dict[str, Any]


def _newer(a: str, b: str) -> bool:
    """Whether resourceVersion `a` is later than `b` (etcd revisions are integers)."""
    try:
        return int(a) > int(b)
    except ValueError:
        return a != b  # unknown order: trust what the API server sent last


class _State:
    """Process-wide state of the target controller, created on the operator's loop."""

    def __init__(self) -> None:
        s = settings_mod.current()
        self.metrics = metrics_mod.current()
        self.pool = ConnectionPool(
            PoolLimits(
                max_connects=s.max_concurrent_connects,
                max_commands=s.max_inflight_commands,
                idle_timeout=s.idle_close,
                backoff_max=max(30.0, s.probe_interval),
            ),
            observer=self.metrics.observer(),
        )
        self.keys = KeyCache()
        self.timeouts = Timeouts(connect=s.connect_timeout, command=s.command_timeout)
        self.locks: dict[str, asyncio.Lock] = {}
        self.written: dict[str, _Written] = {}
        #: The hostKeyFingerprint last seen in each target's watch events.
        self.seen_fingerprints: dict[str, str] = {}
        #: A digest of each credential Secret's type and data, to see real changes.
        self.secret_digests: dict[tuple[str, str], str] = {}
        self.fanout = asyncio.Semaphore(SECRET_FANOUT)
        #: When each target was last probed (monotonic), by any trigger.
        self.probed_at: dict[str, float] = {}
        #: The per-target probe interval last logged (it grows with the fleet).
        self.announced_interval = 0.0
        self.tasks: set[asyncio.Task[None]] = set()
        self._kube: Any = None

    def lock(self, key: str) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())

    @property
    def kube(self) -> Any:
        if self._kube is None:
            from vmgitops.kube.client import Kube

            self._kube = Kube()
        return self._kube

    def status_of(self, key: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The freshest status we know: the body's, or our own last write if newer."""
        status = dict(body.get("status") or {})
        written = self.written.get(key)
        if written is None:
            return status
        rv = str((body.get("metadata") or {}).get("resourceVersion") or "")
        if rv and _newer(rv, written.resource_version):
            del self.written[key]  # someone wrote after us: the body is the truth
            return status
        return dict(written.status)

    def forget(self, key: str) -> None:
        self.written.pop(key, None)
        self.seen_fingerprints.pop(key, None)
        self.locks.pop(key, None)
        self.probed_at.pop(key, None)
        self.metrics.target_deleted(key)

    def spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


_state: _State | None = None


def state() -> _State:
    global _state
    if _state is None:
        _state = _State()
    return _state


# -- indices: everything a probe needs, in memory -------------------------------------


@kopf.index("", "v1", "secrets", when=lambda body, **_: body.get("type") in CREDENTIAL_TYPES)
async def credential_secrets(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    # The index holds the Secrets in memory so that a probe costs no API call; only the
    # types that can hold credentials are kept.
    return {
        (namespace, name): {
            "type": body.get("type"),
            "data": dict(body.get("data") or {}),
            "metadata": {
                "uid": body.meta.get("uid"),
                "resourceVersion": body.meta.get("resourceVersion"),
                "namespace": namespace,
                "name": name,
            },
        }
    }


def _snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a probe and an Event need from a target body, detached from kopf's view."""
    m = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion") or meta.API_VERSION,
        "kind": body.get("kind") or meta.TARGET.kind,
        "metadata": {
            "namespace": m.get("namespace"),
            "name": m.get("name"),
            "uid": m.get("uid"),
            "generation": m.get("generation"),
            "resourceVersion": m.get("resourceVersion"),
            "deletionTimestamp": m.get("deletionTimestamp"),
        },
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


# Index handlers are coroutines, not plain functions: kopf runs those in worker
# threads, a thread hop per handler per watch event (see handlers/applications.py).
@kopf.index(*TARGETS)
async def target_bodies(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    return {(namespace, name): _snapshot(body)}


@kopf.index(*TARGETS)
async def target_references(*, namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> Any:
    """("secret", ns, secret) and ("bastion", ns, target) -> the targets that use them."""
    refs: dict[tuple[str, str | None, str], str] = {}
    for secret in target_probe.referenced_secrets(spec):
        refs[("secret", namespace, secret)] = name
    hop = target_probe.bastion_name(spec)
    if hop:
        refs[("bastion", namespace, hop)] = name
    return refs


def _one(index: kopf.Index[Any, Any], key: tuple[Any, ...]) -> Mapping[str, Any] | None:
    for value in index.get(key, []):
        return value  # type: ignore[no-any-return]
    return None


# -- one probe ------------------------------------------------------------------------


async def _reconcile(
    body: Mapping[str, Any],
    credential_secrets: kopf.Index[Any, Any],
    target_bodies: kopf.Index[Any, Any],
    *,
    reset_trust: bool = False,
    retry_now: bool = False,
) -> None:
    """Probe one target (unless paused) and write what changed; never raises on a VM."""
    st = state()
    s = settings_mod.current()
    m = body.get("metadata") or {}
    namespace, name = str(m.get("namespace")), str(m.get("name"))
    key = f"{namespace}/{name}"
    async with st.lock(key):
        snap = _snapshot(body)  # the freshest body: kopf keeps updating its view
        if snap["metadata"].get("deletionTimestamp"):
            return  # being deleted: nothing to report on
        if reset_trust:
            st.pool.reset(key)
        elif retry_now:
            st.pool.retry_now(key)
        status = st.status_of(key, snap)
        snap["status"] = status
        generation = int(snap["metadata"].get("generation") or 0)
        paused = bool(snap["spec"].get("paused"))
        outcome = None
        if not paused:
            started = time.monotonic()
            st.probed_at[key] = started
            outcome = await target_probe.probe(
                snap,
                pool=st.pool,
                key_cache=st.keys,
                timeouts=st.timeouts,
                secrets=lambda ns, n: _one(credential_secrets, (ns, n)),
                targets=lambda ns, n: _one(target_bodies, (ns, n)),
            )
            seconds = time.monotonic() - started
            if st.pool.closed:
                return  # the operator is stopping: "the pool is closed" says nothing of the VM
            st.metrics.probe_finished(key, outcome.reason, seconds)
            log.debug("%s: probed in %.1f ms: %s", key, seconds * 1000, outcome.reason)
        else:
            st.metrics.target_paused(key)
        update = next_status(
            status,
            outcome,
            generation=generation,
            now=datetime.now(UTC),
            paused=paused,
            refresh_after=s.probe_time_refresh,
        )
        if update.patch:
            from vmgitops.kube.client import NotFound

            try:
                obj = await st.kube.patch_status(meta.TARGET, namespace, name, update.patch)
            except NotFound:
                st.forget(key)
                return
            st.written[key] = _Written(
                str((obj.get("metadata") or {}).get("resourceVersion") or ""),
                dict(obj.get("status") or {}),
            )
        if update.transition is not None:
            t = update.transition
            kopf.event(kopf.Body(snap), type=t.type, reason=t.reason, message=t.message)  # type: ignore[arg-type]
            log.info("%s: Reachable %s (%s)", key, t.reason, t.message)


# -- triggers -------------------------------------------------------------------------


def _tofu(spec: Mapping[str, Any]) -> bool:
    return ((spec.get("hostKey") or {}).get("policy") or "Pinned") == "TrustOnFirstUse"


@kopf.on.event(*TARGETS)
async def target_event(*, body: kopf.Body, type: str | None, **kwargs: Any) -> None:
    st = state()
    key = f"{body.meta.namespace}/{body.meta.name}"
    if type == "DELETED":
        st.forget(key)
        await st.pool.drop(key)
        return
    # Watch events arrive in order, so a fingerprint that was there and is gone was
    # cleared by someone: the user's "trust the VM's current key again".
    fingerprint = body.status.get("hostKeyFingerprint")
    seen = st.seen_fingerprints.get(key)
    if fingerprint:
        st.seen_fingerprints[key] = str(fingerprint)
    else:
        st.seen_fingerprints.pop(key, None)
    cleared = bool(seen) and not fingerprint and _tofu(body.spec)
    if cleared:
        log.info(
            "%s: status.hostKeyFingerprint was cleared: trusting the next key on first use", key
        )
        written = st.written.get(key)
        if written is not None:
            written.status.pop("hostKeyFingerprint", None)
    # A new or edited spec is probed at once; status-only events (our own writes) are not.
    generation = body.meta.get("generation")
    if body.status.get("observedGeneration") == generation and not cleared:
        return
    written = st.written.get(key)
    if (
        not cleared
        and written is not None
        and written.status.get("observedGeneration") == generation
        and not _newer(str(body.meta.get("resourceVersion") or ""), written.resource_version)
    ):
        return  # our own write for this generation has not reached the watch yet
    # An edit is the user's "try again": a cached failure (even a host key mismatch,
    # checked again before any credential is sent) does not outlive it.
    await _reconcile(
        body,
        kwargs["credential_secrets"],
        kwargs["target_bodies"],
        reset_trust=cleared,
        retry_now=body.status.get("observedGeneration") != generation,
    )


def _interval() -> float:
    return settings_mod.current().probe_interval


@kopf.timer(
    *TARGETS,
    interval=_interval(),
    sharp=False,
    initial_delay=_interval() * settings_mod.current().probe_jitter,
)
async def target_probe_timer(*, body: kopf.Body, **kwargs: Any) -> None:
    # The timer fires every probe_interval; a large fleet probes each target only every
    # few firings, so that the whole fleet stays within probe_budget probes a second.
    if not _timer_due(f"{body.meta.namespace}/{body.meta.name}", len(kwargs["target_bodies"])):
        return
    s = settings_mod.current()
    # Spread the fleet's probes so 5,000 targets never hit the API server at once.
    await asyncio.sleep(random.uniform(0, s.probe_interval * s.probe_jitter))  # noqa: S311
    await _reconcile(body, kwargs["credential_secrets"], kwargs["target_bodies"])


def _timer_due(key: str, fleet_size: int) -> bool:
    """Whether this firing of a target's timer probes it (see fleet_probe_interval)."""
    s, st = settings_mod.current(), state()
    interval = fleet_probe_interval(fleet_size, s.probe_interval, s.probe_budget)
    if abs(interval - st.announced_interval) > 0.1 * max(interval, st.announced_interval):
        st.announced_interval = interval
        if interval > s.probe_interval:
            log.info(
                "%d targets: each probed every %.0fs (at most %g probes/s fleet-wide, "
                "VMGITOPS_PROBE_BUDGET)",
                fleet_size,
                interval,
                s.probe_budget,
            )
    return probe_due(st.probed_at.get(key), time.monotonic(), interval, s.probe_interval)


def _secret_digest(body: Mapping[str, Any]) -> str:
    data = body.get("data") or {}
    h = hashlib.sha256(str(body.get("type")).encode())
    for k in sorted(data):
        h.update(b"\0" + k.encode() + b"\0" + str(data[k]).encode())
    return h.hexdigest()


def dependents(
    namespace: str,
    secret: str,
    lookup: Callable[[tuple[str, str, str]], Iterable[str]],
) -> list[str]:
    """Targets whose connection uses the Secret, directly or through their bastions."""
    found: list[str] = []
    frontier = list(lookup(("secret", namespace, secret)))
    for _level in range(BASTION_LEVELS + 1):
        nxt: list[str] = []
        for name in frontier:
            if name in found:
                continue
            found.append(name)
            nxt.extend(lookup(("bastion", namespace, name)))
        frontier = nxt
        if not frontier:
            break
    return found


@kopf.on.event("", "v1", "secrets", when=lambda body, **_: body.get("type") in CREDENTIAL_TYPES)
async def secret_event(
    *, body: kopf.Body, type: str | None, namespace: str | None, name: str, **kwargs: Any
) -> None:
    # Re-probe at once the targets that use a Secret that was created, edited or deleted,
    # rather than waiting for their timers. The initial listing only records digests.
    st = state()
    ns = str(namespace)
    skey = (ns, name)
    digest = None if type == "DELETED" else _secret_digest(body)
    before = st.secret_digests.get(skey)
    if digest is None:
        st.secret_digests.pop(skey, None)
    else:
        st.secret_digests[skey] = digest
    if type is None or before == digest:
        return
    references: kopf.Index[Any, Any] = kwargs["target_references"]
    names = dependents(ns, name, lambda k: list(references.get(k, [])))
    if not names:
        return
    log.info("Secret %s/%s changed: re-probing %d target(s)", ns, name, len(names))
    # After a deletion, wait a moment: when a namespace is being emptied, the targets'
    # own deletions arrive on another watch, and they need no CredentialsMissing Event.
    delay = DELETED_SECRET_DELAY if digest is None else 0.0
    for target in names:
        st.spawn(_reprobe(ns, target, delay, kwargs), name=f"reprobe {ns}/{target}")


async def _reprobe(namespace: str, name: str, delay: float, indices: Mapping[str, Any]) -> None:
    st = state()
    if delay:
        await asyncio.sleep(delay)
    bodies_index: kopf.Index[Any, Any] = indices["target_bodies"]
    body = _one(bodies_index, (namespace, name))  # the latest, after the delay
    if body is None:
        return
    async with st.fanout:
        try:
            await _reconcile(body, indices["credential_secrets"], bodies_index)
        except Exception:
            log.exception("re-probe of %s/%s failed", namespace, name)


@kopf.on.cleanup()
async def close_pool(**_: Any) -> None:
    if _state is not None:
        for task in list(_state.tasks):
            task.cancel()
        await asyncio.gather(*_state.tasks, return_exceptions=True)
        await _state.pool.close()
