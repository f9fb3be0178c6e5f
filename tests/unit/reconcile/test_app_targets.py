"""The per-target status writer: one merge patch per changed target, no GET, and never
a write of what the target already holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vmgitops.reconcile.app_targets import TargetStatusBook


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
