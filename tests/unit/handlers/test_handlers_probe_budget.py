"""The targets' periodic probe: every probe_interval for a small fleet, stretched so a
large fleet stays within probe_budget probes a second."""

from __future__ import annotations

import types
from collections.abc import Iterator

import pytest

from vmgitops import settings as settings_mod
from vmgitops.handlers import targets as handlers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    c = Clock()
    monkeypatch.setattr(handlers, "time", types.SimpleNamespace(monotonic=c.monotonic))
    old = settings_mod.current()
    settings_mod.install(settings_mod.Settings(probe_interval=60, probe_budget=20))
    st = handlers.state()
    saved = dict(st.probed_at)
    st.probed_at.clear()
    yield c
    st.probed_at.clear()
    st.probed_at.update(saved)
    settings_mod.install(old)


@pytest.mark.parametrize(
    ("fleet", "probes_per_target"),
    [
        pytest.param(100, 20, id="100-targets-every-minute"),
        pytest.param(5000, 4, id="5000-targets-every-fifth-minute"),
    ],
)
def test_timer_probes_within_the_fleet_budget(
    clock: Clock, fleet: int, probes_per_target: int
) -> None:
    # Twenty minutes of one target's timer firing every 60 s (probing records the time,
    # as _reconcile does).
    st = handlers.state()
    probes = 0
    for _ in range(20):
        if handlers._timer_due("ns/vm", fleet):
            st.probed_at["ns/vm"] = clock.now
            probes += 1
        clock.now += 60 + 0.5  # kopf waits the interval after the handler returns
    assert probes == probes_per_target
    # Fleet-wide, after the first probe: within the budget of 20 a second.
    assert fleet * (probes - 1) / (20 * 60.5) <= 20
