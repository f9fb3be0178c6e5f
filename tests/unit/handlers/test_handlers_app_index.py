"""A new application's first selection waits for the operator's target index to catch up
with the API server (kopf's index follows a watch that can lag a minute behind when
thousands of targets were just created)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from vmgitops.handlers import applications as handlers


class FakeAPI:
    def __init__(self, names: set[str], fail: bool = False) -> None:
        self.names_now, self.fail = names, fail
        self.lists = 0

    async def names(self, kind: Any, namespace: str) -> set[str]:
        self.lists += 1
        if self.fail:
            raise ConnectionRefusedError("the API server is down")
        return set(self.names_now)


class Stopped:
    """kopf.DaemonStopped, as far as the wait uses it."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self) -> None:
        await self.event.wait()


def body(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {}}}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    fake = FakeAPI({f"vm{i}" for i in range(6)})
    checks: dict[str, Any] = {}
    monkeypatch.setattr(handlers, "_kube", fake)
    monkeypatch.setattr(handlers, "_catch_ups", checks)
    monkeypatch.setattr(handlers, "INDEX_CATCH_UP", 10.0)
    yield fake
    for _, check in checks.values():
        check.cancel()


async def test_first_selection_waits_for_the_lagging_index(api: FakeAPI) -> None:
    # Half the fleet is indexed when the application appears; the rest a moment later.
    index: dict[str, list[dict[str, Any]]] = {"ns": [body(f"vm{i}") for i in range(3)]}

    async def watch_catches_up() -> None:
        await asyncio.sleep(0.2)
        index["ns"] += [body(f"vm{i}") for i in range(3, 6)]

    late = asyncio.create_task(watch_catches_up())
    started = asyncio.get_running_loop().time()
    await handlers._index_caught_up("ns/web", "ns", index, 0.0, Stopped())  # type: ignore[arg-type]
    await late
    assert len(index["ns"]) == 6, "returned before every listed target was indexed"
    assert asyncio.get_running_loop().time() - started >= 0.2
    assert api.lists == 1


async def test_applications_created_together_share_one_list(api: FakeAPI) -> None:
    index: dict[str, list[dict[str, Any]]] = {"ns": [body(f"vm{i}") for i in range(5)]}

    async def start(i: int) -> None:
        # Daemons start one after the other while the first check still waits.
        await asyncio.sleep(0.01 * i)
        since = handlers.time.monotonic()
        await handlers._index_caught_up(f"ns/app{i}", "ns", index, since, Stopped())  # type: ignore[arg-type]

    async def last_target_indexed() -> None:
        await asyncio.sleep(0.3)
        index["ns"].append(body("vm5"))

    await asyncio.gather(last_target_indexed(), *(start(i) for i in range(20)))
    assert api.lists == 1
    # An application created after that check gets a fresh one.
    later = handlers.time.monotonic() + 1
    await handlers._index_caught_up("ns/new", "ns", index, later, Stopped())  # type: ignore[arg-type]
    assert api.lists == 2


async def test_api_down_or_stopping_does_not_block_the_daemon(
    api: FakeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    api.fail = True
    await handlers._index_caught_up("ns/web", "ns", {}, 0.0, Stopped())  # type: ignore[arg-type]
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.getMessage() for r in shown] == [
        "ns/web: could not list the namespace's targets (ConnectionRefusedError); "
        "selecting from the operator's index as it is"
    ]
    assert all(r.exc_info is None for r in shown), "a traceback only at DEBUG"

    api.fail = False
    handlers._catch_ups.clear()
    stopped = Stopped()
    stopped.event.set()
    never = {"ns": [body("vm0")]}  # the rest never arrives
    await asyncio.wait_for(
        handlers._index_caught_up("ns/web", "ns", never, 0.0, stopped),  # type: ignore[arg-type]
        timeout=1,
    )
