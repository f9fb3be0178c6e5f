"""spec.source.path inside a checkout, read-only trees, and garbage collection."""

from __future__ import annotations

import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from vmgitops.source import PathEscape, PathNotFound, checked_subpath, resolve_app_folder
from vmgitops.source import checkout as checkout_mod
from vmgitops.source.checkout import CheckoutStore, TreeLimits, make_read_only, remove_tree


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        pytest.param(".", (), id="dot-is-root"),
        pytest.param("", (), id="empty-is-root"),
        pytest.param(None, (), id="none-is-root"),
        pytest.param("apps/web", ("apps", "web"), id="nested"),
        pytest.param("apps/web/", ("apps", "web"), id="trailing-slash"),
        pytest.param("./apps//web", ("apps", "web"), id="dot-and-double-slash"),
        pytest.param("apps/..web", ("apps", "..web"), id="dots-inside-a-name"),
    ],
)
def test_checked_subpath_accepts(path: str | None, parts: tuple[str, ...]) -> None:
    assert checked_subpath(path).parts == parts


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("..", id="parent"),
        pytest.param("apps/../../etc", id="dot-dot-in-the-middle"),
        pytest.param("/etc", id="absolute"),
        pytest.param("apps/\x00web", id="nul-byte"),
        pytest.param("apps/\nweb", id="newline"),
    ],
)
def test_checked_subpath_refuses(path: str) -> None:
    with pytest.raises(PathEscape):
        checked_subpath(path)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "apps" / "web").mkdir(parents=True)
    (root / "apps" / "web" / "vmapp.yaml").write_text("files: []\n")
    (root / "README").write_text("hi\n")
    (tmp_path / "outside").mkdir()
    (root / "escape").symlink_to("../outside")
    (root / "abs-escape").symlink_to("/etc")
    (root / "web-link").symlink_to("apps/web")
    (root / "loop").symlink_to("loop")
    return root


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param(".", "", id="root"),
        pytest.param("apps/web", "apps/web", id="folder"),
        pytest.param("web-link", "apps/web", id="symlink-inside-is-followed"),
    ],
)
def test_resolve_app_folder(tree: Path, path: str, expected: str) -> None:
    assert resolve_app_folder(tree, path) == tree.resolve() / expected


@pytest.mark.parametrize(
    ("path", "error"),
    [
        pytest.param("escape", PathEscape, id="relative-symlink-out"),
        pytest.param("abs-escape", PathEscape, id="absolute-symlink-out"),
        pytest.param("escape/..", PathEscape, id="dot-dot-after-symlink"),
        pytest.param("apps/api", PathNotFound, id="missing-folder"),
        pytest.param("README", PathNotFound, id="file-not-folder"),
        pytest.param("loop", PathNotFound, id="symlink-loop"),
    ],
)
def test_resolve_app_folder_refuses(tree: Path, path: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        resolve_app_folder(tree, path)
    assert type(info.value) is error


def test_make_read_only_and_remove(tree: Path) -> None:
    script = tree / "apps" / "web" / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    make_read_only(tree)
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in [*dirnames, *filenames]:
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            if not stat.S_ISLNK(mode):
                assert stat.S_IMODE(mode) & 0o222 == 0, name
    assert stat.S_IMODE(script.stat().st_mode) == 0o555
    assert stat.S_IMODE(tree.stat().st_mode) & 0o222 == 0
    remove_tree(tree)
    assert not tree.exists()
    assert list(tree.parent.glob(".trash-*")) == []


def test_remove_missing_tree_is_fine(tmp_path: Path) -> None:
    remove_tree(tmp_path / "nothing")


def _fake_checkout(store: CheckoutStore, char: str, used: float) -> str:
    sha = char * 40
    path = store.path_of(sha)
    (path / "d").mkdir(parents=True)
    (path / "d" / "f").write_text(char)
    make_read_only(path)
    os.utime(path, (used, used))
    return sha


def test_gc_keeps_most_recently_used_protected_and_fresh(tmp_path: Path) -> None:
    store = CheckoutStore(tmp_path / "checkouts", timeout=10, limits=TreeLimits())
    now = time.time()
    old = {c: _fake_checkout(store, c, now - 7200 - i * 60) for i, c in enumerate("abcde")}
    fresh = _fake_checkout(store, "f", now - 5)
    stale_tmp = store.root / ".tmp-x"
    stale_tmp.mkdir()
    os.utime(stale_tmp, (now - 7200, now - 7200))
    recent_tmp = store.root / ".tmp-y"
    recent_tmp.mkdir()

    removed = store.gc(keep=2, protect=[old["e"].upper()], grace=600)

    assert sorted(removed) == sorted([old["b"], old["c"], old["d"]])
    left = [sha for _, sha in store.entries()]
    assert left == [fresh, old["a"], old["e"]]
    assert not stale_tmp.exists() and recent_tmp.exists()


def test_existing_marks_use(tmp_path: Path) -> None:
    store = CheckoutStore(tmp_path / "checkouts", timeout=10, limits=TreeLimits())
    sha = _fake_checkout(store, "a", time.time() - 3600)
    assert store.existing("b" * 40) is None
    assert store.existing(sha) == store.path_of(sha)
    assert time.time() - store.path_of(sha).stat().st_mtime < 60


def test_gc_tolerates_entries_vanishing_while_it_scans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker thread removes checkouts and index files between listing and stat."""
    store = CheckoutStore(tmp_path / "checkouts", timeout=10, limits=TreeLimits())
    now = time.time()
    for i, c in enumerate("abc"):
        _fake_checkout(store, c, now - 7200 - i)
    (store.root / ".tmp-z-1.index").write_text("")
    real_scandir = os.scandir

    def scandir_then_remove(path: str | os.PathLike[str]) -> Any:
        if isinstance(path, int) or Path(path) != store.root:  # the removal walking trees
            return real_scandir(path)
        with real_scandir(path) as listing:
            entries = list(listing)
        for entry in entries:  # what a concurrent collector or checkout would do
            if entry.is_dir(follow_symlinks=False):
                remove_tree(Path(entry.path))
            else:
                os.unlink(entry.path)
        return entries

    monkeypatch.setattr(checkout_mod.os, "scandir", scandir_then_remove)
    assert store.gc(keep=0) == []


def test_concurrent_gc_runs_remove_each_checkout_once(tmp_path: Path) -> None:
    store = CheckoutStore(tmp_path / "checkouts", timeout=10, limits=TreeLimits())
    now = time.time()
    shas = [_fake_checkout(store, c, now - 7200 - i) for i, c in enumerate("0123456789abcdef")]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: store.gc(keep=2), range(12)))
    removed = [sha for r in results for sha in r]
    assert sorted(removed) == sorted(shas[2:])
    assert [sha for _, sha in store.entries()] == shas[:2]
    assert list(store.root.iterdir()) != [] and not list(store.root.glob(".trash-*"))
