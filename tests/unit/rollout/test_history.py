from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from vmgitops.rollout.history import append_history
from vmgitops.rollout.rollback import NoSuchEntry, managed_by_argo, rollback_entry

T0 = datetime(2026, 11, 26, tzinfo=UTC)
T1 = datetime(2026, 11, 27, tzinfo=UTC)


def entry(id_: int, revision: str, phase: str = "Succeeded") -> dict[str, Any]:
    return {"id": id_, "revision": revision, "deployedAt": "2026-11-26T00:00:00Z", "phase": phase}


@pytest.mark.parametrize(
    ("history", "revision", "phase", "expected"),
    [
        pytest.param([], "a", "Succeeded", [(1, "a", "Succeeded")], id="first-entry"),
        pytest.param(
            [entry(1, "a")],
            "b",
            "Failed",
            [(1, "a", "Succeeded"), (2, "b", "Failed")],
            id="new-revision-appends",
        ),
        pytest.param(
            [entry(1, "a"), entry(2, "b", "Failed")],
            "b",
            "Succeeded",
            [(1, "a", "Succeeded"), (2, "b", "Succeeded")],
            id="retry-at-same-revision-updates-the-entry",
        ),
        pytest.param(
            [entry(1, "a")],
            "a",
            "Failed",
            [(1, "a", "Succeeded")],
            id="failed-self-heal-keeps-a-succeeded-deployment",
        ),
        pytest.param(
            [entry(1, "a"), entry(2, "b")],
            "a",
            "Succeeded",
            [(1, "a", "Succeeded"), (2, "b", "Succeeded"), (3, "a", "Succeeded")],
            id="rollback-is-a-new-deployment",
        ),
    ],
)
def test_append_history(
    history: list[dict[str, Any]], revision: str, phase: str, expected: list[tuple[Any, ...]]
) -> None:
    out = append_history(history, revision=revision, phase=phase, deployed_at=T1, limit=10)
    assert [(h["id"], h["revision"], h["phase"]) for h in out] == expected


def test_history_is_trimmed_and_ids_keep_growing() -> None:
    h: list[dict[str, Any]] = []
    for i in range(5):
        h = append_history(h, revision=f"r{i}", phase="Succeeded", deployed_at=T0, limit=3)
    assert [e["id"] for e in h] == [3, 4, 5]
    assert append_history(h, revision="x", phase="Succeeded", deployed_at=T0, limit=0) == []


HISTORY = [entry(1, "a"), entry(2, "b"), entry(3, "c", "Failed"), entry(4, "d")]


@pytest.mark.parametrize(
    ("current", "entry_id", "revision"),
    [
        pytest.param("d", None, "b", id="default-skips-current-and-failed"),
        pytest.param("c", None, "d", id="current-failed-goes-back-to-last-good"),
        pytest.param("d", 1, "a", id="explicit-id"),
        pytest.param("d", 3, "c", id="explicit-id-may-name-a-failed-one"),
    ],
)
def test_rollback_entry(current: str, entry_id: int | None, revision: str) -> None:
    assert rollback_entry(HISTORY, current, entry_id)["revision"] == revision


@pytest.mark.parametrize(
    ("history", "entry_id", "fragment"),
    [
        pytest.param(HISTORY, 9, "ids: 1, 2, 3, 4", id="unknown-id-lists-the-ids"),
        pytest.param([entry(1, "a")], None, "no earlier successful", id="nothing-earlier"),
        pytest.param([], None, "no earlier successful", id="empty-history"),
    ],
)
def test_rollback_entry_missing(
    history: list[dict[str, Any]], entry_id: int | None, fragment: str
) -> None:
    with pytest.raises(NoSuchEntry, match=fragment):
        rollback_entry(history, "a", entry_id)


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        pytest.param({"labels": {"app.kubernetes.io/instance": "shop"}}, "label", id="label"),
        pytest.param(
            {"annotations": {"argocd.argoproj.io/tracking-id": "shop:vmgitops.io/x"}},
            "annotation",
            id="annotation-tracking",
        ),
        pytest.param({"labels": {"app": "web"}}, None, id="not-argo"),
        pytest.param({}, None, id="no-metadata"),
    ],
)
def test_managed_by_argo(metadata: dict[str, Any], fragment: str | None) -> None:
    found = managed_by_argo(metadata)
    assert (found is None) if fragment is None else (found is not None and fragment in found)
