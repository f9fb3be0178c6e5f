"""kopf glue for VirtualMachineTarget: body in, probe, status patch and Events out."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from vmgitops import settings as settings_mod
from vmgitops.api import meta
from vmgitops.reconcile import target_probe
from vmgitops.reconcile.target_status import next_status
from vmgitops.transport.config import Timeouts
from vmgitops.transport.keys import KeyCache
from vmgitops.transport.pool import ConnectionPool, PoolLimits

log = logging.getLogger("vmgitops.targets")
TARGETS = (meta.GROUP, meta.VERSION, meta.TARGET.plural)
CREDENTIAL_TYPES = ("kubernetes.io/ssh-auth", "kubernetes.io/basic-auth", "Opaque")


class _State:
    """Process-wide state of the target controller, created on the operator's loop."""

    def __init__(self) -> None:
        s = settings_mod.current()
        self.pool = ConnectionPool(
            PoolLimits(
                max_connects=s.max_concurrent_connects,
                max_commands=s.max_inflight_commands,
                idle_timeout=s.idle_close,
                backoff_max=max(30.0, s.probe_interval),
            )
        )
        self.keys = KeyCache()
        self.timeouts = Timeouts(connect=s.connect_timeout, command=s.command_timeout)
        self.locks: dict[str, asyncio.Lock] = {}

    def lock(self, key: str) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())


_state: _State | None = None


def state() -> _State:
    global _state
    if _state is None:
        _state = _State()
    return _state


@kopf.index("", "v1", "secrets", when=lambda body, **_: body.get("type") in CREDENTIAL_TYPES)
def credential_secrets(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
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


@kopf.index(*TARGETS)
def target_bodies(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    return {
        (namespace, name): {
            "metadata": {"namespace": namespace, "name": name},
            "spec": dict(body.spec),
            "status": dict(body.status),
        }
    }


def _one(index: kopf.Index[Any, Any], key: tuple[str, str]) -> Mapping[str, Any] | None:
    for value in index.get(key, []):
        return value  # type: ignore[no-any-return]
    return None


async def _probe_and_patch(
    body: kopf.Body,
    patch: kopf.Patch,
    credential_secrets: kopf.Index[Any, Any],
    target_bodies: kopf.Index[Any, Any],
) -> None:
    st = state()
    s = settings_mod.current()
    key = f"{body.meta.namespace}/{body.meta.name}"
    status = dict(body.status)
    generation = int(body.meta.get("generation") or 0)
    paused = bool(body.spec.get("paused"))
    async with st.lock(key):
        outcome = None
        if not paused:
            outcome = await target_probe.probe(
                body,
                pool=st.pool,
                key_cache=st.keys,
                timeouts=st.timeouts,
                secrets=lambda ns, n: _one(credential_secrets, (ns, n)),
                targets=lambda ns, n: _one(target_bodies, (ns, n)),
            )
        update = next_status(
            status,
            outcome,
            generation=generation,
            now=datetime.now(UTC),
            paused=paused,
            refresh_after=s.probe_time_refresh,
        )
    for k, v in update.patch.items():
        patch.status[k] = v
    if update.transition is not None:
        t = update.transition
        kopf.event(body, type=t.type, reason=t.reason, message=t.message)
        log.info("%s: Reachable %s (%s)", key, t.reason, t.message)


@kopf.on.event(*TARGETS)
async def target_event(*, body: kopf.Body, patch: kopf.Patch, type: str, **kwargs: Any) -> None:
    # A new or edited spec is probed at once; status-only events (our own writes) are not.
    if type == "DELETED":
        await state().pool.drop(f"{body.meta.namespace}/{body.meta.name}")
        return
    generation = body.meta.get("generation")
    if body.status.get("observedGeneration") == generation:
        return
    await _probe_and_patch(body, patch, kwargs["credential_secrets"], kwargs["target_bodies"])


def _interval() -> float:
    return settings_mod.current().probe_interval


@kopf.timer(
    *TARGETS,
    interval=_interval(),
    sharp=False,
    initial_delay=_interval() * settings_mod.current().probe_jitter,
)
async def target_probe_timer(*, body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
    s = settings_mod.current()
    # Spread the fleet's probes so 5,000 targets never hit the API server at once.
    await asyncio.sleep(random.uniform(0, s.probe_interval * s.probe_jitter))  # noqa: S311
    await _probe_and_patch(body, patch, kwargs["credential_secrets"], kwargs["target_bodies"])


@kopf.on.cleanup()
async def close_pool(**_: Any) -> None:
    if _state is not None:
        await _state.pool.close()
