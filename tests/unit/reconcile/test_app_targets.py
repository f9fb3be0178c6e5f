"""The per-target status writer: one merge patch per changed target, no GET, and never
a write of what the target already holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from vmgitops.reconcile.app_targets import TargetStatusBook, catch_up


class FakeAPI:
    def __init__(self) -> None:
        self.bodies: dict[tuple[str, str], dict[str, Any]] = {}
        self.patches: list[tuple[str, list[dict[str, Any]]]] = []
        self.rv = 100

    def add(self, name: str, applications: list[dict[str, Any]] | None = None) -> None:
        self.rv += 1
        self.bodies[("ns", name)] = {
            "metadata": {"name": name, "resourceVersion": str(self.rv)},
            "status": {"applications": applications or []},
        }

    def body(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.bodies.get((namespace, name))

    async def patch(
        self, namespace: str, name: str, applications: list[dict[str, Any]]
    ) -> Mapping[str, Any] | None:
        self.patches.append((name, applications))
        if (namespace, name) not in self.bodies:
            return None
        self.rv += 1
        # The API server's answer; the watched body (self.bodies) lags behind.
        return {
            "metadata": {"resourceVersion": str(self.rv)},
            "status": {"applications": applications},
        }


async def test_writes_only_changes_and_trusts_its_own_write_over_a_lagging_watch() -> None:
    api = FakeAPI()
    api.add("vm1")
    api.add("vm2", [{"name": "web", "sync": "Synced"}])
    book = TargetStatusBook(api.patch, api.body)
    sent = await book.write(
        "ns",
        "web",
        {"vm1": {"name": "web", "sync": "Synced"}, "vm2": {"name": "web", "sync": "Synced"}},
    )
    assert sent == 1 and [p[0] for p in api.patches] == ["vm1"]
    # The watch has not delivered our write yet: the same entry again sends nothing.
    assert await book.write("ns", "web", {"vm1": {"name": "web", "sync": "Synced"}}) == 0
    assert book.has_entry("ns", "vm1", "web")


async def test_a_newer_watched_body_wins_over_our_last_write() -> None:
    api = FakeAPI()
    api.add("vm1")
    book = TargetStatusBook(api.patch, api.body)
    await book.write("ns", "web", {"vm1": {"name": "web", "sync": "Synced"}})
    # Someone else (another application's writer, a user) wrote after us.
    api.rv += 10
    api.bodies[("ns", "vm1")] = {
        "metadata": {"name": "vm1", "resourceVersion": str(api.rv)},
        "status": {"applications": [{"name": "db"}, {"name": "web", "sync": "Synced"}]},
    }
    await book.write("ns", "web", {"vm1": {"name": "web", "sync": "OutOfSync"}})
    assert api.patches[-1][1] == [{"name": "db"}, {"name": "web", "sync": "OutOfSync"}]


async def test_removal_and_missing_targets() -> None:
    api = FakeAPI()
    api.add("vm1", [{"name": "web"}, {"name": "db"}])
    book = TargetStatusBook(api.patch, api.body)
    assert await book.write("ns", "web", {"vm1": None, "gone": None}) == 1
    assert api.patches == [("vm1", [{"name": "db"}])]
    assert not book.has_entry("ns", "vm1", "web")
    assert await book.write("ns", "web", {"vm1": None}) == 0


class Clock:
    """A fake monotonic clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    ("api", "indexed_at", "patience", "missing", "lists"),
    [
        pytest.param({"a", "b"}, {"a": 0, "b": 0}, 60, set(), 1, id="already-indexed"),
        pytest.param(
            {"a", "b", "c"}, {"a": 0, "b": 3, "c": 7}, 60, set(), 1, id="waits-for-the-lag"
        ),
        pytest.param({"a", "b"}, {"a": 0}, 5, {"b"}, 1, id="gives-up-after-patience"),
        pytest.param(set(), {}, 60, set(), 1, id="empty-namespace"),
    ],
)
async def test_catch_up_waits_for_the_index(
    api: set[str], indexed_at: dict[str, float], patience: float, missing: set[str], lists: int
) -> None:
    clock = Clock()
    calls = []

    async def listed() -> set[str]:
        calls.append(clock.now)
        return set(api)

    def indexed() -> set[str]:
        return {n for n, t in indexed_at.items() if t <= clock.now}

    got = await catch_up(listed, indexed, patience=patience, clock=clock, sleep=clock.sleep)
    assert got == missing
    assert len(calls) == lists
    if not missing:
        assert clock.now == max(indexed_at.values(), default=0)


async def test_catch_up_relists_so_a_deleted_target_does_not_hold_it() -> None:
    clock = Clock()
    api = {"a", "gone"}

    async def listed() -> set[str]:
        return set(api)

    def indexed() -> set[str]:
        if clock.now >= 2:
            api.discard("gone")  # deleted before the watch delivered it
        return {"a"}

    got = await catch_up(listed, indexed, patience=120, relist=10, clock=clock, sleep=clock.sleep)
    assert got == set()
    assert 10 <= clock.now < 11
