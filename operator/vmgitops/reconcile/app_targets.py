"""Per-target detail of every VMApplication: each target's status.applications.

Written by one merge patch per target that changed, never a GET first: the list to patch
is computed from the freshest copy this process knows (the watched body from the
operator's index, or the API server's answer to our own last write, whichever has the
newer resourceVersion). Changes are handed over in batches (after a rollout batch, after
a tick's observation), written with bounded concurrency, and an entry equal to what the
target already holds is not written at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vmgitops.reconcile.app_status import merge_entry

log = logging.getLogger("vmgitops.applications")

#: (namespace, target, applications) -> the object the API server returned, or None
#: when the target does not exist (any more).
Patcher = Callable[[str, str, list[dict[str, Any]]], Awaitable[Mapping[str, Any] | None]]
#: (namespace, target) -> the target's body as last watched, or None.
BodyLookup = Callable[[str, str], Mapping[str, Any] | None]


def _newer(a: str, b: str) -> bool:
    """Whether resourceVersion `a` is later than `b` (etcd revisions are integers)."""
    try:
        return int(a) > int(b)
    except ValueError:
        return a != b


@dataclass(frozen=True)
class _Written:
    resource_version: str
    applications: list[dict[str, Any]]


class TargetStatusBook:
    """What each target's status.applications holds, and the writes that change it."""

    def __init__(self, patch: Patcher, body: BodyLookup, concurrency: int = 16) -> None:
        self._patch, self._body = patch, body
        self._written: dict[tuple[str, str], _Written] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._concurrency = concurrency
        self._sem: asyncio.Semaphore | None = None
        #: Merge patches sent (for the tests and the logs).
        self.patches = 0

    def applications(self, namespace: str, name: str) -> list[dict[str, Any]] | None:
        """The target's freshest status.applications known here; None: no such target."""
        body = self._body(namespace, name)
        if body is None:
            return None
        key = (namespace, name)
        watched = list((body.get("status") or {}).get("applications") or [])
        written = self._written.get(key)
        if written is None:
            return watched
        rv = str((body.get("metadata") or {}).get("resourceVersion") or "")
        if rv and _newer(rv, written.resource_version):
            del self._written[key]  # written after us (or our write arrived): the watch
            return watched
        return [dict(a) for a in written.applications]

    def has_entry(self, namespace: str, name: str, app: str) -> bool:
        return any(a.get("name") == app for a in self.applications(namespace, name) or [])

    async def write(
        self, namespace: str, app: str, changes: Mapping[str, Mapping[str, Any] | None]
    ) -> int:
        """Set (or with None remove) `app`'s entry on each target; returns patches sent."""
        if not changes:
            return 0
        if self._sem is None:
            self._sem = asyncio.Semaphore(self._concurrency)
        sem = self._sem

        async def one(target: str, entry: Mapping[str, Any] | None) -> int:
            async with sem:
                return await self._write_one(namespace, target, app, entry)

        done = await asyncio.gather(*(one(t, e) for t, e in sorted(changes.items())))
        return sum(done)

    async def _write_one(
        self, namespace: str, target: str, app: str, entry: Mapping[str, Any] | None
    ) -> int:
        key = (namespace, target)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            current = self.applications(namespace, target)
            if current is None:
                return 0
            wanted = merge_entry(current, app, entry)
            if wanted == sorted(current, key=lambda a: str(a.get("name"))):
                return 0
            obj = await self._patch(namespace, target, wanted)
            self.patches += 1
            if obj is None:
                self.forget(namespace, target)
                return 1
            self._written[key] = _Written(
                str((obj.get("metadata") or {}).get("resourceVersion") or ""),
                list((obj.get("status") or {}).get("applications") or []),
            )
            return 1

    def forget(self, namespace: str, name: str) -> None:
        self._written.pop((namespace, name), None)
        self._locks.pop((namespace, name), None)


#: Lists the names of every target the API server holds in the namespace now.
NameLister = Callable[[], Awaitable[set[str]]]


async def catch_up(
    listed: NameLister,
    indexed: Callable[[], set[str]],
    *,
    patience: float,
    poll: float = 0.5,
    relist: float = 15.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> set[str]:
    """Waits until the operator's target index holds every target the API server lists;
    returns the names still missing after `patience` seconds (empty: caught up).

    kopf's index follows the watch stream, and only the operator's start waits for it to
    be complete. A busy operator (thousands of targets just created, each event indexed
    in turn) may be a minute behind the API server; an application created meanwhile
    would otherwise select the part of its fleet that happens to be indexed, size its
    batches for that part, and take the rest as TargetJoined a tick later. The list is
    taken again now and then, so that a target deleted before it was indexed does not
    hold the wait to the end.
    """
    deadline = clock() + patience
    names = await listed()
    listed_at = clock()
    while True:
        missing = names - indexed()
        if not missing or clock() >= deadline:
            return missing
        await sleep(poll)
        if clock() - listed_at >= relist:
            names = await listed()
            listed_at = clock()
