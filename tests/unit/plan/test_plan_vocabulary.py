"""Health ordering, sync status, diffs and the inventory format."""

from __future__ import annotations

import pytest

from vmgitops.plan.diff import SENSITIVE, content_diff, is_binary, unified
from vmgitops.plan.health import Health, SyncStatus, combine_sync, is_worse, worst
from vmgitops.plan.inventory import (
    Inventory,
    InventoryUnreadable,
    ReleaseInventory,
    ReleaseRecord,
    inventory_changes,
    parse_inventory,
)
from vmgitops.plan.steps import (
    InstallPackage,
    PruneDirectory,
    RestartService,
    StartService,
    Step,
    WriteFile,
)


@pytest.mark.parametrize(
    ("a", "b", "worse"),
    [
        pytest.param(Health.DEGRADED, Health.HEALTHY, True, id="degraded is worse than healthy"),
        pytest.param(Health.UNKNOWN, Health.DEGRADED, True, id="unknown is the worst"),
        pytest.param(Health.PROGRESSING, Health.SUSPENDED, True, id="progressing after suspended"),
        pytest.param(Health.MISSING, Health.PROGRESSING, True, id="missing after progressing"),
        pytest.param(Health.HEALTHY, Health.HEALTHY, False, id="not worse than itself"),
        pytest.param(Health.HEALTHY, Health.MISSING, False, id="healthy is never worse"),
    ],
)
def test_is_worse(a: Health, b: Health, worse: bool) -> None:
    assert is_worse(a, b) is worse


def test_worst() -> None:
    assert worst() is Health.HEALTHY
    assert worst(Health.HEALTHY, Health.MISSING, Health.PROGRESSING) is Health.MISSING
    assert str(Health.DEGRADED) == "Degraded"


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        pytest.param((), SyncStatus.SYNCED, id="nothing is synced"),
        pytest.param(
            (SyncStatus.SYNCED, SyncStatus.UNKNOWN),
            SyncStatus.UNKNOWN,
            id="unknown wins over synced",
        ),
        pytest.param(
            (SyncStatus.UNKNOWN, SyncStatus.OUT_OF_SYNC),
            SyncStatus.OUT_OF_SYNC,
            id="out of sync wins",
        ),
    ],
)
def test_combine_sync(statuses: tuple[SyncStatus, ...], expected: SyncStatus) -> None:
    assert combine_sync(*statuses) is expected


@pytest.mark.parametrize(
    ("old", "new", "exists", "sensitive", "expected"),
    [
        pytest.param(
            b"a\n", b"b\n", True, False, "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n", id="text"
        ),
        pytest.param(
            None, b"a\n", False, False, "--- /dev/null\n+++ b/f\n@@ -0,0 +1 @@\n+a\n", id="new file"
        ),
        pytest.param(
            b"a",
            b"a\n",
            True,
            False,
            "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+a\n",
            id="missing final newline shown",
        ),
        pytest.param(
            b"\x00", b"\x01\x00", True, False, "binary content differs (1 -> 2 bytes)", id="binary"
        ),
        pytest.param(
            b"\xff", b"x", True, False, "binary content differs (1 -> 1 bytes)", id="not utf-8"
        ),
        pytest.param(
            None,
            b"x",
            True,
            False,
            "content differs (sha256 ? -> 2d711642b726, 1 bytes)",
            id="content not fetched (too big)",
        ),
        pytest.param(b"pw=1", b"pw=2", True, True, SENSITIVE, id="sensitive: hidden"),
    ],
)
def test_content_diff(
    old: bytes | None, new: bytes, exists: bool, sensitive: bool, expected: str
) -> None:
    assert content_diff("/f", old, new, old_exists=exists, sensitive=sensitive) == expected


def test_long_diffs_are_cut() -> None:
    out = unified("/f", "", "".join(f"{i}\n" for i in range(1000)))
    assert out.endswith("more diff lines)\n") and out.count("\n") == 401


def test_is_binary() -> None:
    assert is_binary(b"a\x00") and not is_binary("caf\u00e9".encode())


INV = Inventory(
    files=frozenset({"/etc/a"}),
    packages=frozenset({"curl"}),
    releases=(ReleaseInventory("/opt/a", (ReleaseRecord("r1", "d1"), ReleaseRecord("r2", None))),),
)


def test_inventory_round_trip() -> None:
    assert parse_inventory(INV.to_bytes()) == INV
    assert parse_inventory(None) == Inventory()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"{", id="not json"),
        pytest.param(b"[]", id="not an object"),
        pytest.param(b'{"version": 2}', id="a newer version"),
        pytest.param(b'{"version": 1, "files": "/etc/a"}', id="files not a list"),
        pytest.param(b'{"version": 1, "releases": [{"path": "/a"}]}', id="release without records"),
    ],
)
def test_unreadable_inventory(raw: bytes) -> None:
    with pytest.raises(InventoryUnreadable):
        parse_inventory(raw)


def test_inventory_union_covers_and_changes() -> None:
    other = Inventory(
        files=frozenset({"/etc/b"}),
        releases=(ReleaseInventory("/opt/a", (ReleaseRecord("r3", "d3"),)),),
    )
    both = INV.union(other)
    assert both.covers(INV) and both.covers(other) and not INV.covers(other)
    rel = both.release_at("/opt/a")
    assert rel is not None and [r.id for r in rel.releases] == ["r1", "r2", "r3"]
    assert inventory_changes(INV, other) == (
        "- file /etc/a\n+ file /etc/b\n- package curl\n"
        "- release /opt/a/releases/r1\n- release /opt/a/releases/r2\n+ release /opt/a/releases/r3\n"
    )


@pytest.mark.parametrize(
    ("step", "text"),
    [
        pytest.param(InstallPackage(("curl", "jq"), "apt"), "install curl, jq (apt)", id="install"),
        pytest.param(
            PruneDirectory("/var/lib/a"),
            "remove directory /var/lib/a if empty (no longer in the manifest)",
            id="prune directory keeps data",
        ),
        pytest.param(StartService("a.service"), "start a.service", id="start"),
        pytest.param(
            RestartService("a.service", None, "unit changed"),
            "restart a.service (unit changed)",
            id="restart says why",
        ),
        pytest.param(
            WriteFile("/etc/a", b"secret", "f" * 64, 0o600, content_changed=False),
            "fix mode/owner of /etc/a (0600)",
            id="metadata only",
        ),
    ],
)
def test_describe(step: Step, text: str) -> None:
    assert step.describe() == text


def test_step_repr_never_shows_content() -> None:
    step = WriteFile("/etc/a", b"hunter2", "ab" * 32, 0o600, sensitive=True)
    assert "hunter2" not in repr(step) and "abab" not in repr(step)
