"""Which watch events of a VMApplication wake its daemon: not the tick's own status
writes, seen while the request annotation it consumed is still set."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import kopf
import pytest

from vmgitops.handlers import applications as handlers
from vmgitops.reconcile.app_controller import AppReconciler, Deps


def reconciler() -> AppReconciler:
    async def nothing(*_: Any) -> None:
        return None

    deps = Deps(
        source=None,  # type: ignore[arg-type]
        driver=None,  # type: ignore[arg-type]
        targets_in=lambda ns: [],
        secrets=lambda ns, n: None,
        write_status=nothing,
        write_targets=nothing,
        lists_app=lambda n: False,
        remove_annotations=nothing,
        event=lambda t, r, m: None,
    )
    return AppReconciler("ns", "web", deps)


@pytest.fixture
def app() -> Iterator[tuple[AppReconciler, asyncio.Event]]:
    r, wake = reconciler(), asyncio.Event()
    handlers._reconcilers["ns/web"], handlers._wake["ns/web"] = r, wake
    yield r, wake
    handlers._reconcilers.pop("ns/web", None)
    handlers._wake.pop("ns/web", None)


def body(annotations: dict[str, str], generation: int = 3, observed: int = 3) -> kopf.Body:
    return kopf.Body(
        {
            "metadata": {
                "namespace": "ns",
                "name": "web",
                "generation": generation,
                "annotations": annotations,
            },
            "status": {"observedGeneration": observed},
        }
    )


@pytest.mark.parametrize(
    ("annotations", "generation", "wakes"),
    [
        pytest.param({"vmgitops.io/refresh": "r1"}, 3, False, id="own-write-refresh-consumed"),
        pytest.param({"vmgitops.io/sync": "s1"}, 3, False, id="own-write-sync-consumed"),
        pytest.param({"vmgitops.io/refresh": "r2"}, 3, True, id="new-refresh"),
        pytest.param({"vmgitops.io/sync": "s2"}, 3, True, id="new-sync"),
        pytest.param({}, 4, True, id="new-spec"),
        pytest.param({}, 3, False, id="status-only"),
    ],
)
async def test_application_event_wakes_only_for_new_work(
    app: tuple[AppReconciler, asyncio.Event],
    annotations: dict[str, str],
    generation: int,
    wakes: bool,
) -> None:
    r, wake = app
    r.mem.tick_generation = 3
    r.mem.consumed = {"vmgitops.io/refresh": "r1", "vmgitops.io/sync": "s1"}
    await handlers.application_event(body=body(annotations, generation), type="MODIFIED")
    assert wake.is_set() is wakes
