"""Operator settings from VMGITOPS_* environment variables: defaults, values, refusals."""

from __future__ import annotations

import pytest

from vmgitops.settings import Settings


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        pytest.param({}, "observe_concurrency", 32, id="observe-default-unchanged"),
        pytest.param(
            {"VMGITOPS_OBSERVE_CONCURRENCY": "128"}, "observe_concurrency", 128, id="observe-set"
        ),
        pytest.param({"VMGITOPS_OBSERVE_CONCURRENCY": ""}, "observe_concurrency", 32, id="empty"),
        pytest.param({}, "probe_interval", 60.0, id="probe-interval-default"),
        pytest.param({}, "sync_concurrency", 128, id="sync-default"),
        pytest.param({"VMGITOPS_SYNC_CONCURRENCY": "16"}, "sync_concurrency", 16, id="sync-set"),
    ],
)
def test_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], field: str, expected: object
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert getattr(Settings(), field) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({"VMGITOPS_OBSERVE_CONCURRENCY": "0"}, "at least 1", id="zero-stops-all"),
        pytest.param({"VMGITOPS_OBSERVE_CONCURRENCY": "-3"}, "at least 1", id="negative"),
        pytest.param({"VMGITOPS_OBSERVE_CONCURRENCY": "many"}, "not a number", id="word"),
    ],
)
def test_settings_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SystemExit, match=message):
        Settings()
